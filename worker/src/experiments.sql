-- The statements of experiment results (worker/src/experiments.rs) and of registering the
-- events experiments measure (worker/src/config/staging.rs). Each section starts with a
-- `-- name:` line and holds one statement; tests/e2e/storage-sql.test.mjs runs them on
-- SQLite and checks that each reads by primary key (the README shows the plans).
--
-- Metric parameters: ?1 app, ?2 flag, ?3 start (ms), ?4 end of exposures (ms), ?5 metric
-- event, ?6 end of counted events (ms), ?7 the window after each user's first exposure
-- (ms), ?8 the numeric property (sum and mean; NULL otherwise), ?9 the metric kind.

-- name: exposures
-- Exposed users per variant, mixed or not, per UTC day of first exposure. A user's first
-- exposure is their earliest (its variant: SQLite's bare column of the one min()). They
-- are mixed when a second variant was first seen before the end of exposures.
WITH users AS (
  SELECT variant, min(first_ts) AS first_ts, count(*) FILTER (WHERE first_ts < ?4) AS seen
  FROM exposure_variants WHERE app = ?1 AND flag = ?2
  GROUP BY user_key)
SELECT variant, seen > 1 AS mixed, first_ts - first_ts % 86400000 AS day, count(*) AS users
FROM users WHERE first_ts >= ?3 AND first_ts < ?4
GROUP BY variant, mixed, day;

-- name: metric
-- Per variant: the users with a value, and the total and sum of squares of their values.
-- A user's value (?9 the metric kind): 1 for a conversion, the number of events for a
-- count, the sum or the mean of the numeric property ?8 (NULL otherwise). The property
-- is matched by its exact key through json_each (never parsed as a JSON path), and only
-- numbers within ±1e15 count, so no total can overflow and no value can raise an error.
WITH users AS (
  SELECT user_key, variant, min(first_ts) AS first_ts, count(*) FILTER (WHERE first_ts < ?4) AS seen
  FROM exposure_variants WHERE app = ?1 AND flag = ?2
  GROUP BY user_key)
SELECT variant, count(*) AS users, total(v) AS total, total(v * v) AS total_sq FROM (
  SELECT x.variant AS variant,
         CASE ?9 WHEN 'conversion' THEN 1 WHEN 'count' THEN count(*)
                 WHEN 'sum' THEN total(p.value) ELSE avg(p.value) END AS v
  -- CROSS JOIN keeps the users outside: each user's rows by primary key, never a scan of
  -- the event's rows with a lookup of users.
  FROM users AS x CROSS JOIN experiment_events AS e
  LEFT JOIN json_each(e.props) AS p
    ON p.key = ?8 AND p.type IN ('integer', 'real') AND p.value BETWEEN -1e15 AND 1e15
  WHERE x.seen = 1 AND x.first_ts >= ?3 AND x.first_ts < ?4
    AND e.app = ?1 AND e.name = ?5 AND e.user_key = x.user_key
    AND e.ts >= x.first_ts AND e.ts < x.first_ts + ?7 AND e.ts < ?6
    AND (?8 IS NULL OR p.key IS NOT NULL)
  GROUP BY x.user_key)
GROUP BY variant;

-- name: registered_names
-- The app's measured events, and how many stored rowids each still has to walk.
SELECT name, copy_to - copy_from AS pending FROM experiment_event_names WHERE app = ?1;

-- name: register_name
-- ?1 app, ?2 event name, ?3 now: the consumer copies this name's new events from now on,
-- and the rows stored so far (rowids up to the largest now) wait for copy_chunk.
INSERT INTO experiment_event_names (app, name, registered_at, copy_from, copy_to)
VALUES (?1, ?2, ?3, 0, (SELECT coalesce(max(rowid), 0) FROM events))
ON CONFLICT DO NOTHING;

-- name: pending_copies
-- Registrations whose stored rows are not all copied yet (a small table: one row per app
-- and measured event name).
SELECT app, name FROM experiment_event_names WHERE copy_from < copy_to LIMIT 100;

-- name: copy_chunk
-- ?1 app, ?2 name, ?3 rowids per chunk: copies the app's events of that name among the
-- next ?3 stored rowids (a rowid range, whatever the app: bounded work per statement).
INSERT INTO experiment_events (app, name, user_key, ts, id, props)
SELECT e.app, e.name, e.user_key, e.ts, e.id, e.props
FROM experiment_event_names AS n CROSS JOIN events AS e NOT INDEXED
WHERE n.app = ?1 AND n.name = ?2
  AND e.rowid > n.copy_from AND e.rowid <= min(n.copy_to, n.copy_from + ?3)
  AND e.app = ?1 AND e.name = ?2
ON CONFLICT DO NOTHING;

-- name: copy_advance
-- In the same transaction as copy_chunk: the cursor past the chunk.
UPDATE experiment_event_names SET copy_from = min(copy_to, copy_from + ?3)
WHERE app = ?1 AND name = ?2;
