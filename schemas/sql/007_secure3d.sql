-- 007: 3-D Secure sessions (switch/secure3d/sessions.py).
--
-- One row per order waiting for the cardholder's authentication: what the
-- completion needs to check the ACS's answer (the ids it must carry, the
-- amount) and to go on (the return URLs, the reason). Never a PAN (the order
-- keeps it sealed), never a CVV (kept in the memory of the process that took
-- it). The tokens the browser carries (MD, threeDSSessionData) are stored as
-- SHA-256 hashes, so a database read gives nothing to replay.
--
-- The RReq's result (trans_status, eci, authentication_value) is what the
-- ACS told us server to server; authentication_value (the CAVV) is cleared in
-- the statement that takes the session for the authorization, so it lives in
-- the database only between the RReq and the 0100.
--
-- state: pending (created), method (3DS2: waiting for the 3DS Method and
-- /resume), challenge (waiting for the PaRes / CRes), completed (taken once
-- by a completion), expired (past expires_at when someone came back).

CREATE TABLE secure3d_sessions (
    order_id             text        PRIMARY KEY REFERENCES orders (id),
    project_id           bigint      NOT NULL,
    version              smallint    NOT NULL CHECK (version IN (1, 2)),
    trans_id             text        NOT NULL UNIQUE,  -- 3DS1 XID, 3DS2 threeDSServerTransID
    acs_trans_id         text,
    ds_trans_id          text,
    md_hash              bytea       UNIQUE,           -- 3DS1 MD, SHA-256
    session_data_hash    bytea       UNIQUE,           -- 3DS2 threeDSSessionData, SHA-256
    amount               bigint      NOT NULL,
    currency             text        NOT NULL,
    reason               text        NOT NULL,
    return_url           text,
    return_url_3ds2      text,
    method_done          boolean     NOT NULL DEFAULT false,
    force_challenge      boolean     NOT NULL DEFAULT false,
    extra                jsonb       NOT NULL DEFAULT '{}'::jsonb,  -- auto_charge, recurring, descriptor
    state                text        NOT NULL CHECK (state IN ('pending', 'method', 'challenge', 'completed', 'expired')),
    trans_status         text,
    eci                  text,
    authentication_value text,
    expires_at           timestamptz NOT NULL,
    created              timestamptz NOT NULL,
    updated              timestamptz NOT NULL
);

-- Sessions still waiting, by deadline: for a sweep of abandoned ones (not built yet: an abandoned
-- session is expired, and its order declined, when someone comes back to it).
CREATE INDEX secure3d_sessions_waiting ON secure3d_sessions (expires_at) WHERE state IN ('pending', 'method', 'challenge');
