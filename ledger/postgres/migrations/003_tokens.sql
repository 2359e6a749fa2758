-- 003: API tokens. Only the SHA-256 of a token's secret is stored: the
-- secret is shown once when the token is made and never enters the ledger.
-- NULL times mean "never".

CREATE TABLE tokens (
    id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name         TEXT        NOT NULL,
    role         TEXT        NOT NULL,              -- viewer, deployer, releaser, admin
    hash         TEXT        NOT NULL,              -- hex SHA-256 of the secret; every request looks it up
    created_at   TIMESTAMPTZ NOT NULL,
    created_by   TEXT        NOT NULL DEFAULT '',
    last_used_at TIMESTAMPTZ,                       -- written at most about once a minute
    revoked_at   TIMESTAMPTZ,
    -- The name is the actor in events: never reused, also after revocation.
    CONSTRAINT tokens_name_key UNIQUE (name),
    CONSTRAINT tokens_hash_key UNIQUE (hash)
);
