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
