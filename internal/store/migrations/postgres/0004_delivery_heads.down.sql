DROP TABLE sinks;
DROP INDEX deliveries_heads;
CREATE INDEX deliveries_due ON deliveries (state, next_attempt_at);
ALTER TABLE deliveries DROP COLUMN retry_since;
ALTER TABLE deliveries DROP COLUMN head;
