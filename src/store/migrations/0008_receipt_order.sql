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

-- Places a delivery received before the version its episode's row holds
-- (`t` < version_at) in the timeline, by the runs of equal states it
-- knows; returns whether it changed the timeline. Called by the batch
-- statement for each alert whose row took no change, after the statement
-- has locked the row; being VOLATILE, each query here sees what other
-- writers committed since the statement began.
--   p: the entry that starts the run at or before t; n: the entry after t
--   (`derived`: the creation, read from the row); p's run ends at its last
--   known delivery, n's previous_until (the row's version if p is last).
--   In p's state: it only extends p's run. Else, inside p's run: it splits
--   it (p's state comes back at the run's end); after it: it starts a run,
--   or n's run earlier if in n's state; before the creation: it becomes the
--   creation (`first_seen_at` moves back).
CREATE FUNCTION alert_ingest_place_late(fp text, sa timestamptz, l_status text,
                                        l_ends timestamptz, t timestamptz)
RETURNS boolean
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    a record;
    p record;
    n record;
    p_found boolean;
    n_found boolean;
    p_until timestamptz;
BEGIN
    SELECT r.status, r.ends_at, COALESCE(r.version_at, r.updated_at) AS version,
           r.first_status, r.first_ends_at, r.first_seen_at
    INTO a FROM alerts AS r WHERE r.fingerprint = fp AND r.starts_at = sa;
    IF NOT FOUND OR t >= a.version THEN
        RETURN false;  -- not late: this very delivery, stored already
    END IF;
    SELECT e.status, e.ends_at, e.received_at INTO p FROM alert_timeline AS e
    WHERE e.fingerprint = fp AND e.starts_at = sa AND e.received_at <= t
    ORDER BY e.received_at DESC LIMIT 1;
    p_found := FOUND;
    SELECT x.* INTO n FROM (
        SELECT a.first_status AS status, a.first_ends_at AS ends_at,
               a.first_seen_at AS received_at, NULL::timestamptz AS previous_until,
               true AS derived
        WHERE a.first_status IS NOT NULL
        UNION ALL
        SELECT e.status, e.ends_at, e.received_at, e.previous_until, false
        FROM alert_events AS e WHERE e.fingerprint = fp AND e.starts_at = sa) AS x
    WHERE x.received_at > t ORDER BY x.received_at LIMIT 1;
    n_found := FOUND;

    IF NOT p_found THEN
        IF NOT n_found THEN
            RETURN false;  -- nothing left of its timeline to place it against
        ELSIF n.derived THEN
            UPDATE alerts SET first_status = l_status, first_ends_at = l_ends, first_seen_at = t
            WHERE fingerprint = fp AND starts_at = sa;
            IF (l_status, l_ends) IS DISTINCT FROM (n.status, n.ends_at) THEN
                INSERT INTO alert_events (fingerprint, starts_at, status, ends_at, received_at,
                                          previous_until)
                VALUES (fp, sa, n.status, n.ends_at, n.received_at, t);
            END IF;
            RETURN true;
        END IF;
        -- An episode stored before migration 6 (its creation is an event):
        -- placed after nothing, below.
    ELSIF (l_status, l_ends) IS NOT DISTINCT FROM (p.status, p.ends_at) THEN
        IF n_found AND NOT n.derived AND t > COALESCE(n.previous_until, p.received_at) THEN
            UPDATE alert_events SET previous_until = t
            WHERE fingerprint = fp AND starts_at = sa AND received_at = n.received_at;
        END IF;
        RETURN false;
    END IF;

    IF NOT n_found THEN
        p_until := a.version;
    ELSIF p_found THEN
        p_until := COALESCE(n.previous_until, p.received_at);
    ELSE
        p_until := n.previous_until;
    END IF;
    IF p_found AND t < p_until THEN
        INSERT INTO alert_events (fingerprint, starts_at, status, ends_at, received_at,
                                  previous_until)
        VALUES (fp, sa, l_status, l_ends, t, p.received_at);
        -- The run's state comes back where it was last delivered: p's, or
        -- the row's when nothing follows (the same, unless retention
        -- dropped the events between).
        IF n_found THEN
            INSERT INTO alert_events (fingerprint, starts_at, status, ends_at, received_at,
                                      previous_until)
            VALUES (fp, sa, p.status, p.ends_at, p_until, t);
        ELSIF (a.status, a.ends_at) IS DISTINCT FROM (l_status, l_ends) THEN
            INSERT INTO alert_events (fingerprint, starts_at, status, ends_at, received_at,
                                      previous_until)
            VALUES (fp, sa, a.status, a.ends_at, p_until, t);
        END IF;
        RETURN true;
    END IF;

    -- After p's run (or before every entry of an episode stored before
    -- migration 6).
    IF n_found AND NOT n.derived AND (l_status, l_ends) IS NOT DISTINCT FROM (n.status, n.ends_at) THEN
        DELETE FROM alert_events
        WHERE fingerprint = fp AND starts_at = sa AND received_at = n.received_at;
        INSERT INTO alert_events (fingerprint, starts_at, status, ends_at, received_at,
                                  previous_until)
        VALUES (fp, sa, l_status, l_ends, t, n.previous_until);
    ELSE
        INSERT INTO alert_events (fingerprint, starts_at, status, ends_at, received_at,
                                  previous_until)
        VALUES (fp, sa, l_status, l_ends, t, CASE WHEN p_found THEN p_until END);
        IF n_found AND NOT n.derived THEN
            UPDATE alert_events SET previous_until = t
            WHERE fingerprint = fp AND starts_at = sa AND received_at = n.received_at;
        END IF;
    END IF;
    RETURN true;
END $$;
