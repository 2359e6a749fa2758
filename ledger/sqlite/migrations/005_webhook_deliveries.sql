-- 005: webhook deliveries ferry acted on, by the sender's delivery id, so
-- that a delivery sent again is recognised (ledger.DeliveryStore). Rows
-- older than ledger.DeliveryRetention are pruned as new ones arrive.

CREATE TABLE webhook_deliveries (
    provider    TEXT NOT NULL,            -- github, gitlab, gitea, generic
    delivery_id TEXT NOT NULL,            -- X-GitHub-Delivery, Idempotency-Key, …
    received_at TEXT NOT NULL,
    PRIMARY KEY (provider, delivery_id)
);
CREATE INDEX webhook_deliveries_by_time ON webhook_deliveries (received_at);
