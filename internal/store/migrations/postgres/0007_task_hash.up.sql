-- The hash of what a task's last apply inspected (its spec with defaults,
-- and its Dockerfile's content or pinned commit): an apply that finds the
-- same hash leaves the task alone. '' = unknown (written by a create, a
-- put, or a run that discovered other bases), so the next apply inspects.
ALTER TABLE tasks ADD COLUMN spec_hash TEXT NOT NULL DEFAULT '';
