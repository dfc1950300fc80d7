DROP TABLE audit_log;
DROP FUNCTION refit_audit_log_append_only();
DROP INDEX tokens_user;
DROP INDEX tokens_id;
ALTER TABLE tokens DROP COLUMN revoked_at;
ALTER TABLE tokens DROP COLUMN created_by;
ALTER TABLE tokens DROP COLUMN roles;
ALTER TABLE tokens DROP COLUMN user_name;
ALTER TABLE tokens DROP COLUMN id;
