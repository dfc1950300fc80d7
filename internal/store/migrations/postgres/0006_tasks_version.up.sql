-- A counter that moves with every change to the task set (a task created,
-- deleted, or its spec or discovered bases changed), kept by triggers so
-- no write path can forget it: the planner caches its task graph by it.
CREATE TABLE tasks_version (
    id      INTEGER PRIMARY KEY CHECK (id = 1),
    version BIGINT NOT NULL
);
INSERT INTO tasks_version (id, version) VALUES (1, 1);
CREATE FUNCTION refit_tasks_version_bump() RETURNS trigger AS $$
BEGIN
    UPDATE tasks_version SET version = version + 1 WHERE id = 1;
    RETURN NULL;
END
$$ LANGUAGE plpgsql;
CREATE TRIGGER tasks_version_insert AFTER INSERT OR DELETE ON tasks
FOR EACH ROW EXECUTE FUNCTION refit_tasks_version_bump();
CREATE TRIGGER tasks_version_update AFTER UPDATE ON tasks
FOR EACH ROW WHEN (OLD.name IS DISTINCT FROM NEW.name OR OLD.spec IS DISTINCT FROM NEW.spec OR OLD.bases IS DISTINCT FROM NEW.bases)
EXECUTE FUNCTION refit_tasks_version_bump();
