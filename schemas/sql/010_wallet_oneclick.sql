-- 010: oneclick card bindings (switch/orders/oneclick.py): a merchant's customer and the cards
-- they chose to keep with the merchant (seeds/003, Binding a payment card (Oneclick)).
--
-- A binding holds no card data of its own: it names the order whose sealed card (orders.card_key_id,
-- card_blob: PAN and expiry, never a CVV) it pays with, and keeps the mask and expiry to show. The
-- customer id is the merchant's, so every lookup goes through (project_id, customer_id): one project's
-- customer id never reaches another project's cards, even when both use the same id.
--
-- One row per (project, customer, card as shown): binding the same card again moves the binding to
-- the newer order (the most recent card first).

CREATE TABLE oneclick_cards (
    id           bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    project_id   bigint      NOT NULL,
    customer_id  text        NOT NULL CHECK (customer_id ~ '^[A-Za-z0-9]{1,40}$'),
    order_id     text        NOT NULL REFERENCES orders (id),
    pan_mask     text        NOT NULL,
    expiry_month smallint,
    expiry_year  smallint,
    card_type    text,
    created      timestamptz NOT NULL,
    updated      timestamptz NOT NULL,
    CONSTRAINT oneclick_cards_one_per_card UNIQUE NULLS NOT DISTINCT
        (project_id, customer_id, pan_mask, expiry_month, expiry_year)
);

CREATE INDEX oneclick_cards_customer ON oneclick_cards (project_id, customer_id, updated DESC, id DESC);

-- A wallet token pays once: token_pay looks its transaction id up before authorizing (switch/orders/wallet.py).
-- Partial, so that orders without a wallet token (nearly all) cost this index nothing on insert.
CREATE INDEX orders_wallet_transaction ON orders ((secure3d ->> 'xid')) WHERE secure3d ->> 'reason' = 'dsrp';
