-- No query reads audit_log through this index: SQLite's planner walks an
-- audit listing's entries by seq, its time filter ("$2 = '' OR time >= $2")
-- checked on each. It only cost every audited change one more index page
-- to write, a third of what an entry adds to a commit. (PostgreSQL keeps
-- it: its planner can use it with the value bound.)
DROP INDEX IF EXISTS audit_log_time;
