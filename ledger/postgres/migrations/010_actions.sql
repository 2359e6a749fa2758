-- 010: the actions asked of environments (promote, rollback, scale, lock,
-- unlock), each written queued before it waits for its turn and closed
-- with its own result; deployment_id is the deployment it started, set in
-- the transaction that records that deployment (no foreign key: the
-- ledger writes the link only there).

CREATE TABLE actions (
    id              BIGSERIAL PRIMARY KEY,
    app             TEXT        NOT NULL,
    env             TEXT        NOT NULL,
    kind            TEXT        NOT NULL,
    ref             TEXT        NOT NULL DEFAULT '',
    replicas        INTEGER     NOT NULL DEFAULT 0,
    allow_downgrade BOOLEAN     NOT NULL DEFAULT FALSE,
    actor           TEXT        NOT NULL,
    reason          TEXT        NOT NULL DEFAULT '',
    state           TEXT        NOT NULL,
    result          TEXT        NOT NULL DEFAULT '',
    deployment_id   BIGINT,
    created_at      TIMESTAMPTZ NOT NULL,
    started_at      TIMESTAMPTZ,
    finished_at     TIMESTAMPTZ
);

CREATE INDEX actions_by_env ON actions (app, env, id DESC);
CREATE INDEX actions_by_state ON actions (app, state, id DESC);
