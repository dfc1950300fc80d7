DROP TABLE tokens;
DROP TABLE run_logs;
DROP TABLE runs;
DROP TABLE tasks;
