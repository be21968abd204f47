-- The statements of one consumer transaction (worker/src/pipeline.rs), in order. The bench
-- (scripts/bench.mjs) runs these same statements on raw SQLite for its ceiling, so each
-- section starts with a `-- name:` line and holds exactly one statement.
--
-- `pipeline_totals.fold_from` is the largest events rowid already folded. Events are deleted
-- only by the archive, which never deletes the newest row nor an unfolded one, and a new
-- row's rowid is one above the largest, so the rows to fold are exactly
-- those above it: the ones this transaction inserted, and any a writer without the fold
-- inserted (an old Worker still running while migration 0006 is applied). A redelivered
-- message inserts nothing (`ON CONFLICT DO NOTHING`) and so folds nothing. Every section
-- after `insert_events` runs once per transaction, in file order.

-- name: begin
-- ?1 messages, ?2 events offered, ?3 retries counted since the last commit. An upsert
-- whose insert path carries the current mark: if the row is missing, that is NULL and
-- fails fold_from's NOT NULL, so the transaction fails loudly rather than storing events
-- that would never be folded (or folding all of them again from a new mark of 0).
INSERT INTO pipeline_totals (id, fold_from, transactions, messages, events_offered, retries)
VALUES (1, (SELECT fold_from FROM pipeline_totals WHERE id = 1), 1, ?1, ?2, ?3)
ON CONFLICT (id) DO UPDATE SET
  transactions = transactions + 1,
  messages = messages + excluded.messages,
  events_offered = events_offered + excluded.events_offered,
  retries = retries + excluded.retries;

-- name: insert_events
-- ?1 a JSON array of rows, each an array in the column order below (props a JSON
-- object, stored as its compact text).
INSERT INTO events (app, id, type, name, ts, client_ts, received_at, anonymous_id, user_id, user_key, props, url, batch_id)
SELECT e.value ->> 0, e.value ->> 1, e.value ->> 2, e.value ->> 3, e.value ->> 4, e.value ->> 5, e.value ->> 6,
       e.value ->> 7, e.value ->> 8, e.value ->> 9, e.value -> 10, e.value ->> 11, e.value ->> 12
FROM json_each(?1) AS e
-- An archived event (moved to R2, worker/src/archive.rs) counts as stored: a late retry or
-- redelivery of it is absorbed like any duplicate.
WHERE NOT EXISTS (SELECT 1 FROM archived_ids AS a WHERE a.app = e.value ->> 0 AND a.id = e.value ->> 1)
ON CONFLICT (app, id) DO NOTHING;

-- name: fold_counts
-- Counts, and the users not yet seen in each bucket (before fold_users records them).
WITH fresh AS (SELECT app, name, ts, user_key FROM events NOT INDEXED WHERE rowid > (SELECT fold_from FROM pipeline_totals WHERE id = 1)),
     grains (granularity, width) AS (VALUES ('hour', 3600000), ('day', 86400000)),
     bucketed AS (SELECT f.app, f.name AS event, g.granularity, f.ts - f.ts % g.width AS bucket, f.user_key
                  FROM fresh AS f, grains AS g)
INSERT INTO agg_counts (app, event, granularity, bucket, count, users)
SELECT b.app, b.event, b.granularity, b.bucket, count(*),
       count(DISTINCT CASE WHEN NOT EXISTS (
         SELECT 1 FROM agg_users AS u
         WHERE u.app = b.app AND u.event = b.event AND u.granularity = b.granularity
           AND u.bucket = b.bucket AND u.user_key = b.user_key) THEN b.user_key END)
FROM bucketed AS b WHERE true
GROUP BY b.app, b.event, b.granularity, b.bucket
ON CONFLICT (app, event, granularity, bucket)
DO UPDATE SET count = count + excluded.count, users = users + excluded.users;

-- name: fold_users
WITH fresh AS (SELECT app, name, ts, user_key FROM events NOT INDEXED WHERE rowid > (SELECT fold_from FROM pipeline_totals WHERE id = 1)),
     grains (granularity, width) AS (VALUES ('hour', 3600000), ('day', 86400000))
INSERT INTO agg_users (app, event, granularity, bucket, user_key)
SELECT DISTINCT f.app, f.name, g.granularity, f.ts - f.ts % g.width, f.user_key
FROM fresh AS f, grains AS g WHERE true
ON CONFLICT DO NOTHING;

-- name: fold_props
INSERT INTO agg_props (app, event, bucket, prop, value, count)
SELECT n.app, n.name, n.ts - n.ts % 3600000, p.key,
       CASE p.type WHEN 'true' THEN 'true' WHEN 'false' THEN 'false' WHEN 'null' THEN 'null' ELSE CAST(p.value AS TEXT) END,
       count(*)
FROM events AS n NOT INDEXED, json_each(n.props) AS p
WHERE n.rowid > (SELECT fold_from FROM pipeline_totals WHERE id = 1)
GROUP BY 1, 2, 3, 4, 5
ON CONFLICT (app, event, prop, bucket, value) DO UPDATE SET count = count + excluded.count;

-- name: fold_names
INSERT INTO event_names (app, name, first_seen)
SELECT app, name, min(ts) FROM events NOT INDEXED
WHERE rowid > (SELECT fold_from FROM pipeline_totals WHERE id = 1)
GROUP BY app, name
ON CONFLICT DO NOTHING;

-- name: fold_props_catalogue
INSERT INTO event_props (app, event, prop)
SELECT DISTINCT n.app, n.name, p.key
FROM events AS n NOT INDEXED, json_each(n.props) AS p
WHERE n.rowid > (SELECT fold_from FROM pipeline_totals WHERE id = 1)
ON CONFLICT DO NOTHING;

-- name: fold_exposures
-- Each user's first exposure per app, flag and variant (migration 0009), from the
-- `$exposure` events above the mark that a split decided (reason SPLIT: experiments run
-- on a split). The version is the earliest event's (SQLite takes bare columns from the
-- row of the one min()), and SET expressions read the row as it was.
INSERT INTO exposure_variants (app, flag, user_key, variant, first_ts, version)
SELECT app, props ->> 'flag', user_key, props ->> 'variant', min(ts), props ->> 'version'
FROM events NOT INDEXED
WHERE rowid > (SELECT fold_from FROM pipeline_totals WHERE id = 1)
  AND name = '$exposure' AND props ->> 'reason' = 'SPLIT'
  AND typeof(props ->> 'flag') = 'text' AND typeof(props ->> 'variant') = 'text'
GROUP BY app, props ->> 'flag', user_key, props ->> 'variant'
ON CONFLICT (app, flag, user_key, variant) DO UPDATE SET
  version = CASE WHEN excluded.first_ts < first_ts THEN excluded.version ELSE version END,
  first_ts = min(first_ts, excluded.first_ts);

-- name: fold_experiment_events
-- Copies of the new events experiments measure (migration 0009): only names a staged
-- experiment's metric registered, each looked up by primary key.
INSERT INTO experiment_events (app, name, user_key, ts, id, props)
SELECT e.app, e.name, e.user_key, e.ts, e.id, e.props FROM events AS e NOT INDEXED
WHERE e.rowid > (SELECT fold_from FROM pipeline_totals WHERE id = 1)
  AND EXISTS (SELECT 1 FROM experiment_event_names AS n WHERE n.app = e.app AND n.name = e.name)
ON CONFLICT DO NOTHING;

-- name: end
-- Both subqueries see the row as it was: the count is of rows above the old mark.
UPDATE pipeline_totals
SET events_stored = events_stored + (SELECT count(*) FROM events NOT INDEXED WHERE rowid > pipeline_totals.fold_from),
    fold_from = (SELECT coalesce(max(rowid), 0) FROM events)
WHERE id = 1;
