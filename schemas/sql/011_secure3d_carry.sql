-- 011: what a 3-D Secure authorization carries across the cardholder's wait (switch/secure3d/carry.py),
-- and the sweep of abandoned sessions (switch/secure3d/sweep.py).
--
-- The later 0100 must send what a direct authorize would: the session's extra (jsonb) keeps
-- auto_charge, terminal (DE 41 as chosen), stored (DE 124: initiator, reason, first_rrn, trace_id),
-- descriptor (DE 43: name, city, country), oneclick (the customer the card is kept for), browser
-- (3DS2's browser_details). The order itself keeps notification_url, parent_order_id,
-- initial_rrn, client, location and custom_fields from the start.
--
-- Never card data: the PAN stays sealed on the order, the CVV in one process's memory, the CAVV in
-- authentication_value only between the RReq and the 0100. The check below makes a slip loud.
ALTER TABLE secure3d_sessions ADD CONSTRAINT secure3d_sessions_extra_no_card_data
    CHECK (NOT (extra ?| ARRAY['pan', 'cvv', 'cvv2', 'card', 'cavv', 'authentication_value', 'expiry']));

COMMENT ON COLUMN secure3d_sessions.extra IS
    'auto_charge, terminal, stored (DE 124), descriptor (DE 43), oneclick, browser: never card data';

-- Abandoned sessions are ended by a sweep in every serving process (FOR UPDATE SKIP LOCKED on the
-- index secure3d_sessions_waiting of 007): the order ends declined, secure3d.scenario "expired".
COMMENT ON INDEX secure3d_sessions_waiting IS 'the sweep of abandoned sessions (switch/secure3d/sweep.py)';
