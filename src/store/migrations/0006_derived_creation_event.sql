-- An episode's creation event is derived from its `alerts` row instead of
-- written to `alert_events` (issue #13): the row keeps the state it was
-- first stored with (`first_status`, `first_ends_at`; `first_seen_at` is
-- its receipt time), and `alert_events` holds only the changes after it.
-- Per new episode that is one heap row and one index entry fewer.
--
-- Online: adding nullable columns without a default changes the catalog
-- only (no rewrite), and a NOT VALID check is not checked against the
-- rows already there (no scan): the lock is held for milliseconds, within
-- the migrations' lock_timeout. Nothing is copied: an episode stored
-- before this migration keeps NULL there, its creation event being the
-- row that `alert_events` already holds, and the view reads it there.
ALTER TABLE alerts
    ADD COLUMN first_status  text,
    ADD COLUMN first_ends_at timestamptz,
    ADD CONSTRAINT alerts_first_status_check
        CHECK (first_status IN ('firing', 'resolved')) NOT VALID;

-- Every episode's timeline as `alert_events` alone gave it before: the
-- creation event of each episode (derived from `alerts` where it was
-- stored after this migration) and every change after it. Filtered on
-- (fingerprint, starts_at), each branch is one index probe.
CREATE VIEW alert_timeline AS
SELECT fingerprint, starts_at, first_status AS status, first_ends_at AS ends_at,
       first_seen_at AS received_at
FROM alerts
WHERE first_status IS NOT NULL
UNION ALL
SELECT fingerprint, starts_at, status, ends_at, received_at
FROM alert_events;
