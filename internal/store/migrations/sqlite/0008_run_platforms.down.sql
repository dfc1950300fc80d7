ALTER TABLE runs DROP COLUMN platforms;
