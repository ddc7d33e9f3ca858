-- 032: the portal's account recovery, the e-mail code as a second factor, and a bounded login history (issue 13
-- items 2 and 9; switch/portal/account.py).

-- A recovery link's token: random in the mail, only its SHA-256 here (a copy of this table opens nothing). One use
-- (`used`), an expiry, and at most one live link per user (a new request replaces the old one).
CREATE TABLE portal_recovery (
    token_hash  bytea       PRIMARY KEY,
    user_id     bigint      NOT NULL REFERENCES portal_users (id) ON DELETE CASCADE,
    created     timestamptz NOT NULL,
    expires     timestamptz NOT NULL,
    used        timestamptz
);
CREATE INDEX portal_recovery_user ON portal_recovery (user_id);

-- The second factor a user chose: the authenticator app (totp_enabled, 030) or a code by e-mail; never both.
ALTER TABLE portal_users ADD COLUMN email_code_enabled boolean NOT NULL DEFAULT false;

-- The one live e-mailed code of a user (a new one replaces it): for a login, or to confirm the enrolment. Kept as
-- an HMAC-free SHA-256 of "<user id>:<code>": it lives minutes and dies after `tries` wrong guesses.
CREATE TABLE portal_email_codes (
    user_id     bigint      PRIMARY KEY REFERENCES portal_users (id) ON DELETE CASCADE,
    purpose     text        NOT NULL CHECK (purpose IN ('login', 'enrol')),
    code_hash   bytea       NOT NULL,
    created     timestamptz NOT NULL,
    expires     timestamptz NOT NULL,
    tries       integer     NOT NULL DEFAULT 0
);

-- New results in the history: a login completed with an e-mailed code, a password set through a recovery link.
ALTER TABLE portal_logins DROP CONSTRAINT portal_logins_result_check;
ALTER TABLE portal_logins ADD CONSTRAINT portal_logins_result_check CHECK (result IN (
    'ok', 'bad_password', 'unknown_user', 'locked', 'bad_code', 'recovery_code', 'no_project', 'logout',
    'email_code', 'recovery_link'));

-- The bound ([portal] history_keep rows per user, none older than history_days): the newest rows of a user by id,
-- and the old ones (of unknown addresses too) by time.
CREATE INDEX portal_logins_user_id ON portal_logins (user_id, id DESC);
CREATE INDEX portal_logins_at ON portal_logins (at);
