-- Probe results, states and transitions. See core/src/probes.rs.

CREATE TABLE probe_results (
  id         INTEGER PRIMARY KEY AUTOINCREMENT,
  probe      TEXT    NOT NULL,
  started_at INTEGER NOT NULL, -- UTC ms
  ended_at   INTEGER NOT NULL, -- UTC ms
  ok         INTEGER NOT NULL CHECK (ok IN (0, 1)),
  status     INTEGER,
  latency_ms INTEGER NOT NULL,
  error      TEXT,
  source     TEXT    NOT NULL -- 'cron' or 'push'
);
-- Decisions and history read results by (probe, end time).
CREATE INDEX probe_results_by_probe_end ON probe_results (probe, ended_at);

CREATE TABLE probe_states (
  probe           TEXT PRIMARY KEY,
  state           TEXT NOT NULL CHECK (state IN ('unknown', 'up', 'down')),
  since           INTEGER NOT NULL,
  override        TEXT NOT NULL DEFAULT 'auto' CHECK (override IN ('auto', 'force_up', 'force_down')),
  override_by     TEXT,
  override_reason TEXT,
  updated_at      INTEGER NOT NULL
);

CREATE TABLE probe_transitions (
  seq          INTEGER PRIMARY KEY AUTOINCREMENT,
  probe        TEXT    NOT NULL,
  from_state   TEXT    NOT NULL,
  to_state     TEXT    NOT NULL,
  at           INTEGER NOT NULL,
  reason       TEXT    NOT NULL,
  disable_rate REAL,
  enable_rate  REAL
);
CREATE INDEX probe_transitions_by_probe_at ON probe_transitions (probe, at);
