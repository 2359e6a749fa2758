-- 011: reads that cost what a page costs, whatever the ledger holds (issue
-- 18): the lead time of each change kept once, indexes for every list the
-- API serves and for the deployment lookups the controller makes on every
-- status.

-- The committer times of the commits a succeeded deployment newly brought
-- to its environment (git log before..commit, package dora): commit times
-- never change, so DORA reads git once per deployment instead of once per
-- report.
CREATE TABLE deployment_commit_times (
    deployment_id BIGINT        PRIMARY KEY REFERENCES deployments (id) ON DELETE CASCADE,
    times         TIMESTAMPTZ[] NOT NULL
);

-- The newest rollout of a digest in an environment (convergence, on
-- every status) and of a commit (drift check): without these each one
-- read the environment's whole history.
CREATE INDEX deployments_by_digest ON deployments (app, env, digest, id DESC);
CREATE INDEX deployments_by_commit ON deployments (app, env, commit_sha, id DESC);

-- Every list the API serves, with each of its filters, read newest first
-- as one index range per filter value (a list of states or event kinds is
-- one range per value, merged): a page read however many rows the ledger
-- holds.
CREATE INDEX builds_by_app ON builds (app, id DESC);
CREATE INDEX builds_by_app_state ON builds (app, state, id DESC);
CREATE INDEX builds_by_branch_state ON builds (app, branch, state, id DESC);
CREATE INDEX events_by_kind ON events (app, kind, id DESC);
CREATE INDEX events_by_env_kind ON events (app, env, kind, id DESC);
CREATE INDEX events_by_app_build ON events (app, build_id, id DESC);

-- The event kinds ever recorded, so that a kind prefix ("build.") becomes
-- the list of kinds it selects, each read through events_by_kind.
CREATE TABLE event_kinds (
    kind TEXT PRIMARY KEY
);
INSERT INTO event_kinds (kind) SELECT DISTINCT kind FROM events;
