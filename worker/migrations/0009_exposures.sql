-- Exposure facts for experiments (#16): each user's first exposure per app and flag to a
-- variant a split decided, kept by the consumer's fold (worker/src/store_events.sql,
-- fold_exposures) from the `$exposure` events each transaction newly inserted, so a
-- redelivered or resent event changes nothing. A user exposed to two variants is
-- `mixed` and counted in neither.
CREATE TABLE exposures (
  app      TEXT    NOT NULL,
  flag     TEXT    NOT NULL,
  user_key TEXT    NOT NULL,
  variant  TEXT    NOT NULL,  -- of the first exposure
  first_ts INTEGER NOT NULL,  -- event time of the first exposure (ms)
  version  TEXT,              -- the published config version that decided it
  mixed    INTEGER NOT NULL DEFAULT 0 CHECK (mixed IN (0, 1)),
  PRIMARY KEY (app, flag, user_key)
) WITHOUT ROWID;

-- Exposures already stored (SDKs have sent `$exposure` since flags shipped).
INSERT INTO exposures (app, flag, user_key, variant, first_ts, version, mixed)
SELECT app, props ->> 'flag', user_key, props ->> 'variant', min(ts), props ->> 'version',
       count(DISTINCT props ->> 'variant') > 1
FROM events
WHERE name = '$exposure' AND props ->> 'reason' = 'SPLIT'
  AND typeof(props ->> 'flag') = 'text' AND typeof(props ->> 'variant') = 'text'
GROUP BY app, props ->> 'flag', user_key;

-- The events experiments measure: copies of the events whose name a staged experiment's
-- metric uses (experiment_event_names, registered when an experiment is staged or first
-- read, with a one-time copy of what is already stored), kept by the consumer's fold
-- (fold_experiment_events). The raw table has no index by name (migration 0006 dropped
-- it to cut the write per event); this one costs a row only for measured events, and a
-- metric reads exactly its users' rows: (app, name, user_key, time) after the exposure.
-- The archive does not move these rows, so results outlive raw retention.
CREATE TABLE experiment_event_names (
  app  TEXT NOT NULL,
  name TEXT NOT NULL,
  registered_at INTEGER NOT NULL,
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
