-- The relay's commit horizon (docs/delivery.md) is the oldest transaction that is still running
-- AND has written outbox rows: only such a transaction can still commit an outbox id below the
-- rows the relay sees. Every statement that inserts outbox rows takes this shared advisory lock
-- (held to the end of its transaction, never waited for: shared locks do not conflict), so the
-- relay finds those transactions in pg_locks. A session that merely holds a transaction open
-- (an idle psql, a long report, a batch job on other tables) no longer stops replication.
CREATE FUNCTION ponte_outbox_writer() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock_shared(1886350964, 1);
    RETURN NULL;
END $$;

CREATE TRIGGER pg_sync_outbox_writer BEFORE INSERT ON pg_sync_outbox
    FOR EACH STATEMENT EXECUTE FUNCTION ponte_outbox_writer();
