-- 013: release requests (pending releases) and their approvals, and the
-- promote parameters of release windows (override, when_open), and the
-- outbox of outgoing notifications. A
-- promotion to an environment with an approval rule is recorded as a
-- request that waits for approvals by other people; the last approval
-- marks it approved in the same transaction that records it, and
-- action_id is the promote action that then releases it.

CREATE TABLE release_requests (
    id                INTEGER PRIMARY KEY AUTOINCREMENT,
    app               TEXT    NOT NULL,
    env               TEXT    NOT NULL,
    ref               TEXT    NOT NULL DEFAULT '',
    commit_sha        TEXT    NOT NULL,
    digest            TEXT    NOT NULL,
    build_id          INTEGER NOT NULL DEFAULT 0,
    author            TEXT    NOT NULL DEFAULT '',
    requester         TEXT    NOT NULL,
    reason            TEXT    NOT NULL DEFAULT '',
    state             TEXT    NOT NULL,
    required          INTEGER NOT NULL,
    result            TEXT    NOT NULL DEFAULT '',
    request_action_id INTEGER NOT NULL DEFAULT 0,
    action_id         INTEGER NOT NULL DEFAULT 0,
    created_at        TEXT    NOT NULL,
    expires_at        TEXT    NOT NULL,
    decided_at        TEXT
);

CREATE INDEX release_requests_by_env ON release_requests (app, env, id DESC);
CREATE INDEX release_requests_by_state ON release_requests (app, state, id DESC);

-- One approval per person and request: the primary key refuses a second.
CREATE TABLE release_approvals (
    request_id  INTEGER NOT NULL REFERENCES release_requests (id),
    actor       TEXT    NOT NULL,
    role        TEXT    NOT NULL,
    reason      TEXT    NOT NULL DEFAULT '',
    approved_at TEXT    NOT NULL,
    PRIMARY KEY (request_id, actor)
);

-- promote --override (an admin's, through windows and freezes) and
-- promote --when-open (waits for the next opening).
ALTER TABLE actions ADD COLUMN override INTEGER NOT NULL DEFAULT 0;
ALTER TABLE actions ADD COLUMN when_open INTEGER NOT NULL DEFAULT 0;

-- Outgoing notifications (an outbox): one row per (receiver, audit event)
-- written before any attempt, in the transaction that moves the app's
-- cursor past the events it read, so a crash neither loses nor repeats
-- one; each attempt updates its row.
CREATE TABLE notifications (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    app          TEXT    NOT NULL,
    receiver     TEXT    NOT NULL,
    event_id     INTEGER NOT NULL,
    topic        TEXT    NOT NULL,
    env          TEXT    NOT NULL DEFAULT '',
    body         TEXT    NOT NULL,
    state        TEXT    NOT NULL,
    attempts     INTEGER NOT NULL DEFAULT 0,
    last_error   TEXT    NOT NULL DEFAULT '',
    next_at      TEXT,
    created_at   TEXT    NOT NULL,
    delivered_at TEXT,
    UNIQUE (app, receiver, event_id)
);

CREATE INDEX notifications_due ON notifications (app, state, next_at);
CREATE INDEX notifications_by_id ON notifications (app, id DESC);

CREATE TABLE notification_cursors (
    app      TEXT    PRIMARY KEY,
    event_id INTEGER NOT NULL
);
