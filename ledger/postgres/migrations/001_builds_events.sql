-- 001: builds with their steps and log lines, and the audit events.
-- NULL times mean "not yet".

-- One commit of one app turned into one image; a commit is built once.
CREATE TABLE builds (
    id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    app          TEXT        NOT NULL,
    commit_sha   TEXT        NOT NULL,             -- full 40-hex commit
    branch       TEXT        NOT NULL DEFAULT '',
    subject      TEXT        NOT NULL DEFAULT '',
    author       TEXT        NOT NULL DEFAULT '',
    triggered_by TEXT        NOT NULL DEFAULT '',  -- poll, webhook:github, manual, …
    state        TEXT        NOT NULL,             -- queued, running, succeeded, …
    reason       TEXT        NOT NULL DEFAULT '',
    image        TEXT        NOT NULL DEFAULT '',
    digest       TEXT        NOT NULL DEFAULT '',
    created_at   TIMESTAMPTZ NOT NULL,
    started_at   TIMESTAMPTZ,
    finished_at  TIMESTAMPTZ,
    log_seq      BIGINT      NOT NULL DEFAULT 0,   -- Seq of the build's last log line
    UNIQUE (app, commit_sha)
);
CREATE INDEX builds_by_branch ON builds (app, branch, id);
CREATE INDEX builds_by_state ON builds (state, id);

-- The pipeline steps of a build (test, build, push, tag).
CREATE TABLE build_steps (
    build_id    BIGINT      NOT NULL REFERENCES builds (id) ON DELETE CASCADE,
    name        TEXT        NOT NULL,
    seq         INTEGER     NOT NULL,
    state       TEXT        NOT NULL,
    attempts    INTEGER     NOT NULL DEFAULT 0,
    error       TEXT        NOT NULL DEFAULT '',
    started_at  TIMESTAMPTZ,
    finished_at TIMESTAMPTZ,
    PRIMARY KEY (build_id, name)
);

-- Output lines of a build's steps, numbered 1, 2, 3, … per build.
CREATE TABLE build_logs (
    build_id  BIGINT      NOT NULL REFERENCES builds (id) ON DELETE CASCADE,
    seq       BIGINT      NOT NULL,
    step      TEXT        NOT NULL DEFAULT '',
    logged_at TIMESTAMPTZ NOT NULL,
    line      TEXT        NOT NULL,
    PRIMARY KEY (build_id, seq)
);

-- The append-only audit trail: when, who, what, why.
CREATE TABLE events (
    id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at         TIMESTAMPTZ NOT NULL,
    actor      TEXT        NOT NULL DEFAULT '',
    kind       TEXT        NOT NULL,              -- build.queued, source.error, …
    app        TEXT        NOT NULL DEFAULT '',
    env        TEXT        NOT NULL DEFAULT '',
    commit_sha TEXT        NOT NULL DEFAULT '',
    build_id   BIGINT,                            -- no foreign key: the trail outlives what it names
    message    TEXT        NOT NULL DEFAULT '',
    reason     TEXT        NOT NULL DEFAULT ''
);
CREATE INDEX events_by_app ON events (app, env, id);
CREATE INDEX events_by_build ON events (build_id, id);
