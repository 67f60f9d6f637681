-- One run's queued deliveries in order: claiming a single run's (`herald
-- send`) read the whole queue before, every other run's included, once per
-- batch.
CREATE INDEX deliveries_queued_run ON deliveries (run_id, id) WHERE state = 'queued';
