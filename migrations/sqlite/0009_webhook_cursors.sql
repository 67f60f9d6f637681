-- Webhooks out read the events table in id order: each webhook's cursor is
-- the last event it delivered, so a receiver that is down misses nothing.
CREATE TABLE webhook_cursors (
    name            TEXT PRIMARY KEY,
    last_event_id   BIGINT NOT NULL
);
