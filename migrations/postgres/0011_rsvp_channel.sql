-- The channel a client answered by: their notices (confirmation, wait
-- list, promotion, changes) go back the same way.
ALTER TABLE rsvps ADD COLUMN via TEXT CHECK (via IN ('email', 'sms'));
