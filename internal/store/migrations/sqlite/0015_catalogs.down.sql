DROP TABLE image_diffs;
DROP TABLE catalogs;
