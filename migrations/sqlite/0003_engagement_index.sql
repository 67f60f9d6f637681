-- Engagement reads the latest event per client, kind, channel and campaign
-- kind; with all of them in the index it never visits the table.
DROP INDEX events_client_kind_time;
CREATE INDEX events_engagement ON events (client_id, kind, channel, campaign_kind, occurred_at);
