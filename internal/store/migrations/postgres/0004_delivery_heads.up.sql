-- Deliveries: mark the head of each line (a subscription's pending
-- deliveries about one subject, in event order), so that finding what is
-- due reads only heads however long a backlog grows; and remember since
-- when a delivery is retried, so that a redelivery gets a fresh window.
ALTER TABLE deliveries ADD COLUMN head INTEGER NOT NULL DEFAULT 0;
ALTER TABLE deliveries ADD COLUMN retry_since TEXT NOT NULL DEFAULT '';
UPDATE deliveries SET head = 1 WHERE state = 'pending' AND NOT EXISTS (
    SELECT 1 FROM deliveries p WHERE p.subscription_id = deliveries.subscription_id
    AND p.subject = deliveries.subject AND p.state = 'pending' AND p.event_seq < deliveries.event_seq);
DROP INDEX deliveries_due;
CREATE INDEX deliveries_heads ON deliveries (event_seq) WHERE head = 1;

-- Sinks: brokers (NATS JetStream) that get every event in order; cursor is
-- the last event Seq a sink has acknowledged.
CREATE TABLE sinks (
    name   TEXT PRIMARY KEY,
    cursor BIGINT NOT NULL DEFAULT 0
);
