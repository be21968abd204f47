// The consumer's storage statements (worker/src/store_events.sql), split by their
// `-- name:` lines the way the Worker reads them, for the bench and the SQL tests.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT } from './toolchain.mjs';

/** `{ name: statement text }` in file order. */
export function storeEventsSql() {
  const sections = {};
  let current = null;
  for (const line of readFileSync(join(ROOT, 'worker/src/store_events.sql'), 'utf8').split('\n')) {
    const name = line.match(/^-- name: (\w+)$/);
    if (name) {
      current = name[1];
      sections[current] = '';
    } else if (current) {
      sections[current] += `${line}\n`;
    }
  }
  return sections;
}

/** The fold statements that follow the inserts, in order. */
export const FOLD_STATEMENTS = ['fold_counts', 'fold_users', 'fold_props', 'fold_names', 'fold_props_catalogue', 'end'];
