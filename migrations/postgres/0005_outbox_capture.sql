-- Trigger capture (docs/capture.md): `ponte outbox install` creates, per `[tables.T] outbox =
-- "trigger"`, a PL/pgSQL function and an AFTER ROW trigger that write the table's outbox rows in
-- the business transaction. What was installed is recorded here, so an install by an older ponte
-- (another version, another body) is detected and replaced, and a second install changes nothing.
CREATE TABLE IF NOT EXISTS ponte_outbox_trigger (
    -- The [tables] name (the outbox table_name the trigger writes).
    table_name    VARCHAR(50) PRIMARY KEY,
    -- The relation the trigger is on, quoted (`"public"."orders"`).
    relation      TEXT NOT NULL,
    -- The trigger (on `relation`) and its function (schema-qualified, quoted).
    trigger_name  TEXT NOT NULL,
    function_name TEXT NOT NULL,
    -- The generator's version and the SHA-256 (hex) of the function body it wrote.
    version       INT NOT NULL,
    body_sha256   CHAR(64) NOT NULL,
    installed_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);
