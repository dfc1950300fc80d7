CREATE INDEX audit_log_time ON audit_log (time);
