-- 005: audit log of back-office operations (switch/store/audit.py).
--
-- One row per call of charge, reverse, refund, cancel, credit or rebill:
-- who (the project and its HTTP Basic login), when, what (the order, the
-- amount in minor units and its currency), how it ended (`result`:
-- `success` or the failure type the caller got: declined, fraud, rejected,
-- error, validation) and where from (request id, Idempotency-Key, client
-- address). Never card data: no PAN, no expiry, no CVV, no holder name.
--
-- No foreign keys: a refused call on an order id that does not exist is
-- audited too, and the log outlives whatever it describes.
CREATE TABLE audit_log (
    id              bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at              timestamptz NOT NULL,
    project_id      bigint      NOT NULL,
    actor           text        NOT NULL,   -- the login that authenticated
    action          text        NOT NULL
                    CHECK (action IN ('charge', 'reverse', 'refund', 'cancel', 'credit', 'rebill')),
    order_id        text,                   -- the order acted on (for POST /orders/credit: the new one)
    new_order_id    text,                   -- the order a rebill or credit created
    operation_id    integer,                -- the operation it made, when it got that far
    amount          bigint,                 -- minor units
    currency        text,
    result          text        NOT NULL,   -- success | declined | fraud | rejected | error | validation
    message         text,                   -- the failure message the caller got
    request_id      text,
    idempotency_key text,
    source_ip       text,
    channel         text        NOT NULL DEFAULT 'rest'
);

CREATE INDEX audit_log_project_at ON audit_log (project_id, at);
CREATE INDEX audit_log_order ON audit_log (order_id);
