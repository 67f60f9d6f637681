-- What a run's archive records are compressed against (zstd with a
-- dictionary): its content and its messages rendered for a sample client,
-- stored once, so that a record keeps little more than what is its own
-- (about 550 bytes for a 20 KB bulletin, against 5 KB deflated alone).
-- Named by the SHA-256 of its body.
CREATE TABLE archive_dictionaries (
    hash        TEXT PRIMARY KEY,
    body        BLOB NOT NULL,
    created_at  TEXT NOT NULL
);

-- A record without one is deflated (or, older still, plain in `record`).
ALTER TABLE archive ADD COLUMN dictionary TEXT REFERENCES archive_dictionaries (hash);
