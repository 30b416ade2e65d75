-- The trigger epoch (docs/legacy.md, "While the host runs"), Firebird 2.5 dialect 3. A statement
-- a connection prepared before a trigger of its table was altered keeps running the old trigger
-- body, so every apply transaction locks this row and compares EPOCH with the value its
-- connection last saw; `ponte unit-triggers guard|unguard` raise it in the transaction that
-- alters the triggers. A changed epoch makes the applier reconnect before it writes anything, and
-- the lock makes the guard wait for the batch in flight: no batch commits with the old bodies
-- after the guard does.
CREATE TABLE PONTE_TRIGGER_EPOCH (
    ID    SMALLINT NOT NULL,
    EPOCH BIGINT NOT NULL,
    CONSTRAINT PK_PONTE_TRIGGER_EPOCH PRIMARY KEY (ID)
);
INSERT INTO PONTE_TRIGGER_EPOCH (ID, EPOCH)
    SELECT 1, 0 FROM RDB$DATABASE WHERE NOT EXISTS (SELECT 1 FROM PONTE_TRIGGER_EPOCH);
