-- Firebird -> PostgreSQL (docs/upstream.md): the inbox ledger, the conflict table, and the index the
-- conflict check uses to find the last change PostgreSQL sent a unit for one row.

-- Every upstream change applied (or decided) exactly once: the PG applier inserts the correlation
-- id in the same transaction as the change's effect. outcome: applied, pg_kept (conflict, PG's state
-- kept), unit_won (conflict, the unit's change applied), parked (manual conflict), stale (overtaken).
-- Pruned by age ([upstream] inbox_retention_days).
CREATE TABLE ponte_inbox (
    correlation_id  UUID PRIMARY KEY,
    unit_id         INT NOT NULL,
    table_name      VARCHAR(63) NOT NULL,
    operation       CHAR(1) NOT NULL CHECK (operation IN ('I', 'U', 'D')),
    log_id          BIGINT NOT NULL,
    outcome         VARCHAR(20) NOT NULL,
    applied_at      TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX ponte_inbox_applied_at ON ponte_inbox (applied_at);

-- Conflicts: a unit changed a row on top of a state PostgreSQL had changed since. Every conflict
-- is recorded with both images; `manual` ones stay `open` until an operator resolves them.
CREATE TABLE ponte_conflict (
    id              BIGSERIAL PRIMARY KEY,
    correlation_id  UUID NOT NULL,
    unit_id         INT NOT NULL,
    fb_table        VARCHAR(63) NOT NULL,
    pg_table        VARCHAR(127) NOT NULL,
    row_key         VARCHAR(200) NOT NULL,
    operation       CHAR(1) NOT NULL CHECK (operation IN ('I', 'U', 'D')),
    policy          VARCHAR(20) NOT NULL,
    -- unit_applied (the unit's change won), pg_kept (PostgreSQL's state kept), parked (manual),
    -- overwritten (PostgreSQL's change reached the unit before capture read the row).
    resolution      VARCHAR(20) NOT NULL,
    status          VARCHAR(20) NOT NULL CHECK (status IN ('open', 'resolved')),
    base_seq        BIGINT,
    pg_seq          BIGINT NOT NULL,
    unit_changed_at TIMESTAMPTZ,
    unit_image      JSONB,
    pg_image        JSONB,
    detected_at     TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX ponte_conflict_correlation ON ponte_conflict (correlation_id);
CREATE INDEX ponte_conflict_open ON ponte_conflict (id) WHERE status = 'open';

-- The conflict check: the newest outbox row for (unit, table, key). Serves single-column keys
-- named `id`; a table keyed otherwise wants its own expression index (docs/upstream.md).
CREATE INDEX pg_sync_outbox_row_id ON pg_sync_outbox (table_name, unit_id, (payload ->> 'id'), id);

-- Never stale over new, upstream: the last SYNC_LOG id applied per unit row. A change older than
-- it (a redelivery that overtook a later one) is skipped. After restoring a unit's database from
-- a backup (its generator rewinds), delete that unit's rows here (docs/upstream.md).
CREATE TABLE ponte_upstream_row (
    unit_id     INT NOT NULL,
    table_name  VARCHAR(63) NOT NULL,
    row_key     VARCHAR(200) NOT NULL,
    log_id      BIGINT NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (unit_id, table_name, row_key)
);
