-- The statements of experiment results (worker/src/experiments.rs) and of registering the
-- events experiments measure (worker/src/config/staging.rs). Each section starts with a
-- `-- name:` line and holds one statement; tests/e2e/storage-sql.test.mjs runs them on
-- SQLite and checks that each reads by primary key (the README shows the plans).
--
-- Metric parameters: ?1 app, ?2 flag, ?3 start (ms), ?4 end of exposures (ms), ?5 metric
-- event, ?6 end of counted events (ms), ?7 the window after each user's first exposure
-- (ms), ?8 the numeric property (sum and mean; NULL otherwise), ?9 the metric kind.

-- name: exposures
-- Exposed users per variant, mixed or not, per UTC day of first exposure.
SELECT variant, mixed, first_ts - first_ts % 86400000 AS day, count(*) AS users
FROM exposures WHERE app = ?1 AND flag = ?2 AND first_ts >= ?3 AND first_ts < ?4
GROUP BY variant, mixed, day;

-- name: metric
-- Per variant: the users with a value, and the total and sum of squares of their values.
-- A user's value (?9 the metric kind): 1 for a conversion, the number of events for a
-- count, the sum or the mean of the numeric property ?8 (NULL otherwise: events without a
-- number in it do not count).
SELECT variant, count(*) AS users, total(v) AS total, total(v * v) AS total_sq FROM (
  SELECT x.variant AS variant,
         CASE ?9 WHEN 'conversion' THEN 1 WHEN 'count' THEN count(*)
                 WHEN 'sum' THEN sum(e.props ->> ?8) ELSE avg(e.props ->> ?8) END AS v
  FROM exposures AS x
  JOIN experiment_events AS e ON e.app = x.app AND e.name = ?5 AND e.user_key = x.user_key
    AND e.ts >= x.first_ts AND e.ts < x.first_ts + ?7 AND e.ts < ?6
  WHERE x.app = ?1 AND x.flag = ?2 AND x.mixed = 0 AND x.first_ts >= ?3 AND x.first_ts < ?4
    AND (?8 IS NULL OR typeof(e.props ->> ?8) IN ('integer', 'real'))
  GROUP BY x.user_key)
GROUP BY variant;

-- name: registered_names
SELECT name FROM experiment_event_names WHERE app = ?1;

-- name: register_name
-- ?1 app, ?2 event name, ?3 now: the consumer copies this name's new events from now on.
INSERT INTO experiment_event_names (app, name, registered_at) VALUES (?1, ?2, ?3)
ON CONFLICT DO NOTHING;

-- name: copy_stored
-- In the same transaction, the copy of what is already stored, only when the registration
-- is new (its time is this one's): a constant condition, so otherwise nothing is read.
INSERT INTO experiment_events (app, name, user_key, ts, id, props)
SELECT app, name, user_key, ts, id, props FROM events
WHERE app = ?1 AND name = ?2
  AND (SELECT registered_at FROM experiment_event_names WHERE app = ?1 AND name = ?2) = ?3
ON CONFLICT DO NOTHING;
