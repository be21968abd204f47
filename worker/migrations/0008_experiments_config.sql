-- Experiments become a config kind (#16): revisions may hold them. SQLite cannot change a
-- CHECK constraint in place, so the table is rebuilt with the same rows (content-addressed
-- and immutable: ids and bodies are copied as they are). Staged edits reference revisions
-- (a foreign key): dropping the old table would count each as a violation that the
-- rename does not clear, so they wait in a holding table meanwhile.
PRAGMA defer_foreign_keys = true;

CREATE TABLE revisions_v2 (
  id         TEXT PRIMARY KEY, -- SHA-256 of the canonical JSON body
  kind       TEXT NOT NULL CHECK (kind IN ('flags', 'segments', 'probes', 'experiments')),
  key        TEXT NOT NULL,
  body       TEXT NOT NULL,
  created_at INTEGER NOT NULL
);
INSERT INTO revisions_v2 (id, kind, key, body, created_at)
  SELECT id, kind, key, body, created_at FROM revisions;

CREATE TABLE stage_held AS SELECT * FROM stage;
DELETE FROM stage;
DROP TABLE revisions;
ALTER TABLE revisions_v2 RENAME TO revisions;
INSERT INTO stage SELECT * FROM stage_held;
DROP TABLE stage_held;

CREATE TRIGGER revisions_immutable BEFORE UPDATE ON revisions
BEGIN SELECT RAISE(ABORT, 'revisions are immutable'); END;
CREATE TRIGGER revisions_kept BEFORE DELETE ON revisions
BEGIN SELECT RAISE(ABORT, 'revisions are never deleted'); END;
