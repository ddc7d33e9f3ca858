-- 026: payment links (issue 12 item 7, seeds/000 "Payment links"; switch/links/). A template the merchant makes
-- once; its public URL (/link/{slug}) opens a pre-payment page whose every submission makes an invoice
-- (source 'payment_link', the payer's values in its metadata).
--
-- The slug is kept as it is, not hashed like a page's token: a link is made to be published, the API shows its
-- URL again, and paying through it needs the card anyway. form_key signs the pre-payment form's nonce.
-- Links are never deleted (the invoices made through them name them): DELETE sets `deleted`.
CREATE TABLE payment_links (
    id                  text        PRIMARY KEY CHECK (id ~ '^cpl_[A-Za-z0-9]{16}$'),
    project_id          bigint      NOT NULL,
    slug                text        NOT NULL UNIQUE CHECK (slug ~ '^[A-Za-z0-9_-]{32}$'),
    form_key            bytea       NOT NULL,
    name                text        NOT NULL CHECK (length(name) BETWEEN 1 AND 255),
    title               text        NOT NULL CHECK (length(title) BETWEEN 1 AND 255),
    service             text        NOT NULL,
    currency            text        NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    amount              bigint      CHECK (amount > 0),      -- minor units; NULL: the payer enters it
    amount_min          bigint      CHECK (amount_min > 0),
    amount_max          bigint      CHECK (amount_max >= amount_min),
    description         text,                                -- the merchant's own note
    payment_description text,                                -- shown to the payer, the invoice's description
    parameters          jsonb       NOT NULL DEFAULT '[]'::jsonb,
    customer_fields     text[]      NOT NULL DEFAULT '{}',
    test_mode           boolean     NOT NULL,
    language            text        NOT NULL,
    return_url          text        CHECK (return_url ~ '^https?://'),
    callback_url        text        CHECK (callback_url ~ '^https?://'),
    active              boolean     NOT NULL,
    active_from         timestamptz NOT NULL,
    active_until        timestamptz CHECK (active_until > active_from),  -- NULL: indefinite
    deleted             timestamptz,
    created             timestamptz NOT NULL,
    updated             timestamptz NOT NULL,
    CHECK ((amount IS NULL) = (amount_min IS NOT NULL AND amount_max IS NOT NULL))
);

CREATE INDEX payment_links_list ON payment_links (project_id, created DESC, id DESC) WHERE deleted IS NULL;

-- An invoice made through a link says so.
ALTER TABLE payment_invoices DROP CONSTRAINT payment_invoices_source_check;
ALTER TABLE payment_invoices ADD CONSTRAINT payment_invoices_source_check
    CHECK (source IN ('merchant_api', 'public_api', 'payment_link'));
