-- 004: environment locks (a row while the lock holds) and quarantined
-- commits (never promoted or rolled back to again).

CREATE TABLE locks (
    app        TEXT NOT NULL,
    env        TEXT NOT NULL,
    reason     TEXT NOT NULL,
    actor      TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (app, env)
);

CREATE TABLE quarantines (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    app        TEXT NOT NULL,
    commit_sha TEXT NOT NULL,
    release    TEXT NOT NULL DEFAULT '',
    reason     TEXT NOT NULL,
    actor      TEXT NOT NULL,
    created_at TEXT NOT NULL,
    UNIQUE (app, commit_sha)
);
