DROP TRIGGER tasks_version_update ON tasks;
DROP TRIGGER tasks_version_insert ON tasks;
DROP FUNCTION refit_tasks_version_bump();
DROP TABLE tasks_version;
