-- ponte's own tables in every unit's Firebird database (Firebird 2.5 dialect 3).
-- The runner applies each file once (PONTE_SCHEMA_VERSION) and skips a CREATE TABLE / INDEX /
-- GENERATOR whose object already exists, so a legacy INDICE is kept as it is.

-- The ledger of applied changes: a correlation id is applied at most once (primary key), in the
-- same transaction as the change itself. OUTCOME: A = applied, S = skipped as stale.
-- APPLIED_SEQ numbers the changes in the order this unit applied them (audits of commit order).
CREATE GENERATOR GEN_SYNC_APPLIED;
CREATE TABLE SYNC_CONTROL (
    CORRELATION_ID  CHAR(36) CHARACTER SET ASCII NOT NULL,
    OUTBOX_ID       BIGINT NOT NULL,
    TABLE_NAME      VARCHAR(63) CHARACTER SET ASCII NOT NULL,
    OP              CHAR(1) CHARACTER SET ASCII NOT NULL,
    OUTCOME         CHAR(1) CHARACTER SET ASCII DEFAULT 'A' NOT NULL,
    APPLIED_AT      TIMESTAMP DEFAULT CURRENT_TIMESTAMP NOT NULL,
    APPLIED_SEQ     BIGINT,
    CONSTRAINT PK_SYNC_CONTROL PRIMARY KEY (CORRELATION_ID)
);
CREATE INDEX IX_SYNC_CONTROL_APPLIED_AT ON SYNC_CONTROL (APPLIED_AT);

-- Never stale over new: the last applied sequence (outbox id) per target row.
CREATE TABLE SYNC_ROW_VERSION (
    TABLE_NAME  VARCHAR(63) CHARACTER SET ASCII NOT NULL,
    ROW_KEY     VARCHAR(200) CHARACTER SET UTF8 NOT NULL,
    SEQ         BIGINT NOT NULL,
    UPDATED_AT  TIMESTAMP DEFAULT CURRENT_TIMESTAMP NOT NULL,
    CONSTRAINT PK_SYNC_ROW_VERSION PRIMARY KEY (TABLE_NAME, ROW_KEY)
);

-- The legacy id table local applications allocate ids from (kept if it already exists).
CREATE TABLE INDICE (
    TABELA     VARCHAR(31) CHARACTER SET ASCII NOT NULL,
    ULTIMO_ID  BIGINT DEFAULT 0 NOT NULL,
    CONSTRAINT PK_INDICE PRIMARY KEY (TABELA)
);
