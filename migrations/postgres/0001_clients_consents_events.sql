-- Clients, their consents and their events.
-- consent_log and events name their client without a foreign key: the store
-- writes them only for clients it has checked exist (in the same
-- transaction), and clients are never deleted. PostgreSQL checks a foreign
-- key with a trigger per row, which doubled the cost of a bulk import.
-- Time rule: instants are timestamptz (UTC), plain dates are date.

CREATE TABLE clients (
    id                      TEXT COLLATE "C" PRIMARY KEY,  -- byte order: ids are opaque
    name                    TEXT NOT NULL,
    email                   TEXT,
    phone                   TEXT,            -- E.164
    branch                  TEXT,
    advisor                 TEXT,
    investor_type           TEXT NOT NULL DEFAULT 'ordinary'
        CHECK (investor_type IN ('ordinary', 'professional_a', 'professional_b', 'professional_c')),
    risk_level              SMALLINT CHECK (risk_level BETWEEN 1 AND 5),   -- C1..C5
    risk_assessed_on        DATE,
    lowest_risk_category    BOOLEAN NOT NULL DEFAULT FALSE,
    assets_fen              BIGINT,          -- CNY in fen, exact
    tags                    TEXT NOT NULL DEFAULT '',   -- ';'-separated
    holdings                TEXT NOT NULL DEFAULT '',   -- ';'-separated stock codes
    watchlist               TEXT NOT NULL DEFAULT '',
    birthday                DATE,
    opened_on               DATE,
    last_trade_on           DATE,
    attributes              JSONB NOT NULL DEFAULT '{}',
    -- Current consent states; their history is in consent_log.
    consent_email           BOOLEAN NOT NULL,
    consent_email_source    TEXT NOT NULL,
    consent_email_at        TIMESTAMPTZ NOT NULL,
    consent_sms             BOOLEAN NOT NULL,
    consent_sms_source      TEXT NOT NULL,
    consent_sms_at          TIMESTAMPTZ NOT NULL,
    personalised_marketing        BOOLEAN NOT NULL,
    personalised_marketing_source TEXT NOT NULL,
    personalised_marketing_at     TIMESTAMPTZ NOT NULL,
    row_hash                BYTEA NOT NULL,  -- digest of the profile, for re-imports
    created_at              TIMESTAMPTZ NOT NULL,
    updated_at              TIMESTAMPTZ NOT NULL
);

-- Append-only: every change to a consent after its first state, with the
-- state it replaced. A client's first states live on its row; the first
-- entry's prev_* keep them once they change, so the whole history can be
-- shown, and a bulk import of new clients writes nothing here.
CREATE TABLE consent_log (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    client_id   TEXT COLLATE "C" NOT NULL,   -- a client's id; see the note at the top
    scope       TEXT NOT NULL CHECK (scope IN ('email', 'sms', 'personalised_marketing')),
    granted     BOOLEAN NOT NULL,
    source      TEXT NOT NULL,
    at          TIMESTAMPTZ NOT NULL,
    actor       TEXT,
    note        TEXT,
    prev_granted BOOLEAN NOT NULL,
    prev_source  TEXT NOT NULL,
    prev_at      TIMESTAMPTZ NOT NULL
);

CREATE INDEX consent_log_client ON consent_log (client_id);

CREATE TABLE events (
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    client_id       TEXT COLLATE "C" NOT NULL,   -- a client's id; see the note at the top
    occurred_at     TIMESTAMPTZ NOT NULL,
    kind            TEXT NOT NULL,
    channel         TEXT CHECK (channel IN ('email', 'sms')),
    campaign        TEXT,
    campaign_kind   TEXT,
    run_id          BIGINT,
    delivery_id     BIGINT,
    source          TEXT NOT NULL,
    details         JSONB NOT NULL DEFAULT '{}',
    dedupe_key      BYTEA NOT NULL UNIQUE,
    recorded_at     TIMESTAMPTZ NOT NULL
);

-- "Did this client do X within N days", and a client's timeline.
CREATE INDEX events_client_kind_time ON events (client_id, kind, occurred_at);
CREATE INDEX events_kind_time ON events (kind, occurred_at);
CREATE INDEX events_delivery ON events (delivery_id) WHERE delivery_id IS NOT NULL;
