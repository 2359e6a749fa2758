-- 011: the lead time of each change kept once, and indexes for the
-- deployment lookups the controller makes on every status (issue 18).

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
