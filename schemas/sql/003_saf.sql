-- 003: reversals of unknown outcomes and their store-and-forward queue (switch/orders/saf.py).
--
-- Who owns an intent. The runtime writes its owner (a per-process id,
-- "node:host:pid:start") and the destination (the pool the PAN routes to)
-- on every write-ahead intent, together with the STAN it reserved before
-- the write: a process that dies between the send and the result leaves a
-- pending operation another process can reverse (DE 90 needs the STAN and
-- DE 7 of what went out).
ALTER TABLE operations ADD COLUMN owner text;
ALTER TABLE operations ADD COLUMN destination text;

-- One row per reversal the switch owes a host: the original (0100, 0200 or
-- 0220) whose outcome is unknown. It is sent once as 0400 right away; until
-- a host answers, the SAF worker sends it as a 0420 advice and repeats it as
-- 0421 (same DE 11 and DE 7: the host dedupes) with capped exponential
-- backoff; after max_attempts it is left `manual` for a person.
--
-- No card data: the PAN for DE 2 is opened from the order's vault-sealed
-- card (orders.card_key_id / card_blob) when the advice is built;
-- `destination` is the pool the original went to (routing by DE 2 when the
-- configuration no longer has it).
CREATE TABLE saf (
    id                bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    order_id          text        NOT NULL REFERENCES orders (id),
    operation_id      integer     NOT NULL,
    destination       text,
    -- the original to reverse, as it went out
    mti               text        NOT NULL,
    stan              text,
    transmission_time text,
    rrn               text,
    auth_code         text,
    amount            bigint      NOT NULL CHECK (amount >= 0),
    currency          text        NOT NULL,
    acquirer_id       text,
    terminal_id       text,
    merchant_id       text,
    processing_code   text,
    -- the advice: its DE 11 and DE 7 are fixed by the first 0420 so each 0421 repeats it
    advice_stan       text,
    advice_time       text,
    state             text        NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'done', 'manual')),
    attempts          integer     NOT NULL DEFAULT 0,  -- advices sent (0420 + 0421s); the first 0400 not counted
    next_attempt_at   timestamptz NOT NULL,
    response_code     text,       -- DE 39 of the answer that delivered it
    last_error        text,
    created           timestamptz NOT NULL DEFAULT now(),
    updated           timestamptz NOT NULL DEFAULT now(),
    FOREIGN KEY (order_id, operation_id) REFERENCES operations (order_id, id),
    -- One reversal per operation: two recovering nodes, or a crash between
    -- queueing and marking, cannot queue it twice.
    CONSTRAINT saf_one_per_operation UNIQUE (order_id, operation_id)
);

-- The worker's claim: due pending rows, oldest due first.
CREATE INDEX saf_due ON saf (next_attempt_at) WHERE state = 'pending';
CREATE INDEX saf_state_created ON saf (state, created);
