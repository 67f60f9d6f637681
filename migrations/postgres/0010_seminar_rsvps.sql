-- Seminar answers. Each acceptance takes the next position under the
-- seminar's lock (its row here); positions stay gapless, the first
-- `capacity` are seats and the rest the wait list in order, so a decline
-- that closes its gap promotes the first waiting client.
CREATE TABLE seminars (
    name        TEXT PRIMARY KEY,
    capacity    BIGINT NOT NULL
);

CREATE TABLE rsvps (
    seminar     TEXT NOT NULL REFERENCES seminars (name),
    client_id   TEXT NOT NULL,
    answer      TEXT NOT NULL,          -- accepted | declined
    position    BIGINT,                 -- set while accepted
    answered_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (seminar, client_id)
);
CREATE UNIQUE INDEX rsvps_position ON rsvps (seminar, position) WHERE position IS NOT NULL;
