-- Runs, their deliveries and suppressions, the do-not-contact list, bad
-- addresses, the audit log and the archive of what was sent.
-- Time rule: instants are UTC (timestamptz).

-- Events say whether they were marketing, so the frequency cap counts only
-- marketing sends. NULL (imported history) counts as marketing.
ALTER TABLE events ADD COLUMN purpose TEXT CHECK (purpose IN ('marketing', 'service'));

-- One execution of a campaign. (campaign, run_key) is unique: a second
-- launch of the same run resumes it instead of planning it again.
CREATE TABLE runs (
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    campaign        TEXT NOT NULL,
    run_key         TEXT NOT NULL,
    kind            TEXT NOT NULL,
    purpose         TEXT NOT NULL CHECK (purpose IN ('marketing', 'service')),
    state           TEXT NOT NULL
        CHECK (state IN ('awaiting_approval', 'sending', 'paused', 'done', 'stopped')),
    launched_by     TEXT,
    launched_at     TIMESTAMPTZ NOT NULL,
    approved_by     TEXT,
    approved_at     TIMESTAMPTZ,
    -- What was planned from: the campaign's content, fetched once, and the
    -- files (campaign, rule, templates) with their hashes, as JSON.
    content         TEXT NOT NULL,
    content_hash    TEXT NOT NULL,
    files           TEXT NOT NULL,
    fingerprint     TEXT NOT NULL,   -- one hash over content_hash and files
    not_before      TIMESTAMPTZ,            -- research reports: the release time
    send_by         TIMESTAMPTZ,            -- unsent messages expire after this
    audience        BIGINT NOT NULL, -- clients the segment selected
    stop_reason     TEXT,
    UNIQUE (campaign, run_key)
);

-- One message to one client in one run. The channel may change within the
-- run: a permanent bad-address failure falls through to `fallback`.
CREATE TABLE deliveries (
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    run_id          BIGINT NOT NULL REFERENCES runs (id),
    client_id       TEXT NOT NULL,
    channel         TEXT NOT NULL CHECK (channel IN ('email', 'sms')),
    address         TEXT NOT NULL,
    fallback        TEXT NOT NULL DEFAULT '',   -- ';'-separated channels left
    state           TEXT NOT NULL
        CHECK (state IN ('queued', 'claimed', 'sending', 'sent', 'failed', 'expired',
                         'uncertain', 'cancelled')),
    not_before      TIMESTAMPTZ NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    lease_owner     TEXT,
    lease_until     TIMESTAMPTZ,
    provider_id     TEXT,
    error           TEXT,
    decision        TEXT NOT NULL,   -- JSON: the gates' verdict and consent state
    sent_at         TIMESTAMPTZ,
    updated_at      TIMESTAMPTZ NOT NULL,
    UNIQUE (run_id, client_id)
);

-- What a dispatcher claims next, in id order; and claims that may lapse.
CREATE INDEX deliveries_queued ON deliveries (id) WHERE state = 'queued';
CREATE INDEX deliveries_leased ON deliveries (lease_until) WHERE state IN ('claimed', 'sending');

-- Why a selected client was not sent to, one reason per client and run.
CREATE TABLE suppressions (
    run_id          BIGINT NOT NULL REFERENCES runs (id),
    client_id       TEXT NOT NULL,
    reason          TEXT NOT NULL,
    channel         TEXT,
    detail          TEXT,
    PRIMARY KEY (run_id, client_id)
);

-- Clients, addresses and numbers never to be contacted by marketing.
CREATE TABLE do_not_contact (
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind            TEXT NOT NULL CHECK (kind IN ('client', 'email', 'phone')),
    value           TEXT NOT NULL,
    reason          TEXT NOT NULL,
    added_by        TEXT NOT NULL,
    added_at        TIMESTAMPTZ NOT NULL,
    UNIQUE (kind, value)
);

-- Addresses that bounced hard or a provider called invalid.
CREATE TABLE bad_addresses (
    channel         TEXT NOT NULL CHECK (channel IN ('email', 'sms')),
    address         TEXT NOT NULL,
    reason          TEXT NOT NULL,
    marked_at       TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (channel, address)
);

-- Who did what: launches, approvals, consent restores, suppression changes.
CREATE TABLE audit_log (
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at              TIMESTAMPTZ NOT NULL,
    actor           TEXT NOT NULL,
    action          TEXT NOT NULL,
    subject         TEXT NOT NULL,
    details         TEXT NOT NULL DEFAULT '{}'
);

-- Every sent message, append-only; each record carries the hash of the
-- one before it, so a change anywhere breaks the chain.
CREATE TABLE archive (
    seq             BIGINT PRIMARY KEY,   -- gapless, assigned under a lock
    delivery_id     BIGINT NOT NULL UNIQUE,
    run_id          BIGINT NOT NULL,
    client_id       TEXT NOT NULL,
    archived_at     TIMESTAMPTZ NOT NULL,
    record          TEXT NOT NULL,   -- JSON
    prev_hash       TEXT NOT NULL,
    hash            TEXT NOT NULL
);
