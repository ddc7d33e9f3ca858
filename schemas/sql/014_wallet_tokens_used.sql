-- 014: a wallet token pays once, decided by the database (review of issue 11).
--
-- 010 let token_pay look the token's transaction id up in orders before authorizing: two concurrent
-- token_pay calls with the same token (two workers, or no Idempotency-Key) both found nothing and both
-- authorized. token_pay now claims the transaction id here first, with INSERT ... ON CONFLICT DO NOTHING
-- on its own connection (never inside the group-commit batch, where a unique violation would fail the
-- other merchants' writes batched with it); the caller that inserts no row lost and is refused as a replay.
--
-- No foreign key to orders: the claim is made before the order's intent is written (the order does not
-- exist yet, and a claim whose authorization then failed before the write keeps the token used: a
-- wallet mints a new token per payment, so the cardholder's retry comes with a new one).

CREATE TABLE wallet_tokens_used (
    transaction_id text        PRIMARY KEY,
    project_id     bigint      NOT NULL,
    order_id       text        NOT NULL,
    created        timestamptz NOT NULL
);

-- Tokens that paid before this migration stay used (010's rule: any DSRP order's xid).
INSERT INTO wallet_tokens_used (transaction_id, project_id, order_id, created)
SELECT DISTINCT ON (secure3d ->> 'xid') secure3d ->> 'xid', project_id, id, created
FROM orders
WHERE secure3d ->> 'reason' = 'dsrp' AND secure3d ->> 'xid' IS NOT NULL
ORDER BY secure3d ->> 'xid', created
ON CONFLICT DO NOTHING;

-- 010's lookup index served only the lookup this table replaces.
DROP INDEX IF EXISTS orders_wallet_transaction;
