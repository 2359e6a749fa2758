-- 012: the leader lease of each app. A leader's write connection carries
-- TEMP triggers (fence.go) that refuse every write unless the lease is still
-- in its term; SQLite's one writer at a time makes that check and the write
-- one step.

CREATE TABLE leases (
    app         TEXT    PRIMARY KEY,
    holder      TEXT    NOT NULL,
    address     TEXT    NOT NULL DEFAULT '',
    term        INTEGER NOT NULL,
    acquired_at TEXT    NOT NULL,
    renewed_at  TEXT    NOT NULL,
    expires_at  TEXT    NOT NULL
);
