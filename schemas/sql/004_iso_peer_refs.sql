-- 010: how an acquirer host or terminal (the ISO listener's peers, switch/listener.py)
-- names its transactions, so its follow-ups and repeats find our order.
--
-- The listener restamps DE 11, DE 7 and DE 37 on everything it forwards; the
-- peer keeps using its own. One row per request the listener accepted:
-- the peer's DE 41 (right-trimmed), MTI, DE 11, DE 7 and DE 37, and the
-- order/operation it became. A 0220/0400/0420 finds its original by DE 41 +
-- DE 90 (original MTI, STAN, DE 7), or by DE 41 + DE 37 when DE 90 is absent;
-- a repeat (same DE 41, MTI, DE 11, DE 7) hits the primary key and is
-- answered from the first one's outcome.
--
-- Written before the order (its id is allocated first), so no foreign key:
-- a row whose order was never written points at nothing and is ignored.
CREATE TABLE iso_peer_refs (
    project_id        bigint      NOT NULL,
    terminal_id       text        NOT NULL,
    mti               text        NOT NULL,
    stan              text        NOT NULL,
    transmission_time text        NOT NULL,
    rrn               text,
    order_id          text        NOT NULL,
    operation_id      integer     NOT NULL,
    created           timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (project_id, terminal_id, mti, stan, transmission_time)
);

CREATE INDEX iso_peer_refs_rrn ON iso_peer_refs (project_id, terminal_id, rrn);
