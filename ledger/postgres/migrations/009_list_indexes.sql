-- 009: indexes for the lists users read newest first with no filter but
-- the app (ferry events, ferry history, the dashboard): with only the
-- (app, env, …) indexes every such list sorted all of the app's rows
-- (issue 18: 392 ms for the newest 100 of 100k events).
CREATE INDEX events_by_app_id ON events (app, id);
CREATE INDEX deployments_by_app ON deployments (app, id DESC);
CREATE INDEX deployments_by_app_state ON deployments (app, state, id DESC);
