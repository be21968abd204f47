-- The archive's statements (worker/src/archive.rs; the protocol is in migration 0007), one per
-- `-- name:` section, as store_events.sql. Every statement that reads raw events walks a
-- rowid range (`NOT INDEXED`): the primary key (app, id) would make SQLite read every row
-- of the app instead. The `storage-sql` suite checks each plan.

-- name: lease_take
-- ?1 holder, ?2 until (ms), ?3 now (ms). Changes one row when the lease is free or expired.
UPDATE archive_lease SET holder = ?1, until = ?2 WHERE id = 1 AND until < ?3;

-- name: lease_give_back
UPDATE archive_lease SET until = 0 WHERE id = 1 AND holder = ?1;

-- name: marks
-- ?1 app. Where its scan stands, the largest folded rowid, and the newest row.
SELECT (SELECT scanned_to FROM archive_state WHERE app = ?1) AS scanned_to,
       (SELECT fold_from FROM pipeline_totals WHERE id = 1) AS fold_from,
       (SELECT max(rowid) FROM events) AS newest;

-- name: next_row
-- ?1 after this rowid, ?2 up to this rowid, ?3 app: the app's next row, if any in the span
-- (stops at the first: cheap when the next row is still inside the window).
SELECT ts FROM events NOT INDEXED
WHERE rowid > ?1 AND rowid <= ?2 AND app = ?3
ORDER BY rowid LIMIT 1;

-- name: scan
-- ?1 after this rowid, ?2 up to this rowid, ?3 app, ?4 most bytes: the app's rows in rowid
-- order, cut once their size (about what their NDJSON lines take) passes ?4, so a span of
-- large events cannot exhaust the isolate's memory. `size_so_far` tells the caller where
-- the cut was.
SELECT seq, app, id, type, name, ts, client_ts, received_at, anonymous_id, user_id, user_key, props, url, batch_id, size_so_far
FROM (SELECT rowid AS seq, *,
             sum(length(id) + length(type) + length(name) + length(anonymous_id) + coalesce(length(user_id), 0)
                 + length(user_key) + length(props) + coalesce(length(url), 0) + length(batch_id) + 160)
               OVER (ORDER BY rowid ROWS UNBOUNDED PRECEDING) AS size_so_far,
             length(id) + length(type) + length(name) + length(anonymous_id) + coalesce(length(user_id), 0)
                 + length(user_key) + length(props) + coalesce(length(url), 0) + length(batch_id) + 160 AS size
      FROM events NOT INDEXED
      WHERE rowid > ?1 AND rowid <= ?2 AND app = ?3)
WHERE size_so_far - size < ?4
ORDER BY seq;

-- name: plan_guard
-- ?1 app, ?2 the scan mark this run read. Fails the planning transaction (a NULL key) when
-- another run moved the mark since.
INSERT INTO archive_objects (key) SELECT NULL
WHERE coalesce((SELECT scanned_to FROM archive_state WHERE app = ?1), 0) != ?2;

-- name: plan_object
INSERT INTO archive_objects (key, app, day, first_rowid, last_rowid, events, content_bytes, content_sha256, state, planned_at)
VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 'planned', ?9);

-- name: move_mark
INSERT INTO archive_state (app, scanned_to) VALUES (?1, ?2)
ON CONFLICT (app) DO UPDATE SET scanned_to = excluded.scanned_to;

-- name: object_rows
-- ?1 app, ?2 first rowid, ?3 last rowid, ?4 day start, ?5 day end: an object's rows.
SELECT rowid AS seq, app, id, type, name, ts, client_ts, received_at, anonymous_id, user_id, user_key, props, url, batch_id
FROM events NOT INDEXED
WHERE rowid BETWEEN ?2 AND ?3 AND app = ?1 AND ts >= ?4 AND ts < ?5
ORDER BY rowid;

-- name: verified
UPDATE archive_objects SET state = 'verified', verified_at = ?2, bytes = ?3, sha256 = ?4
WHERE key = ?1 AND state = 'planned';

-- name: delete_guard
-- ?1..?5 the object's rows, ?6 its event count. Fails the delete transaction when the rows
-- are neither all there nor all gone (rowids renumbered by a restore or an import).
INSERT INTO archive_objects (key) SELECT NULL
WHERE (SELECT count(*) FROM events NOT INDEXED
       WHERE rowid BETWEEN ?2 AND ?3 AND app = ?1 AND ts >= ?4 AND ts < ?5) NOT IN (0, ?6);

-- name: remember_ids
-- ?6 keep until (ms), ?7 the oldest event time ingest (with a day's margin) could still take.
INSERT INTO archived_ids (app, id, keep_until)
SELECT app, id, ?6 FROM events NOT INDEXED
WHERE rowid BETWEEN ?2 AND ?3 AND app = ?1 AND ts >= ?4 AND ts < ?5 AND ts >= ?7
ON CONFLICT DO NOTHING;

-- name: keep_measured
-- Events experiments measure (registered names, migration 0009) are copied before their
-- raw rows go, whether or not the chunked copy of stored events has reached them yet.
INSERT INTO experiment_events (app, name, user_key, ts, id, props)
SELECT e.app, e.name, e.user_key, e.ts, e.id, e.props FROM events AS e NOT INDEXED
WHERE e.rowid BETWEEN ?2 AND ?3 AND e.app = ?1 AND e.ts >= ?4 AND e.ts < ?5
  AND EXISTS (SELECT 1 FROM experiment_event_names AS n WHERE n.app = e.app AND n.name = e.name)
ON CONFLICT DO NOTHING;

-- name: audit
-- One line per object, written once: while it is still verified.
INSERT INTO audit (app, at, actor, action, target, before, after)
SELECT ?1, ?2, 'archive', 'events.archive', ?3, NULL,
       json_object('events', ?4, 'bytes', ?5, 'sha256', ?6, 'first_rowid', ?7, 'last_rowid', ?8)
WHERE EXISTS (SELECT 1 FROM archive_objects WHERE key = ?3 AND state = 'verified');

-- name: delete_rows
DELETE FROM events NOT INDEXED
WHERE rowid BETWEEN ?2 AND ?3 AND app = ?1 AND ts >= ?4 AND ts < ?5;

-- name: done
UPDATE archive_objects SET state = 'done', done_at = ?2 WHERE key = ?1 AND state = 'verified';

-- name: prune_ids
DELETE FROM archived_ids WHERE keep_until < ?1;
