-- 013: what the operators' metrics read at each scrape (issue 11, wave 2).
--
-- isoswitch_webhook_outbox_depth{state} counts pending and failed deliveries every scrape
-- (switch/webhooks/store.py, WebhookStore.depth). Pending rows have their partial index
-- (webhook_outbox_due, 008); failed ones had none, so the count would read the whole outbox,
-- which keeps every delivered row. Failed rows are few (given up after 3 days, or a removed
-- endpoint): this partial index is small and costs the hot path nothing (rows enter it only
-- when a delivery gives up).
CREATE INDEX webhook_outbox_failed ON webhook_outbox (id) WHERE state = 'failed';
