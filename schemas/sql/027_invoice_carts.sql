-- 027: an invoice's cart (issue 12 item 7; switch/invoices/cart.py): its line items as sent, checked in minor
-- units ([{"name", "quantity": "1.5", "price": 250, "amount": 375, "article"?, "measure"?}], price and amount in
-- minor units of the invoice's currency, their amounts adding up to the invoice's). NULL: no cart.
ALTER TABLE payment_invoices ADD COLUMN cart jsonb CHECK (cart IS NULL OR jsonb_typeof(cart) = 'array');
