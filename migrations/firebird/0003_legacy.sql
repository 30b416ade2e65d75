-- Legacy sites (docs/legacy.md), Firebird 2.5 dialect 3: the original source of every unit
-- trigger `ponte unit-triggers guard` rewrote, so `unguard` restores it byte for byte.
-- GUARDED_SOURCE is the text ponte wrote: a trigger whose source no longer equals it was changed
-- since (by the vendor), and is never overwritten blindly.
CREATE TABLE PONTE_TRIGGER_SOURCE (
    TRIGGER_NAME    VARCHAR(31) CHARACTER SET UNICODE_FSS NOT NULL,
    RELATION_NAME   VARCHAR(31) CHARACTER SET UNICODE_FSS NOT NULL,
    ORIGINAL_SOURCE BLOB SUB_TYPE TEXT CHARACTER SET UTF8 NOT NULL,
    GUARDED_SOURCE  BLOB SUB_TYPE TEXT CHARACTER SET UTF8 NOT NULL,
    GUARDED_AT      TIMESTAMP DEFAULT CURRENT_TIMESTAMP NOT NULL,
    CONSTRAINT PK_PONTE_TRIGGER_SOURCE PRIMARY KEY (TRIGGER_NAME)
);
