-- A counter that every transaction changing clients, consents or events
-- bumps, so that caches built from them (the segment snapshot) know when
-- they are stale.
CREATE TABLE meta (
    key     TEXT PRIMARY KEY,
    value   BIGINT NOT NULL
);

INSERT INTO meta (key, value) VALUES ('data_version', 0);
