DROP TABLE deliveries;
DROP TABLE subscriptions;
DROP TABLE events;
DROP FUNCTION refit_events_in_commit_order();
