-- 009: hosted payment pages (switch/orders/pages.py): the page a cardholder pays a waiting order on.
--
-- The page's URL carries a random token (32 bytes, base64url); only its SHA-256 is kept here, so a
-- copy of the table does not open anyone's page. The order id alone never opens a page, and no card
-- data is ever kept here (the card goes, sealed, onto the order when the page is paid).
--
-- A page is one entry point of the payment page component: `kind` says which (an order made by
-- POST /orders/create today; invoices and payment links later). Several pages may point at one order
-- (a replayed create with the same Idempotency-Key gets a page of its own): the order's version guard
-- (orders.version, save_waiting) makes sure it is paid at most once whichever page is used.
CREATE TABLE payment_pages (
    token_hash  bytea       PRIMARY KEY CHECK (length(token_hash) = 32),
    kind        text        NOT NULL DEFAULT 'order' CHECK (kind IN ('order')),
    order_id    text        NOT NULL REFERENCES orders (id),
    project_id  bigint      NOT NULL,
    -- Per-page key of the form nonces (CSRF): HMAC(form_key, issued-at) travels in the form.
    form_key    bytea       NOT NULL CHECK (length(form_key) = 32),
    expires_at  timestamptz NOT NULL,
    language    text        NOT NULL CHECK (language ~ '^[a-z]{2}$'),
    template    text,
    mobile      boolean     NOT NULL DEFAULT false,
    return_url  text        CHECK (return_url ~ '^https?://'),
    force3d     boolean     NOT NULL DEFAULT false,
    auto_charge boolean     NOT NULL DEFAULT false,
    -- open: waits for the card; paid / declined: a payment was made on it (the order says how it went).
    state       text        NOT NULL DEFAULT 'open' CHECK (state IN ('open', 'paid', 'declined')),
    created     timestamptz NOT NULL,
    updated     timestamptz NOT NULL
);

CREATE INDEX payment_pages_order ON payment_pages (order_id);
