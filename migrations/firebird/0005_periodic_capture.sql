-- Periodic capture at the units (docs/upstream.md, "Periodic capture"), Firebird 2.5 dialect 3:
-- for tables with `capture = "periodic"` no trigger is created on the legacy table. Each round
-- compares every row's fingerprint, computed inside Firebird, with the one recorded here, and logs
-- the rows that differ into SYNC_LOG in the same transaction; ponte's own apply transactions keep
-- the fingerprints of the rows they write up to date, so nothing ponte applies is captured again.

-- The last captured fingerprint of each row (two 32-bit hash sums of its image columns).
CREATE TABLE SYNC_PERIODIC (
    TABLE_NAME  VARCHAR(31) CHARACTER SET ASCII NOT NULL,
    ROW_KEY     VARCHAR(200) CHARACTER SET UTF8 NOT NULL,
    H1          BIGINT NOT NULL,
    H2          BIGINT NOT NULL,
    CONSTRAINT PK_SYNC_PERIODIC PRIMARY KEY (TABLE_NAME, ROW_KEY)
);

-- One row per table under periodic capture, written by `ponte capture install` when it records
-- the table's first fingerprints (changes made before that are not captured, as with a trigger).
CREATE TABLE SYNC_PERIODIC_TABLE (
    TABLE_NAME    VARCHAR(31) CHARACTER SET ASCII NOT NULL,
    SEEDED_AT     TIMESTAMP DEFAULT CURRENT_TIMESTAMP NOT NULL,
    LAST_ROUND_AT TIMESTAMP,
    ROUNDS        BIGINT DEFAULT 0 NOT NULL,
    ROWS_LOGGED   BIGINT DEFAULT 0 NOT NULL,
    CONSTRAINT PK_SYNC_PERIODIC_TABLE PRIMARY KEY (TABLE_NAME)
);
