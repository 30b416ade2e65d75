-- Delivery core v2 (docs/delivery.md).

-- Relays heartbeat with the units they are configured for: each unit belongs to one of the live
-- instances that list it (rendezvous hashing), so relays with different [units] cover them all.
ALTER TABLE ponte_relay_instance ADD COLUMN IF NOT EXISTS units INT[] NOT NULL DEFAULT '{}';

-- The claim reads the oldest pending rows of the leased units in id order, whatever the backlog,
-- and stops each unit at its first row that may not go yet (backing off, or written by a
-- transaction at or above the commit horizon): this serves the window.
-- On a very large outbox, create these two CONCURRENTLY before migrating (IF NOT EXISTS skips).
CREATE INDEX IF NOT EXISTS pg_sync_outbox_pending_id ON pg_sync_outbox (id)
    WHERE status = 'pending';
-- Rows another instance still has in flight block the later rows of their unit.
CREATE INDEX IF NOT EXISTS pg_sync_outbox_processing_unit ON pg_sync_outbox (unit_id, id)
    WHERE status = 'processing';

-- What each host's consumers hold back (received, not settled) and why, for `ponte status`:
-- written by the host every few seconds, read as stale after a minute.
CREATE TABLE IF NOT EXISTS ponte_consumer_state (
    unit_id     INT NOT NULL,
    flow        VARCHAR(12) NOT NULL CHECK (flow IN ('downstream', 'upstream')),
    host        TEXT NOT NULL,
    held        INT NOT NULL,
    prefetch    INT NOT NULL,
    reason      TEXT NOT NULL DEFAULT '',
    since       TIMESTAMPTZ,
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (unit_id, flow, host)
);
