ALTER TABLE runs DROP COLUMN blocked_by;
DROP TABLE hook_events;
DROP TABLE observations;
DROP TABLE base_refs;
