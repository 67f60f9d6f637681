-- Clients, their consents and their events.
-- consent_log and events name their client without a foreign key: the store
-- writes them only for clients it has checked exist (in the same
-- transaction), and clients are never deleted. PostgreSQL checks a foreign
-- key with a trigger per row, which doubled the cost of a bulk import.
-- Time rule: instants are UTC (RFC 3339 text here), plain dates are YYYY-MM-DD.

CREATE TABLE clients (
    id                      TEXT PRIMARY KEY NOT NULL,
    name                    TEXT NOT NULL,
    email                   TEXT,
    phone                   TEXT,            -- E.164
    branch                  TEXT,
    advisor                 TEXT,
    investor_type           TEXT NOT NULL DEFAULT 'ordinary'
        CHECK (investor_type IN ('ordinary', 'professional_a', 'professional_b', 'professional_c')),
    risk_level              INTEGER CHECK (risk_level BETWEEN 1 AND 5),   -- C1..C5
    risk_assessed_on        TEXT,
    lowest_risk_category    INTEGER NOT NULL DEFAULT 0,
    assets_fen              INTEGER,         -- CNY in fen, exact
    tags                    TEXT NOT NULL DEFAULT '',   -- ';'-separated
    holdings                TEXT NOT NULL DEFAULT '',   -- ';'-separated stock codes
    watchlist               TEXT NOT NULL DEFAULT '',
    birthday                TEXT,
    opened_on               TEXT,
    last_trade_on           TEXT,
    attributes              TEXT NOT NULL DEFAULT '{}', -- JSON object
    -- Current consent states; their history is in consent_log.
    consent_email           INTEGER NOT NULL,
    consent_email_source    TEXT NOT NULL,
    consent_email_at        TEXT NOT NULL,
    consent_sms             INTEGER NOT NULL,
    consent_sms_source      TEXT NOT NULL,
    consent_sms_at          TEXT NOT NULL,
    personalised_marketing        INTEGER NOT NULL,
    personalised_marketing_source TEXT NOT NULL,
    personalised_marketing_at     TEXT NOT NULL,
    row_hash                BLOB NOT NULL,   -- digest of the profile, for re-imports
    created_at              TEXT NOT NULL,
    updated_at              TEXT NOT NULL
);

-- Append-only: every change to a consent after its first state, with the
-- state it replaced. A client's first states live on its row; the first
-- entry's prev_* keep them once they change, so the whole history can be
-- shown, and a bulk import of new clients writes nothing here.
CREATE TABLE consent_log (
    id          INTEGER PRIMARY KEY,
    client_id   TEXT NOT NULL,   -- a client's id; see the note at the top
    scope       TEXT NOT NULL CHECK (scope IN ('email', 'sms', 'personalised_marketing')),
    granted     INTEGER NOT NULL,
    source      TEXT NOT NULL,
    at          TEXT NOT NULL,
    actor       TEXT,
    note        TEXT,
    prev_granted INTEGER NOT NULL,
    prev_source  TEXT NOT NULL,
    prev_at      TEXT NOT NULL
);

CREATE INDEX consent_log_client ON consent_log (client_id);

CREATE TABLE events (
    id              INTEGER PRIMARY KEY,
    client_id       TEXT NOT NULL,   -- a client's id; see the note at the top
    occurred_at     TEXT NOT NULL,
    kind            TEXT NOT NULL,
    channel         TEXT CHECK (channel IN ('email', 'sms')),
    campaign        TEXT,
    campaign_kind   TEXT,
    run_id          INTEGER,
    delivery_id     INTEGER,
    source          TEXT NOT NULL,
    details         TEXT NOT NULL DEFAULT '{}',
    dedupe_key      BLOB NOT NULL UNIQUE,
    recorded_at     TEXT NOT NULL
);

-- "Did this client do X within N days", and a client's timeline.
CREATE INDEX events_client_kind_time ON events (client_id, kind, occurred_at);
CREATE INDEX events_kind_time ON events (kind, occurred_at);
CREATE INDEX events_delivery ON events (delivery_id) WHERE delivery_id IS NOT NULL;
