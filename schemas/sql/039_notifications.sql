-- 039: notifications of portal users (issue 13 item 8; seeds/004; switch/notify/).
--
-- What happens (an order's change, a login, an invoice's expiry) is first a row of notify_events, written in
-- the same commit as the thing itself:
--   * an order's change by the statement that changes it (switch/orders/repo.py, the `notify` CTE beside the
--     webhook outbox's rows), only for projects where someone wants notifications;
--   * a successful login by the trigger below (the row of portal_logins is the login);
--   * an invoice's expiry by the worker's sweep (idempotent by its event id: once per invoice).
-- The notify worker claims undispatched events (FOR UPDATE SKIP LOCKED), and in one transaction writes a
-- notification per user whose preferences ask for it (the notification centre) and a delivery per channel
-- (notify_outbox), then marks the event dispatched: each event is fanned out exactly once.
-- Deliveries are retried like mails: an e-mail delivery becomes a row of the mail outbox (the mail worker
-- sends it, retrying); a Telegram one is sent by the notify worker through the bot API port, retried with
-- backoff until max_attempts.

-- What a user wants, per project and event: a row is "notify me" (always in the centre), and the channels.
CREATE TABLE notify_prefs (
    user_id    bigint  NOT NULL REFERENCES portal_users (id) ON DELETE CASCADE,
    project_id bigint  NOT NULL,
    event      text    NOT NULL CHECK (event IN (
        'payment_approved', 'payment_declined', 'refund', 'invoice_paid', 'invoice_expired', 'login')),
    email      boolean NOT NULL DEFAULT false,
    telegram   boolean NOT NULL DEFAULT false,
    PRIMARY KEY (user_id, project_id, event)
);
CREATE INDEX notify_prefs_project ON notify_prefs (project_id, event);

-- A user's Telegram chat (the bot's chat id the user gave; the bot token is the server's, from the environment).
CREATE TABLE notify_telegram (
    user_id bigint PRIMARY KEY REFERENCES portal_users (id) ON DELETE CASCADE,
    chat_id text   NOT NULL CHECK (chat_id ~ '^-?[0-9]{1,20}$|^@[A-Za-z0-9_]{5,32}$')
);

CREATE TABLE notify_events (
    event_id   text        PRIMARY KEY,              -- evt_<order>_<version> | login_<id> | invexp_<invoice>
    project_id bigint,                               -- NULL: a login (the user's projects decide)
    user_id    bigint,                               -- a login's user
    order_id   text,
    event_type text        NOT NULL,                 -- order.<status> | login | invoice.expired
    detail     jsonb,                                -- a login's address and agent; an invoice's id
    created    timestamptz NOT NULL DEFAULT now(),
    dispatched boolean     NOT NULL DEFAULT false
);
CREATE INDEX notify_events_due ON notify_events (created) WHERE NOT dispatched;
-- Dispatched events are kept 3 days (an expired invoice is looked for 2 days: its event id must stay to stop a
-- second notice), then purged by the worker's sweep.
CREATE INDEX notify_events_done ON notify_events (created) WHERE dispatched;
-- The sweep for invoices that expired unpaid looks at a window of expiry times.
CREATE INDEX payment_invoices_expires ON payment_invoices (expires);

-- The notification centre: one row per user and event (read_at NULL: unread).
CREATE TABLE notifications (
    id         bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id    bigint      NOT NULL REFERENCES portal_users (id) ON DELETE CASCADE,
    project_id bigint      NOT NULL,
    event      text        NOT NULL,
    dedupe     text        NOT NULL,                 -- one approval per order, one row per event otherwise
    title      text        NOT NULL,
    body       text        NOT NULL,
    link       text,                                 -- a portal path (/portal/payments/<id>)
    created    timestamptz NOT NULL DEFAULT now(),
    read_at    timestamptz,
    UNIQUE (user_id, dedupe)
);
CREATE INDEX notifications_user ON notifications (user_id, project_id, id DESC);
CREATE INDEX notifications_unread ON notifications (user_id, project_id) WHERE read_at IS NULL;

CREATE TABLE notify_outbox (
    id              bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    notification_id bigint      NOT NULL REFERENCES notifications (id) ON DELETE CASCADE,
    channel         text        NOT NULL CHECK (channel IN ('email', 'telegram')),
    recipient       text        NOT NULL,            -- the e-mail address or the Telegram chat id
    state           text        NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'sent', 'failed')),
    attempts        integer     NOT NULL DEFAULT 0,
    max_attempts    integer     NOT NULL CHECK (max_attempts >= 1),
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    last_error      text,
    sent_at         timestamptz,
    detail          text,                            -- the mail's outbox id, or the bot API's message id
    created         timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX notify_outbox_due ON notify_outbox (next_attempt_at) WHERE state = 'pending';
CREATE INDEX notify_outbox_notification ON notify_outbox (notification_id);

-- A successful login (password alone, or the second factor) is an event, in the login's own commit.
CREATE FUNCTION notify_login() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM notify_prefs WHERE user_id = NEW.user_id AND event = 'login') THEN
        INSERT INTO notify_events (event_id, user_id, event_type, detail, created)
        VALUES ('login_' || NEW.id, NEW.user_id, 'login',
                jsonb_build_object('ip', NEW.ip, 'user_agent', left(NEW.user_agent, 200), 'at', NEW.at), NEW.at)
        ON CONFLICT DO NOTHING;
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER portal_logins_notify AFTER INSERT ON portal_logins FOR EACH ROW
    WHEN (NEW.user_id IS NOT NULL AND NEW.result IN ('ok', 'recovery_code', 'email_code'))
    EXECUTE FUNCTION notify_login();
