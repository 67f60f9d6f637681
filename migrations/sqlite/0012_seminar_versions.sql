-- What the seminar file said when herald last read it: the particulars
-- messages show (JSON), and a sequence raised whenever its time, venue or
-- cancellation changes, so that calendar entries sent before are replaced.
ALTER TABLE seminars ADD COLUMN content TEXT;
ALTER TABLE seminars ADD COLUMN fingerprint TEXT;
ALTER TABLE seminars ADD COLUMN sequence BIGINT NOT NULL DEFAULT 0;
