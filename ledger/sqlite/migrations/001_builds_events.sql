-- 001: builds with their steps and log lines, and the audit events.
-- Times are UTC text with nine fraction digits (2006-01-02T15:04:05.000000000Z),
-- so they sort as text and read well in the sqlite3 shell; NULL means "not yet".

-- One commit of one app turned into one image; a commit is built once.
CREATE TABLE builds (
    id           INTEGER PRIMARY KEY AUTOINCREMENT, -- never reused
    app          TEXT    NOT NULL,
    commit_sha   TEXT    NOT NULL,                  -- full 40-hex commit
    branch       TEXT    NOT NULL DEFAULT '',
    subject      TEXT    NOT NULL DEFAULT '',
    author       TEXT    NOT NULL DEFAULT '',
    triggered_by TEXT    NOT NULL DEFAULT '',       -- poll, webhook:github, manual, …
    state        TEXT    NOT NULL,                  -- queued, running, succeeded, …
    reason       TEXT    NOT NULL DEFAULT '',
    image        TEXT    NOT NULL DEFAULT '',
    digest       TEXT    NOT NULL DEFAULT '',
    created_at   TEXT    NOT NULL,
    started_at   TEXT,
    finished_at  TEXT,
    log_seq      INTEGER NOT NULL DEFAULT 0,        -- Seq of the build's last log line
    UNIQUE (app, commit_sha)
);
CREATE INDEX builds_by_branch ON builds (app, branch, id);
CREATE INDEX builds_by_state ON builds (state, id);

-- The pipeline steps of a build (test, build, push, tag).
CREATE TABLE build_steps (
    build_id    INTEGER NOT NULL REFERENCES builds (id) ON DELETE CASCADE,
    name        TEXT    NOT NULL,
    seq         INTEGER NOT NULL,
    state       TEXT    NOT NULL,
    attempts    INTEGER NOT NULL DEFAULT 0,
    error       TEXT    NOT NULL DEFAULT '',
    started_at  TEXT,
    finished_at TEXT,
    PRIMARY KEY (build_id, name)
);

-- Output lines of a build's steps, numbered 1, 2, 3, … per build.
CREATE TABLE build_logs (
    build_id  INTEGER NOT NULL REFERENCES builds (id) ON DELETE CASCADE,
    seq       INTEGER NOT NULL,
    step      TEXT    NOT NULL DEFAULT '',
    logged_at TEXT    NOT NULL,
    line      TEXT    NOT NULL,
    PRIMARY KEY (build_id, seq)
) WITHOUT ROWID;

-- The append-only audit trail: when, who, what, why.
CREATE TABLE events (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    at         TEXT    NOT NULL,
    actor      TEXT    NOT NULL DEFAULT '',
    kind       TEXT    NOT NULL,                -- build.queued, source.error, …
    app        TEXT    NOT NULL DEFAULT '',
    env        TEXT    NOT NULL DEFAULT '',
    commit_sha TEXT    NOT NULL DEFAULT '',
    build_id   INTEGER,                         -- no foreign key: the trail outlives what it names
    message    TEXT    NOT NULL DEFAULT '',
    reason     TEXT    NOT NULL DEFAULT ''
);
CREATE INDEX events_by_app ON events (app, env, id);
CREATE INDEX events_by_build ON events (build_id, id);
