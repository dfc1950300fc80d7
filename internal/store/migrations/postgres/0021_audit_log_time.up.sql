-- SQLite drops audit_log_time in this migration: its planner never uses
-- it for an audit listing's time filter ("$2 = '' OR time >= $2"), which
-- walks entries by seq, so the index only cost every audited change one
-- more page to write. PostgreSQL plans such a query with the value bound
-- and can use the index for a recent --since on a long log: it stays.
SELECT 1;
