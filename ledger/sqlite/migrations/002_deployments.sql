-- 002: deployments, one rollout of a digest (or a replica count) into an
-- environment. Times are UTC text as in 001; NULL means "not yet".

CREATE TABLE deployments (
    id              INTEGER PRIMARY KEY AUTOINCREMENT, -- never reused: the newest has the highest id
    app             TEXT    NOT NULL,
    env             TEXT    NOT NULL,
    kind            TEXT    NOT NULL,                  -- deploy, promote, rollback, auto-rollback, scale
    state           TEXT    NOT NULL,                  -- pending, rolling, verifying, succeeded, …
    build_id        INTEGER REFERENCES builds (id) ON DELETE SET NULL,
    commit_sha      TEXT    NOT NULL,                  -- full 40-hex commit
    digest          TEXT    NOT NULL,                  -- sha256:…, what the environment runs after it
    release         TEXT    NOT NULL DEFAULT '',       -- RC… tag in a gated environment
    replicas        INTEGER NOT NULL DEFAULT 0,
    previous_digest TEXT    NOT NULL DEFAULT '',       -- what ran before; a failed rollout reverts to it
    actor           TEXT    NOT NULL,
    reason          TEXT    NOT NULL DEFAULT '',
    error           TEXT    NOT NULL DEFAULT '',
    created_at      TEXT    NOT NULL,
    started_at      TEXT,
    finished_at     TEXT
);
-- History of an environment, newest first.
CREATE INDEX deployments_by_env ON deployments (app, env, id DESC);
-- What an environment runs (its newest succeeded deployment) and what is open.
CREATE INDEX deployments_by_state ON deployments (app, env, state, id DESC);
-- A release by its tag.
CREATE INDEX deployments_by_release ON deployments (app, release) WHERE release <> '';
-- Keeps ON DELETE SET NULL from scanning the table when a build is deleted.
CREATE INDEX deployments_by_build ON deployments (build_id) WHERE build_id IS NOT NULL;
