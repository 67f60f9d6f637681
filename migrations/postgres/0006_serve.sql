-- herald serve: one scheduler leads at a time (a lease it renews), every
-- instance says it is alive, and the channels' sending rates are shared by
-- the whole fleet through per-second quotas.
CREATE TABLE leases (
    name        TEXT PRIMARY KEY,
    owner       TEXT NOT NULL,
    until       TIMESTAMPTZ NOT NULL
);

CREATE TABLE instances (
    id          TEXT PRIMARY KEY,
    host        TEXT NOT NULL,
    pid         BIGINT NOT NULL,
    roles       TEXT NOT NULL,
    started_at  TIMESTAMPTZ NOT NULL,
    seen_at     TIMESTAMPTZ NOT NULL,
    -- Messages this instance has sent, for status and for the fleet's share.
    sent        BIGINT NOT NULL DEFAULT 0
);

-- Messages granted per provider per UTC second (Unix time), across all
-- instances; old seconds are deleted as they pass.
CREATE TABLE send_quota (
    provider    TEXT NOT NULL,
    second      BIGINT NOT NULL,
    used        BIGINT NOT NULL,
    PRIMARY KEY (provider, second)
);
