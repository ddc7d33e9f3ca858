-- 002: orders and their operations (switch/orders/repo.py).
--
-- Money is bigint minor units of `currency` (ISO 4217 alpha). The PAN is
-- kept only sealed by the vault (card_key_id + card_blob: AES-GCM over PAN
-- and expiry, the order id as associated data) and as the first6****last4
-- mask; a CVV is never stored anywhere.
--
-- Concurrency guard: an operation's id is its position in the order
-- (1, 2, ...), chosen by the writer from the order as it read it. Two
-- writers that read the same state both pick the same next id and the
-- primary key refuses the second; one that read a stale state picks an id
-- that already exists and is refused too. At most one operation per order
-- is pending (operations_one_pending), and the CHECKs below are the last
-- line: an order can never be charged over its amount or refunded over its
-- charge, whatever a buggy or racing writer does.

CREATE TABLE orders (
    id                text        PRIMARY KEY CHECK (id ~ '^[0-9]{17}$'),
    -- No foreign key to projects, as for idempotency_keys (001): each order
    -- insert would take a KEY SHARE lock on its project's one row, and
    -- thousands a second on one row become multixact contention.
    project_id        bigint      NOT NULL,
    status            text        NOT NULL CHECK (status IN (
                          'new', 'prepared', 'authorized', 'charged', 'reversed', 'refunded',
                          'rejected', 'fraud', 'declined', 'chargedback', 'credited', 'error')),
    amount            bigint      NOT NULL CHECK (amount >= 0),
    amount_charged    bigint      NOT NULL DEFAULT 0 CHECK (amount_charged >= 0),
    amount_refunded   bigint      NOT NULL DEFAULT 0 CHECK (amount_refunded >= 0),
    currency          text        NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    auth_code         text,
    rrn               text,
    pan_mask          text,
    card_key_id       text,
    card_blob         bytea,
    card_bin          text,
    card_type         text,
    card_subtype      text,
    card_holder       text,
    expiry_month      smallint,
    expiry_year       smallint,
    client            jsonb       NOT NULL DEFAULT '{}'::jsonb,
    location          jsonb       NOT NULL DEFAULT '{}'::jsonb,
    custom_fields     jsonb       NOT NULL DEFAULT '{}'::jsonb,
    description       text,
    merchant_order_id text,
    segment           text,
    descriptor        text,
    secure3d          jsonb       NOT NULL DEFAULT '{}'::jsonb,
    issuer            jsonb       NOT NULL DEFAULT '{}'::jsonb,
    invoice_id        text,
    parent_order_id   text        REFERENCES orders (id),
    initial_rrn       text,
    recurring         boolean     NOT NULL DEFAULT false,
    source            text        NOT NULL DEFAULT 'rest' CHECK (source IN ('rest', 'iso')),
    version           integer     NOT NULL DEFAULT 0,
    created           timestamptz NOT NULL,
    updated           timestamptz NOT NULL,
    CONSTRAINT orders_charge_within_amount CHECK (amount_charged <= amount),
    CONSTRAINT orders_refund_within_charge CHECK (amount_refunded <= amount_charged),
    CONSTRAINT orders_card_sealed CHECK ((card_key_id IS NULL) = (card_blob IS NULL))
) WITH (fillfactor = 85);

-- GET /orders/ pages newest first within a project; every filter is
-- combined with the project, so each index leads with it. Indexes are
-- kept to the selective filters (exact ids, BIN, IP): each one costs every
-- insert on the hot path, and none covers a column the result write
-- changes (status, amounts, auth code, updated), so that UPDATE can be a
-- HOT update (fillfactor 85 leaves it room on the page). status, card.type,
-- card.subtype, issuer.country and the substring searches (client.name,
-- client.email, issuer.title: ILIKE '%...%', which no b-tree helps) filter
-- the project's rows in created order, narrowed by created_from/created_to.
CREATE INDEX orders_project_created ON orders (project_id, created DESC, id DESC);
CREATE INDEX orders_project_merchant_order ON orders (project_id, merchant_order_id)
    WHERE merchant_order_id IS NOT NULL;
CREATE INDEX orders_project_invoice ON orders (project_id, invoice_id) WHERE invoice_id IS NOT NULL;
CREATE INDEX orders_project_bin ON orders (project_id, card_bin);
CREATE INDEX orders_project_ip ON orders (project_id, (location ->> 'ip'));
CREATE INDEX orders_parent ON orders (parent_order_id) WHERE parent_order_id IS NOT NULL;

CREATE TABLE operations (
    order_id          text        NOT NULL REFERENCES orders (id),
    id                integer     NOT NULL CHECK (id >= 1),
    project_id        bigint      NOT NULL,
    type              text        NOT NULL CHECK (type IN ('authorize', 'charge', 'reverse', 'refund', 'credit')),
    status            text        NOT NULL CHECK (status IN ('pending', 'success', 'failure', 'error')),
    amount            bigint      NOT NULL CHECK (amount >= 0),
    currency          text        NOT NULL,
    iso_response_code text,
    iso_message       text,
    auth_code         text,
    arn               text,
    -- The request as sent: what a capture, reversal or refund puts in DE 90
    -- and DE 37, and what store-and-forward needs to reverse an unknown
    -- outcome. stan is NULL while pending (the link stamps DE 11 at send).
    rrn               text,
    mti               text,
    stan              text,
    transmission_time text,
    terminal_id       text,
    acquirer_id       text,
    processing_code   text,
    cashflow          jsonb,
    created           timestamptz NOT NULL,
    updated           timestamptz NOT NULL,
    PRIMARY KEY (order_id, id)
);

CREATE UNIQUE INDEX operations_one_pending ON operations (order_id) WHERE status = 'pending';
CREATE UNIQUE INDEX operations_arn ON operations (arn) WHERE arn IS NOT NULL;
-- GET /operations/ pages newest first; its status/type filters ride on this scan.
CREATE INDEX operations_project_created ON operations (project_id, created DESC, order_id DESC, id DESC);
-- Recovery (the next issue's store-and-forward) scans the intents left pending.
CREATE INDEX operations_pending ON operations (created) WHERE status = 'pending';
