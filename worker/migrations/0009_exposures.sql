-- Exposure facts for experiments (#16): for each user, app, flag and variant, the first
-- exposure a split decided, kept by the consumer's fold (worker/src/store_events.sql,
-- fold_exposures) from the `$exposure` events each transaction newly inserted, so a
-- redelivered or resent event changes nothing. A user's first exposure is their earliest
-- row; a user with a second variant first seen before an experiment's end is mixed in
-- that experiment and counted in neither arm (worker/src/experiments.sql): rolling the
-- winner out after the end leaves the finished results as they were.
CREATE TABLE exposure_variants (
  app      TEXT    NOT NULL,
  flag     TEXT    NOT NULL,
  user_key TEXT    NOT NULL,
  variant  TEXT    NOT NULL,
  first_ts INTEGER NOT NULL,  -- event time of the first exposure to this variant (ms)
  version  TEXT,              -- the published config version that decided it
  PRIMARY KEY (app, flag, user_key, variant)
) WITHOUT ROWID;

-- Exposures already stored (SDKs have sent `$exposure` since flags shipped).
INSERT INTO exposure_variants (app, flag, user_key, variant, first_ts, version)
SELECT app, props ->> 'flag', user_key, props ->> 'variant', min(ts), props ->> 'version'
FROM events
WHERE name = '$exposure' AND props ->> 'reason' = 'SPLIT'
  AND typeof(props ->> 'flag') = 'text' AND typeof(props ->> 'variant') = 'text'
GROUP BY app, props ->> 'flag', user_key, props ->> 'variant';

-- The events experiments measure: copies of the events whose name a staged experiment's
-- metric uses (experiment_event_names, registered when an experiment is staged or first
-- read), kept by the consumer's fold (fold_experiment_events) from the registration on;
-- what was stored before (rowids up to copy_to) is copied in bounded rowid chunks by the
-- cron and by results requests (copy_from is how far that got). The raw table has no index by name (migration 0006 dropped
-- it to cut the write per event); this one costs a row only for measured events, and a
-- metric reads exactly its users' rows: (app, name, user_key, time) after the exposure.
-- The archive does not move these rows, so results outlive raw retention.
CREATE TABLE experiment_event_names (
  app  TEXT NOT NULL,
  name TEXT NOT NULL,
  registered_at INTEGER NOT NULL,
  copy_from INTEGER NOT NULL,  -- stored rows above this rowid ...
  copy_to   INTEGER NOT NULL,  -- ... and up to this one are still to be copied
  PRIMARY KEY (app, name)
) WITHOUT ROWID;

CREATE TABLE experiment_events (
  app      TEXT    NOT NULL,
  name     TEXT    NOT NULL,
  user_key TEXT    NOT NULL,
  ts       INTEGER NOT NULL,
  id       TEXT    NOT NULL,
  props    TEXT    NOT NULL,
  PRIMARY KEY (app, name, user_key, ts, id)
) WITHOUT ROWID;
