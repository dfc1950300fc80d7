ALTER TABLE tasks DROP COLUMN spec_hash;
