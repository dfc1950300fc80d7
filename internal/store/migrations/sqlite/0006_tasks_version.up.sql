-- A counter that moves with every change to the task set (a task created,
-- deleted, or its spec or discovered bases changed), kept by triggers so
-- no write path can forget it: the planner caches its task graph by it.
CREATE TABLE tasks_version (
    id      INTEGER PRIMARY KEY CHECK (id = 1),
    version BIGINT NOT NULL
);
INSERT INTO tasks_version (id, version) VALUES (1, 1);
CREATE TRIGGER tasks_version_insert AFTER INSERT ON tasks
BEGIN UPDATE tasks_version SET version = version + 1; END;
CREATE TRIGGER tasks_version_delete AFTER DELETE ON tasks
BEGIN UPDATE tasks_version SET version = version + 1; END;
CREATE TRIGGER tasks_version_update AFTER UPDATE ON tasks
WHEN OLD.name IS NOT NEW.name OR OLD.spec IS NOT NEW.spec OR OLD.bases IS NOT NEW.bases
BEGIN UPDATE tasks_version SET version = version + 1; END;
