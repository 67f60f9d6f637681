-- Sends are most of the events, and no query finds them by kind and time
-- (the frequency cap has events_sent) or by delivery (no query at all):
-- those two indexes took every send's event for nothing. Their successors
-- hold every other kind: responses by kind and time (replies, check-ins),
-- and, new, by run (a run's report scanned all events before). Queries
-- repeat `kind <> 'sent'` for SQLite to see that they may use them.
DROP INDEX events_kind_time;
DROP INDEX events_delivery;
CREATE INDEX events_responses ON events (kind, occurred_at) WHERE kind <> 'sent';
CREATE INDEX events_run_responses ON events (run_id, kind) WHERE kind <> 'sent' AND run_id IS NOT NULL;
