-- 008: webhooks and callbacks (issue 11 item 8; switch/webhooks).
--
-- Endpoints per project. The signing secret has to be recoverable (every
-- delivery is signed with it), so it is not hashed: it is sealed with the
-- PAN vault (AES-256-GCM, key id beside it, associated data
-- "webhook-endpoint:<id>") and shown once, when the endpoint is added.
-- Removing an endpoint keeps its row (removed_at) so its delivery log stays.
CREATE TABLE webhook_endpoints (
    id          bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    project_id  bigint      NOT NULL REFERENCES projects (id),
    name        text        NOT NULL,
    url         text        NOT NULL,
    key_id      text        NOT NULL,
    secret_blob bytea       NOT NULL,
    created     timestamptz NOT NULL DEFAULT now(),
    removed_at  timestamptz
);
-- One live endpoint per name in a project; the outbox fan-out looks endpoints up by project.
CREATE UNIQUE INDEX webhook_endpoints_name ON webhook_endpoints (project_id, name) WHERE removed_at IS NULL;

-- The secret that signs callbacks to an order's own options.notification_url (one per project,
-- sealed like the endpoints', associated data "webhook-project:<id>"). Made by
-- `isoswitch project webhook secret`, or by the first such delivery.
CREATE TABLE webhook_project_secrets (
    project_id  bigint      PRIMARY KEY REFERENCES projects (id),
    key_id      text        NOT NULL,
    secret_blob bytea       NOT NULL,
    created     timestamptz NOT NULL DEFAULT now()
);

-- The order's own callback URL (options.notification_url), kept with the order.
ALTER TABLE orders ADD COLUMN notification_url text;

-- The outbox and the delivery log in one: one row per (event, destination), written in the
-- same statement as the order's status change, updated by each delivery attempt (the last
-- attempt's HTTP status or error). Destination: an endpoint, or (endpoint_id NULL) the
-- order's notification URL. event_id is "evt_<order id>_<order version>": the webhook-id
-- header, the same on every retry and for every destination of the event.
CREATE TABLE webhook_outbox (
    id              bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id        text        NOT NULL,
    project_id      bigint      NOT NULL,
    order_id        text        NOT NULL,
    event_type      text        NOT NULL,
    payload         jsonb,      -- the envelope; NULL: rendered from the order when sent (recovery's events)
    endpoint_id     bigint      REFERENCES webhook_endpoints (id),
    url             text,
    state           text        NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'delivered', 'failed')),
    attempts        integer     NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    retry_from      timestamptz NOT NULL DEFAULT now(),  -- retries stop max_age after this (redeliver resets it)
    last_status     integer,
    last_error      text,
    last_attempt_at timestamptz,
    delivered_at    timestamptz,
    created         timestamptz NOT NULL DEFAULT now(),
    CHECK ((endpoint_id IS NULL) <> (url IS NULL))
);

-- The workers' claim: due pending rows, oldest due first.
CREATE INDEX webhook_outbox_due ON webhook_outbox (next_attempt_at) WHERE state = 'pending';
CREATE INDEX webhook_outbox_event ON webhook_outbox (event_id);
CREATE INDEX webhook_outbox_project ON webhook_outbox (project_id, id);
