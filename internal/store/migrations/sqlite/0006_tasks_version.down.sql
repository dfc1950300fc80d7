DROP TRIGGER tasks_version_update;
DROP TRIGGER tasks_version_delete;
DROP TRIGGER tasks_version_insert;
DROP TABLE tasks_version;
