-- 012: the leader lease of each app, and the fence on every table.
--
-- One row per app names the server that leads, its term and when its lease
-- expires. A leader's connections carry its term in the session setting
-- ferry.fence ("<term> <app>"); every write statement on these connections
-- first reads the lease row FOR SHARE and fails (SQLSTATE FE001) unless the
-- lease is still in that term. The share lock holds to the end of the
-- writing transaction, so a takeover (which updates the row) waits for the
-- writes under way and every later write of the old term is refused.
-- Connections without the setting (migrations, standbys, tools) are not
-- fenced.

CREATE TABLE leases (
    app         TEXT        PRIMARY KEY,
    holder      TEXT        NOT NULL,
    address     TEXT        NOT NULL DEFAULT '',
    term        BIGINT      NOT NULL,
    acquired_at TIMESTAMPTZ NOT NULL,
    renewed_at  TIMESTAMPTZ NOT NULL,
    expires_at  TIMESTAMPTZ NOT NULL
);

CREATE FUNCTION ferry_fence() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    fence TEXT := current_setting('ferry.fence', true);
    want  BIGINT;
    for_app TEXT;
    held  BIGINT;
BEGIN
    IF fence IS NULL OR fence = '' THEN
        RETURN NULL;
    END IF;
    want := split_part(fence, ' ', 1)::BIGINT;
    for_app := substr(fence, strpos(fence, ' ') + 1);
    SELECT l.term INTO held FROM leases l WHERE l.app = for_app FOR SHARE;
    IF held IS DISTINCT FROM want THEN
        RAISE EXCEPTION 'ferry fence: term % of % is over (the lease is in term %)', want, for_app, coalesce(held::TEXT, 'none')
            USING ERRCODE = 'FE001';
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER builds_fence BEFORE INSERT OR UPDATE OR DELETE ON builds FOR EACH STATEMENT EXECUTE FUNCTION ferry_fence();
CREATE TRIGGER build_steps_fence BEFORE INSERT OR UPDATE OR DELETE ON build_steps FOR EACH STATEMENT EXECUTE FUNCTION ferry_fence();
CREATE TRIGGER build_logs_fence BEFORE INSERT OR UPDATE OR DELETE ON build_logs FOR EACH STATEMENT EXECUTE FUNCTION ferry_fence();
CREATE TRIGGER events_fence BEFORE INSERT OR UPDATE OR DELETE ON events FOR EACH STATEMENT EXECUTE FUNCTION ferry_fence();
CREATE TRIGGER deployments_fence BEFORE INSERT OR UPDATE OR DELETE ON deployments FOR EACH STATEMENT EXECUTE FUNCTION ferry_fence();
CREATE TRIGGER tokens_fence BEFORE INSERT OR UPDATE OR DELETE ON tokens FOR EACH STATEMENT EXECUTE FUNCTION ferry_fence();
CREATE TRIGGER locks_fence BEFORE INSERT OR UPDATE OR DELETE ON locks FOR EACH STATEMENT EXECUTE FUNCTION ferry_fence();
CREATE TRIGGER quarantines_fence BEFORE INSERT OR UPDATE OR DELETE ON quarantines FOR EACH STATEMENT EXECUTE FUNCTION ferry_fence();
CREATE TRIGGER webhook_deliveries_fence BEFORE INSERT OR UPDATE OR DELETE ON webhook_deliveries FOR EACH STATEMENT EXECUTE FUNCTION ferry_fence();
CREATE TRIGGER actions_fence BEFORE INSERT OR UPDATE OR DELETE ON actions FOR EACH STATEMENT EXECUTE FUNCTION ferry_fence();
CREATE TRIGGER deployment_commit_times_fence BEFORE INSERT OR UPDATE OR DELETE ON deployment_commit_times FOR EACH STATEMENT EXECUTE FUNCTION ferry_fence();
CREATE TRIGGER event_kinds_fence BEFORE INSERT OR UPDATE OR DELETE ON event_kinds FOR EACH STATEMENT EXECUTE FUNCTION ferry_fence();
