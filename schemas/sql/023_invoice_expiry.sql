-- 023: invoices' expiry, swept by switch/invoices/expiry.py (issue 12 items 5 and 6).
--
-- An invoice's order waits (status new, no card) until the cardholder pays it or the invoice's `expires`
-- passes; then the sweep turns it `rejected` (no operation: the gateway closed it, the issuer never saw it) and
-- writes its `expired` callback in the same statement. A restart loses nothing: what is due is a query, not a
-- timer. This index holds only the orders that still wait for the cardholder on an invoice's page, so a
-- sweep reads a handful of rows however many invoices the project has had.
CREATE INDEX orders_invoice_waiting ON orders (invoice_id) WHERE status = 'new' AND invoice_id IS NOT NULL;
