-- Email addresses on the do-not-contact list are matched without regard to
-- case, and kept lowercased (ASCII letters, as herald folds them): of
-- entries that differ only in case, the first added stays.
DELETE FROM do_not_contact
WHERE kind = 'email'
  AND EXISTS (SELECT 1 FROM do_not_contact o
              WHERE o.kind = 'email' AND lower(o.value) = lower(do_not_contact.value)
                AND o.id < do_not_contact.id);
UPDATE do_not_contact SET value = lower(value) WHERE kind = 'email' AND value <> lower(value);
