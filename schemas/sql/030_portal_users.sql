-- 030: the merchant portal's accounts (issue 13 items 1, 2, 9; switch/portal/). A user is an e-mail address with a
-- password (scrypt, as projects'); its roles are per project (portal_members). Sessions are rows here, so every
-- process of `up --workers` sees them and a logout or a password change ends them everywhere. The cookie carries
-- a random token; only its SHA-256 is kept (a copy of this table opens no session).
CREATE TABLE portal_users (
    id              bigserial   PRIMARY KEY,
    email           text        NOT NULL CHECK (length(email) BETWEEN 3 AND 254),
    password_hash   text        NOT NULL,
    must_change     boolean     NOT NULL DEFAULT true,   -- a one-time password: changed at the first login
    failed_logins   integer     NOT NULL DEFAULT 0,      -- consecutive failures (password or second factor)
    locked_until    timestamptz,
    totp_key_id     text,                                -- the vault key that sealed totp_secret
    totp_secret     bytea,                               -- sealed (AAD "portal-totp:<id>"); NULL: no TOTP
    totp_enabled    boolean     NOT NULL DEFAULT false,  -- the secret was confirmed by a code
    totp_last_step  bigint,                              -- the last accepted TOTP time step (a code works once)
    recovery_codes  text[]      NOT NULL DEFAULT '{}',   -- SHA-256 (hex) of each unused recovery code
    created         timestamptz NOT NULL DEFAULT now(),
    password_changed timestamptz
);
CREATE UNIQUE INDEX portal_users_email ON portal_users (lower(email));

CREATE TABLE portal_members (
    user_id     bigint  NOT NULL REFERENCES portal_users (id) ON DELETE CASCADE,
    project_id  bigint  NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    role        text    NOT NULL CHECK (role IN ('owner', 'admin', 'operator', 'viewer')),
    created     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, project_id)
);
CREATE INDEX portal_members_project ON portal_members (project_id);

-- stage: 'mfa' after the password when a second factor is due (short-lived), 'full' once signed in.
CREATE TABLE portal_sessions (
    token_hash  bytea       PRIMARY KEY,
    user_id     bigint      NOT NULL REFERENCES portal_users (id) ON DELETE CASCADE,
    project_id  bigint      NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    stage       text        NOT NULL CHECK (stage IN ('mfa', 'full')),
    csrf        text        NOT NULL,
    created     timestamptz NOT NULL,
    expires     timestamptz NOT NULL,
    ip          text,
    user_agent  text
);
CREATE INDEX portal_sessions_user ON portal_sessions (user_id);
CREATE INDEX portal_sessions_expires ON portal_sessions (expires);

-- Every attempt, kept for the user's own "login history" page (seeds/004) and for audits.
CREATE TABLE portal_logins (
    id          bigserial   PRIMARY KEY,
    user_id     bigint      REFERENCES portal_users (id) ON DELETE CASCADE,  -- NULL: no such user
    email       text        NOT NULL,
    at          timestamptz NOT NULL,
    ip          text,
    user_agent  text,
    result      text        NOT NULL CHECK (result IN (
        'ok', 'bad_password', 'unknown_user', 'locked', 'bad_code', 'recovery_code', 'no_project', 'logout'))
);
CREATE INDEX portal_logins_user ON portal_logins (user_id, at DESC);
