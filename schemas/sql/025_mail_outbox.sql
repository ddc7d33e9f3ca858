-- 025: the mail outbox (issue 12 item 7; switch/mail/). Invoices by e-mail now; the portal's recovery links
-- and e-mail codes later.
--
-- One row per mail, written before anything is sent (by the caller, in its own transaction when it wants),
-- claimed by a worker in every serving process with FOR UPDATE SKIP LOCKED and leased for the attempt's
-- timeout (a process that dies mid-attempt leaves the row to another after the lease: at least once, never
-- lost). The whole message is sealed by the vault (AES-256-GCM, associated data "mail:" || message_id), as
-- card data and page tokens are: a mail may carry a pay link or a recovery link, and a copy of this table
-- must not open them. recipient and subject stay readable for `isoswitch mail list`.
CREATE TABLE mail_outbox (
    id              bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    message_id      text        NOT NULL UNIQUE,            -- the Message-ID header, the same on every attempt
    project_id      bigint,                                 -- NULL: not a project's mail (a portal user's)
    kind            text        NOT NULL,                   -- invoice | recovery | code | notice
    reference       text,                                   -- what it is about: an invoice id, a user
    recipient       text        NOT NULL,
    subject         text        NOT NULL,
    key_id          text        NOT NULL,                   -- the vault key that sealed message
    message         bytea       NOT NULL,
    state           text        NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'sent', 'failed')),
    attempts        integer     NOT NULL DEFAULT 0,
    max_attempts    integer     NOT NULL CHECK (max_attempts >= 1),  -- `mail resend` adds a round to it
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    last_attempt_at timestamptz,
    last_error      text,
    sent_at         timestamptz,
    created         timestamptz NOT NULL DEFAULT now()
);
-- The workers' claim: due pending rows, oldest due first.
CREATE INDEX mail_outbox_due ON mail_outbox (next_attempt_at) WHERE state = 'pending';
CREATE INDEX mail_outbox_reference ON mail_outbox (reference) WHERE reference IS NOT NULL;

-- Every attempt, with the server's answer (sent) or the error (failed): the list shows them.
CREATE TABLE mail_attempts (
    mail_id   bigint      NOT NULL REFERENCES mail_outbox (id),
    attempt   integer     NOT NULL,
    at        timestamptz NOT NULL DEFAULT now(),
    ok        boolean     NOT NULL,
    detail    text,                                         -- the server's reply, or the error
    PRIMARY KEY (mail_id, attempt)
);
