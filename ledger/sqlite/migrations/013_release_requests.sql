-- 013: release requests (pending releases) and their approvals, and the
-- promote parameters of release windows (override, when_open). A
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
