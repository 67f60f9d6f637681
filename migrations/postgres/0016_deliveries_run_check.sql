-- A run's deliveries and suppressions name their run, checked once per
-- statement rather than per row. The foreign keys checked each row with a
-- trigger and a query of its own: 40 % of inserting a 133,000-delivery run.
-- One anti-join over the statement's new rows checks the same thing.
ALTER TABLE deliveries DROP CONSTRAINT deliveries_run_id_fkey;
ALTER TABLE suppressions DROP CONSTRAINT suppressions_run_id_fkey;

CREATE FUNCTION rows_name_runs() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM new_rows n WHERE NOT EXISTS (SELECT 1 FROM runs r WHERE r.id = n.run_id)) THEN
        RAISE foreign_key_violation USING MESSAGE = TG_TABLE_NAME || ': a row names a run that does not exist';
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER deliveries_name_runs AFTER INSERT ON deliveries
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION rows_name_runs();
CREATE TRIGGER suppressions_name_runs AFTER INSERT ON suppressions
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION rows_name_runs();

-- What the foreign keys also guarded: a row never moves to another run, and
-- its run is never deleted or truncated. Here no run is (a run is the
-- record of what was sent, and why); SQLite's foreign keys refuse deleting
-- a run that has deliveries or suppressions.
CREATE FUNCTION refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE restrict_violation USING MESSAGE = TG_TABLE_NAME || ': ' || TG_ARGV[0];
END $$;

CREATE TRIGGER deliveries_keep_run BEFORE UPDATE OF run_id ON deliveries
    FOR EACH ROW WHEN (OLD.run_id IS DISTINCT FROM NEW.run_id)
    EXECUTE FUNCTION refuse_change('a delivery stays in its run');
CREATE TRIGGER suppressions_keep_run BEFORE UPDATE OF run_id ON suppressions
    FOR EACH ROW WHEN (OLD.run_id IS DISTINCT FROM NEW.run_id)
    EXECUTE FUNCTION refuse_change('a suppression stays in its run');
CREATE TRIGGER runs_are_kept BEFORE DELETE ON runs
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_change('runs are kept: they record what was sent');
CREATE TRIGGER runs_not_truncated BEFORE TRUNCATE ON runs
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_change('runs are kept: they record what was sent');
