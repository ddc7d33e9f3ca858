-- 022: callbacks of invoices (issue 12 item 5; seeds/002 callback_url and callback_logs).
--
-- An invoice's callback is a row of the webhook outbox (008), delivered, signed and retried by the same
-- worker with the project's callback secret, to the invoice's callback_url; invoice_id names its invoice.
-- It is written with the change of the invoice's order that makes the invoice's new status (same statement,
-- switch/orders/repo.py _OUTBOX_ROWS), or with the invoice (the test flow, which has no order). One row per
-- invoice and status: the writers insert with ON CONFLICT DO NOTHING, so an order change that leaves the
-- invoice's status as it was (new -> prepared, authorized -> charged of a verify invoice) sends nothing, and
-- the invoice's callback_logs (read from these rows) has one entry per status, as the seed shows.
ALTER TABLE webhook_outbox ADD COLUMN invoice_id text;
CREATE UNIQUE INDEX webhook_outbox_invoice_status ON webhook_outbox (invoice_id, event_type) WHERE invoice_id IS NOT NULL;
