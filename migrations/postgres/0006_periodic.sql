-- Periodic sync (docs/capture.md): `[tables.T] outbox = "periodic"` tables are captured by a
-- round every `every` inside `ponte run` (relay role), with no trigger and no change to the
-- application. A round writes the outbox rows of every row version it has not sent yet.

-- What a round last sent of each row: the row's key (its primary key columns as text, in key
-- order), the `xmin` of the row version sent (the writing transaction or subtransaction, 32 bits)
-- and the unit it went to (NULL: every unit). A row whose current xmin differs was changed (or is
-- new) since; a key here whose row is gone was deleted. ponte's upstream applier records its
-- own writes here too, so a row a unit changed is not sent back to it (no echo).
CREATE TABLE IF NOT EXISTS ponte_periodic_row (
    table_name  VARCHAR(50) NOT NULL,
    row_key     TEXT[] NOT NULL,
    row_xmin    BIGINT NOT NULL,
    unit_id     INT,
    PRIMARY KEY (table_name, row_key)
);

-- One row per periodic table: where its next round starts and what the rounds did.
CREATE TABLE IF NOT EXISTS ponte_periodic_cursor (
    table_name    VARCHAR(50) PRIMARY KEY,
    -- With a change column: the next round reads rows whose change column is at or after this
    -- (the start of the oldest transaction that was running when the last round began, minus
    -- `lookback`, and never past a row that round could not send). NULL: read every row.
    low_mark      TIMESTAMPTZ,
    rounds        BIGINT NOT NULL DEFAULT 0,
    rows_sent     BIGINT NOT NULL DEFAULT 0,
    deletes_sent  BIGINT NOT NULL DEFAULT 0,
    -- Rows the last round could not route (NULL or unknown unit) or had to skip (row locked).
    rows_waiting  BIGINT NOT NULL DEFAULT 0,
    last_error    TEXT,
    started_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    last_round_at TIMESTAMPTZ
);
