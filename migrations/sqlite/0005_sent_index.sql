-- The frequency cap counts each client's marketing sends of the last 7 days;
-- with everything it reads in one partial index it never visits the table.
CREATE INDEX events_sent ON events (occurred_at, client_id, purpose) WHERE kind = 'sent';
