-- 010: the actions asked of environments (promote, rollback, scale, lock,
-- unlock), each written queued before it waits for its turn and closed
-- with its own result; deployment_id is the deployment it started, set in
-- the transaction that records that deployment (no foreign key: the
-- ledger writes the link only there).

CREATE TABLE actions (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    app             TEXT    NOT NULL,
    env             TEXT    NOT NULL,
    kind            TEXT    NOT NULL,
    ref             TEXT    NOT NULL DEFAULT '',
    replicas        INTEGER NOT NULL DEFAULT 0,
    allow_downgrade INTEGER NOT NULL DEFAULT 0,
    actor           TEXT    NOT NULL,
    reason          TEXT    NOT NULL DEFAULT '',
    state           TEXT    NOT NULL,
    result          TEXT    NOT NULL DEFAULT '',
    deployment_id   INTEGER,
    created_at      TEXT    NOT NULL,
    started_at      TEXT,
    finished_at     TEXT
);

CREATE INDEX actions_by_env ON actions (app, env, id DESC);
CREATE INDEX actions_by_state ON actions (app, state, id DESC);
