-- Uncertain deliveries may have been sent: the frequency cap counts them
-- when a run is planned, and finds them through this index rather than by
-- reading every delivery.
CREATE INDEX deliveries_uncertain ON deliveries (id) WHERE state = 'uncertain';
