-- ponte's tables in the hub PostgreSQL database (PostgreSQL 13+: xid8).
-- pg_sync_outbox keeps the original design's columns; the relay adds its own bookkeeping.
CREATE TABLE pg_sync_outbox (
    id               BIGSERIAL PRIMARY KEY,
    correlation_id   UUID NOT NULL DEFAULT gen_random_uuid(),
    unit_id          INT NOT NULL,
    table_name       VARCHAR(50) NOT NULL,
    operation        CHAR(1) NOT NULL CHECK (operation IN ('I', 'U', 'D')),
    payload          JSONB NOT NULL,
    status           VARCHAR(20) NOT NULL DEFAULT 'pending'
                     CHECK (status IN ('pending', 'processing', 'sent', 'dead')),
    attempts         INT NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    error_log        TEXT,
    created_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- The writing transaction: the relay never reads past a transaction still running
    -- (txid < pg_snapshot_xmin), so a unit's rows are published in commit-safe order.
    txid             XID8 NOT NULL DEFAULT pg_current_xact_id(),
    -- Backoff: a failed row is not retried before this time (and blocks its unit's later rows).
    next_attempt_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    claimed_by       TEXT,
    claimed_at       TIMESTAMPTZ,
    sent_at          TIMESTAMPTZ,
    -- Set when the change came from a unit (hub fan-out); never routed back to that unit.
    origin_unit      INT
);

CREATE UNIQUE INDEX pg_sync_outbox_correlation ON pg_sync_outbox (correlation_id);
-- The claim: pending rows of the leased units in id order.
CREATE INDEX pg_sync_outbox_pending ON pg_sync_outbox (unit_id, id) WHERE status = 'pending';
-- The janitor and shutdown hand-back.
CREATE INDEX pg_sync_outbox_processing ON pg_sync_outbox (claimed_by, claimed_at)
    WHERE status = 'processing';
-- Operators and the dead-letter tooling.
CREATE INDEX pg_sync_outbox_dead ON pg_sync_outbox (unit_id, id) WHERE status = 'dead';

-- One relay instance holds a unit at a time, so a unit's stream is never reordered.
CREATE TABLE ponte_unit_lease (
    unit_id     INT PRIMARY KEY,
    holder      TEXT NOT NULL,
    expires_at  TIMESTAMPTZ NOT NULL
);

-- Live relay instances, for a fair share of units each.
CREATE TABLE ponte_relay_instance (
    instance_id  TEXT PRIMARY KEY,
    seen_at      TIMESTAMPTZ NOT NULL
);

-- Wakes the relays without polling delay; one notification per statement (deduplicated per tx).
CREATE FUNCTION ponte_outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('ponte_outbox', '');
    RETURN NULL;
END $$;

CREATE TRIGGER pg_sync_outbox_notify AFTER INSERT ON pg_sync_outbox
    FOR EACH STATEMENT EXECUTE FUNCTION ponte_outbox_notify();
