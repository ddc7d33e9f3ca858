-- 038: the portal's virtual terminal and invoices (issue 13 item 7; http_front/portal/moto.py).
-- An order keyed on the virtual terminal for a mail or telephone order (DE 25 08 on the wire) says so in its
-- source ('moto'); an invoice made on the portal's invoice page says so in its source ('portal').
ALTER TABLE orders DROP CONSTRAINT orders_source_check;
ALTER TABLE orders ADD CONSTRAINT orders_source_check CHECK (source IN ('rest', 'iso', 'moto'));

ALTER TABLE payment_invoices DROP CONSTRAINT payment_invoices_source_check;
ALTER TABLE payment_invoices ADD CONSTRAINT payment_invoices_source_check
    CHECK (source IN ('merchant_api', 'public_api', 'payment_link', 'portal'));
