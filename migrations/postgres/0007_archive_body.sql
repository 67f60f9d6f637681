-- The archived record, deflate-compressed: a bulletin's record is mostly its
-- HTML, and kept for twenty years it is most of the database. Rows with a
-- body keep an empty `record`; herald reads whichever is there.
ALTER TABLE archive ADD COLUMN body BYTEA;
