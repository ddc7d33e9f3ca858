-- 021: invoices of seeds/002 (issue 12; switch/invoices/). An invoice owns the order its payment is made
-- through (status new until the cardholder pays it on the hosted page, kind 'invoice'); its status is read
-- from that order, not kept twice.
--
-- The row is written first: the unique (project_id, reference_id) is the claim of the merchant's reference,
-- so two creates with one reference make one invoice (the second answers 409 with the first). The order and
-- its page follow; hence no foreign key to orders (an invoice whose order never got written reads as failed).
-- The page's URL token is kept sealed by the vault (AAD: the invoice id), as card data is: a copy of this
-- table opens no page, and the API can show hpp_url again.
ALTER TABLE payment_pages DROP CONSTRAINT payment_pages_kind_check;
ALTER TABLE payment_pages ADD CONSTRAINT payment_pages_kind_check CHECK (kind IN ('order', 'invoice'));

CREATE TABLE payment_invoices (
    id              text        PRIMARY KEY CHECK (id ~ '^cpi_[A-Za-z0-9]{16}$'),
    project_id      bigint      NOT NULL,
    order_id        text        UNIQUE,                      -- NULL for the test flow (no card, no order)
    reference_id    text        NOT NULL CHECK (length(reference_id) BETWEEN 1 AND 255),
    test_mode       boolean     NOT NULL,
    service         text        NOT NULL,
    payment_flow    text        NOT NULL CHECK (payment_flow IN ('charge', 'verify')),
    amount          bigint      NOT NULL CHECK (amount > 0),  -- minor units of currency
    currency        text        NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    description     text,
    service_fields  jsonb       NOT NULL DEFAULT '{}'::jsonb,
    customer        jsonb,                                    -- as sent (reference_id required in it)
    customer_id     text        CHECK (customer_id ~ '^cus_[A-Za-z0-9]{16}$'),
    metadata        jsonb,
    return_url      text        CHECK (return_url ~ '^https?://'),
    return_urls     jsonb,
    callback_url    text        CHECK (callback_url ~ '^https?://'),
    gateway_options jsonb,
    source          text        NOT NULL CHECK (source IN ('merchant_api', 'public_api')),
    expires         timestamptz NOT NULL,
    page_key_id     text,                                     -- the vault key that sealed page_token
    page_token      bytea,
    callback_logs   jsonb       NOT NULL DEFAULT '{}'::jsonb,
    created         timestamptz NOT NULL,
    updated         timestamptz NOT NULL,
    UNIQUE (project_id, reference_id)
);

-- The list, newest first, paged by cursor (created, id).
CREATE INDEX payment_invoices_list ON payment_invoices (project_id, created DESC, id DESC);
