-- One row per schedule of a task (triggers.schedule): when it is next
-- due. A tick is claimed by moving next_due on from the due time it was
-- read at (UPDATE … WHERE next_due = the tick), in the transaction that
-- creates its run: of several refit processes on one database, exactly
-- one moves it, so a tick makes one run. spec is the schedule as
-- configured (cron, zone, catch-up): a change restarts it from the
-- next tick to come. last_due and last_run are the last tick that made
-- a run, for `refit task triggers`.
CREATE TABLE schedules (
    task_name TEXT NOT NULL,
    name      TEXT NOT NULL,
    spec      TEXT NOT NULL,
    next_due  TEXT NOT NULL,
    last_due  TEXT NOT NULL DEFAULT '',
    last_run  BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (task_name, name)
);
CREATE INDEX schedules_next_due ON schedules (next_due);
