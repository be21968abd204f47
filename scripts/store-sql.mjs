// The consumer's storage statements (worker/src/store_events.sql), split by their
// `-- name:` lines the way the Worker reads them, for the bench and the SQL tests.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT } from './toolchain.mjs';

/** `{ name: statement text }` of the consumer's statements, in file order. */
export function storeEventsSql() {
  return sqlSections('worker/src/store_events.sql');
}

/** `{ name: statement text }` of a `.sql` file split by `-- name:` lines, in file order. */
export function sqlSections(file) {
  const sections = {};
  let current = null;
  for (const line of readFileSync(join(ROOT, file), 'utf8').split('\n')) {
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

/** The statements after `insert_events`, in file order: the fold, once per transaction
 * (worker/src/pipeline.rs reads the same order from the same file). */
export const FOLD_STATEMENTS = (() => {
  const names = Object.keys(storeEventsSql());
  return names.slice(names.indexOf('insert_events') + 1);
})();
