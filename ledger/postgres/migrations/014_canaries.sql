-- 014: the state of each canary (a release's deployment going through its
-- environment's canary steps), one row per deployment: the step and weight
-- it is at, running, paused, promoted or aborted, why, and the last
-- verdict (analysis.Verdict as JSON, '' before the first). A restarted
-- ferry reads it to end the split it left and record the canary aborted.

CREATE TABLE canaries (
    deployment_id   BIGINT      PRIMARY KEY REFERENCES deployments (id),
    app             TEXT        NOT NULL,
    env             TEXT        NOT NULL,
    step            INTEGER     NOT NULL,
    steps           INTEGER     NOT NULL,
    weight          INTEGER     NOT NULL,
    state           TEXT        NOT NULL,
    reason          TEXT        NOT NULL DEFAULT '',
    verdict         TEXT        NOT NULL DEFAULT '',
    step_started_at TIMESTAMPTZ,
    updated_at      TIMESTAMPTZ NOT NULL
);

CREATE INDEX canaries_by_env ON canaries (app, env, deployment_id DESC);
CREATE TRIGGER canaries_fence BEFORE INSERT OR UPDATE OR DELETE ON canaries FOR EACH STATEMENT EXECUTE FUNCTION ferry_fence();
