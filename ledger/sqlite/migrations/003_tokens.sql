-- 003: API tokens. Only the SHA-256 of a token's secret is stored: the
-- secret is shown once when the token is made and never enters the ledger.
-- Times are UTC text as in 001; NULL means "never".

CREATE TABLE tokens (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    name         TEXT    NOT NULL UNIQUE,       -- the actor in events; never reused, also after revocation
    role         TEXT    NOT NULL,              -- viewer, deployer, releaser, admin
    hash         TEXT    NOT NULL UNIQUE,       -- hex SHA-256 of the secret; every request looks it up
    created_at   TEXT    NOT NULL,
    created_by   TEXT    NOT NULL DEFAULT '',
    last_used_at TEXT,                          -- written at most about once a minute
    revoked_at   TEXT
);
