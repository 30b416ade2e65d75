-- Unit lifecycle (docs/lifecycle.md): load progress per unit and table, verify results.

-- Outbox rows written by `ponte load` / `ponte repair` carry the run that wrote them (NULL for
-- the application's own rows). They travel exactly like live changes; the mark is for
-- `ponte load --status`, metrics and audits.
ALTER TABLE pg_sync_outbox ADD COLUMN IF NOT EXISTS load_run BIGINT;

-- One load (or repair) of one unit.
CREATE TABLE IF NOT EXISTS ponte_load_run (
    id           BIGSERIAL PRIMARY KEY,
    unit_id      INT NOT NULL,
    kind         VARCHAR(10) NOT NULL CHECK (kind IN ('load', 'repair')),
    status       VARCHAR(12) NOT NULL DEFAULT 'running'
                 CHECK (status IN ('running', 'done', 'failed')),
    tables       TEXT[] NOT NULL,
    error        TEXT,
    started_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    finished_at  TIMESTAMPTZ
);
CREATE INDEX IF NOT EXISTS ponte_load_run_unit ON ponte_load_run (unit_id, id);

-- Progress of one table of a load run, updated in the same transaction as each chunk's outbox
-- rows: a load killed at any point resumes after the last chunk that committed, and that chunk
-- is never written twice.
CREATE TABLE IF NOT EXISTS ponte_load_progress (
    run_id       BIGINT NOT NULL REFERENCES ponte_load_run (id) ON DELETE CASCADE,
    table_name   VARCHAR(50) NOT NULL,
    -- The primary key of the last row written, as text per key column (NULL: nothing yet).
    last_key     TEXT[],
    rows_done    BIGINT NOT NULL DEFAULT 0,
    chunks_done  BIGINT NOT NULL DEFAULT 0,
    rows_total   BIGINT,
    extra_rows   BIGINT,
    extra_deleted BIGINT NOT NULL DEFAULT 0,
    state        VARCHAR(12) NOT NULL DEFAULT 'pending'
                 CHECK (state IN ('pending', 'running', 'written', 'done')),
    updated_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (run_id, table_name)
);

-- The last verify of each unit and table (ponte status, the schedule in `run`, metrics).
CREATE TABLE IF NOT EXISTS ponte_verify_result (
    unit_id      INT NOT NULL,
    table_name   VARCHAR(50) NOT NULL,
    expected     BIGINT NOT NULL,
    found        BIGINT NOT NULL,
    missing      BIGINT NOT NULL,
    extra        BIGINT NOT NULL,
    differing    BIGINT NOT NULL,
    unsettled    BIGINT NOT NULL DEFAULT 0,
    error        TEXT,
    samples      JSONB NOT NULL DEFAULT '[]',
    seconds      DOUBLE PRECISION NOT NULL DEFAULT 0,
    checked_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (unit_id, table_name)
);
