-- Order by receipt, not by commit (issue #14). Several instances, or one
-- instance's spool loaded after an outage, can commit an older delivery of
-- an episode after a newer one. Each row now keeps `version_at`, the
-- receipt time of the latest delivery stored for it (a change or an
-- unchanged repeat): a delivery changes the row only if it was received
-- later, so a late load never rewinds an episode. (`updated_at` stays the
-- receipt time of the last change.)
--
-- Online: a nullable column without a default is a catalog change only.
-- Rows stored before it hold NULL, read as `updated_at` until their next
-- delivery sets it.
ALTER TABLE alerts ADD COLUMN version_at timestamptz;

-- A timeline entry is the first delivery of a run of deliveries in one
-- state; `previous_until` is the receipt time of the last delivery known of
-- the run before it (the row's version when this change was stored). A
-- delivery loaded late is placed with it: inside a run it splits the run
-- (and the run's state comes back at `previous_until`), in the gap after it
-- it starts a run of its own. NULL in entries stored before it (unknown:
-- the run is taken to end where it began).
-- `alerts.previous_until` is the same for the row's last change, set with
-- it (where the change's event gets it from).
ALTER TABLE alert_events ADD COLUMN previous_until timestamptz;
ALTER TABLE alerts ADD COLUMN previous_until timestamptz;

-- The batch statement places a late delivery by what its snapshot shows.
-- When another writer committed the episode after that snapshot was taken
-- (two instances writing it at once), the snapshot cannot place it: the
-- statement then fails with this, SQLSTATE 40001 like any serialization
-- failure, commits nothing, and is written again with a fresh snapshot.
CREATE FUNCTION alert_ingest_retry(reason text) RETURNS boolean
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION USING ERRCODE = 'serialization_failure', MESSAGE = reason;
END $$;
