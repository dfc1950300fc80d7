-- Catalogs stored before refit read rpm databases list none of an rpm
-- image's packages and say "rpm (not read: …)" in their db list; the
-- diffs made from them say no package changed. Drop both, so each is
-- read again, with its rpm packages, when it is next asked for.
DELETE FROM image_diffs
WHERE old_digest IN (SELECT digest FROM catalogs WHERE data LIKE '%"rpm (not read: %')
   OR new_digest IN (SELECT digest FROM catalogs WHERE data LIKE '%"rpm (not read: %');
DELETE FROM catalogs WHERE data LIKE '%"rpm (not read: %';
