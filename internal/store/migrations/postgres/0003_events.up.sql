-- The event outbox: every state change's event, written in the change's
-- transaction; subscriptions; and each event's delivery to each
-- subscription that matches it.
CREATE TABLE events (
    seq     BIGSERIAL PRIMARY KEY,
    id      TEXT NOT NULL UNIQUE,
    type    TEXT NOT NULL,
    subject TEXT NOT NULL,
    time    TEXT NOT NULL,
    data    TEXT NOT NULL
);
CREATE INDEX events_time ON events (time);

CREATE TABLE subscriptions (
    id         TEXT PRIMARY KEY,
    url        TEXT NOT NULL,
    types      TEXT NOT NULL DEFAULT '[]',
    task_glob  TEXT NOT NULL DEFAULT '',
    ref_glob   TEXT NOT NULL DEFAULT '',
    secret     TEXT NOT NULL DEFAULT '',
    created_at TEXT NOT NULL,
    cursor     BIGINT NOT NULL DEFAULT 0
);

CREATE TABLE deliveries (
    subscription_id TEXT NOT NULL,
    event_seq       BIGINT NOT NULL,
    subject         TEXT NOT NULL,
    state           TEXT NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT NOT NULL,
    last_error      TEXT NOT NULL DEFAULT '',
    delivered_at    TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (subscription_id, event_seq)
);
CREATE INDEX deliveries_due ON deliveries (state, next_attempt_at);
CREATE INDEX deliveries_subject ON deliveries (subscription_id, subject, state, event_seq);

-- Subscribers follow the outbox by seq, so seq order must be commit order.
-- With several writers a later seq could commit first and a cursor pass
-- over an earlier one still in flight. Each inserting transaction takes
-- one lock until it commits and draws its seq under it.
CREATE FUNCTION refit_events_in_commit_order() RETURNS trigger AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(7306117);
    NEW.seq := nextval(pg_get_serial_sequence('events', 'seq'));
    RETURN NEW;
END
$$ LANGUAGE plpgsql;
CREATE TRIGGER events_in_commit_order BEFORE INSERT ON events
FOR EACH ROW EXECUTE FUNCTION refit_events_in_commit_order();
