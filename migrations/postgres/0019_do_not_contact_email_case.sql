-- Email addresses on the do-not-contact list are matched without regard to
-- case, and kept lowercased (ASCII letters, as herald folds them): of
-- entries that differ only in case, the first added stays.
DELETE FROM do_not_contact d
WHERE kind = 'email'
  AND EXISTS (SELECT 1 FROM do_not_contact o
              WHERE o.kind = 'email' AND o.id < d.id
                AND translate(o.value, 'ABCDEFGHIJKLMNOPQRSTUVWXYZ', 'abcdefghijklmnopqrstuvwxyz')
                  = translate(d.value, 'ABCDEFGHIJKLMNOPQRSTUVWXYZ', 'abcdefghijklmnopqrstuvwxyz'));
UPDATE do_not_contact
SET value = translate(value, 'ABCDEFGHIJKLMNOPQRSTUVWXYZ', 'abcdefghijklmnopqrstuvwxyz')
WHERE kind = 'email'
  AND value <> translate(value, 'ABCDEFGHIJKLMNOPQRSTUVWXYZ', 'abcdefghijklmnopqrstuvwxyz');
