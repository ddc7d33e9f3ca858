-- 035: auto-capture (issue 13 item 4; switch/orders/autocapture.py). A project with the setting auto_capture has
-- its authorizations charged capture_hours after they were made, by a job in every serving process. The due
-- orders are found from the orders themselves (status 'authorized', created long enough ago), so what was due
-- while no process ran is charged by the next one: a restart loses none. This table is the job's bookkeeping:
-- one row per order it tried, claimed with a lease (a process that dies mid-charge leaves a lease that runs
-- out, and another takes the order again), then 'done' or 'failed' (declined, or out of attempts: left to the
-- merchant, shown in the log).
CREATE TABLE auto_captures (
    order_id        text        PRIMARY KEY REFERENCES orders (id),
    project_id      bigint      NOT NULL,
    state           text        NOT NULL DEFAULT 'claimed' CHECK (state IN ('claimed', 'done', 'failed')),
    attempts        integer     NOT NULL DEFAULT 1,
    next_attempt_at timestamptz NOT NULL,  -- the lease's end while claimed; the retry's time after a transient failure
    last_error      text,
    updated         timestamptz NOT NULL
);

-- The job's search: a project's authorized orders, oldest first (partial: only the orders waiting for a charge).
CREATE INDEX orders_authorized_created ON orders (project_id, created) WHERE status = 'authorized';
