// `npm test`: install and build what is missing, then run every suite:
// formatting and clippy (host and wasm32), Rust unit tests, and the end-to-end suites
// against `wrangler dev` and headless Chromium.
//   npm test -- --e2e-only         skip lint and Rust tests
//   npm test -- --file ingest      run only tests/e2e/*ingest*.test.mjs
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { ensureAll, log, PATHS, ROOT, run } from './toolchain.mjs';

const args = process.argv.slice(2);
const e2eOnly = args.includes('--e2e-only');
const fileFilter = args.includes('--file') ? args[args.indexOf('--file') + 1] : '';

ensureAll({ browser: true });

if (!e2eOnly) {
  log('cargo fmt --check');
  run('cargo', ['fmt', '--all', '--check']);
  log('clippy (host)');
  run('cargo', ['clippy', '--quiet', '--workspace', '--all-targets', '--', '-D', 'warnings']);
  log('clippy (wasm32)');
  run('cargo', ['clippy', '--quiet', '-p', 'telltale', '-p', 'telltale-worker', '--target', 'wasm32-unknown-unknown', '--', '-D', 'warnings']);
  log('Rust tests');
  run('cargo', ['test', '--quiet', '--workspace']);
}

const suites = readdirSync(join(ROOT, 'tests/e2e'))
  .filter((f) => f.endsWith('.test.mjs') && f.includes(fileFilter))
  .sort()
  .map((f) => join('tests/e2e', f));
log(`end-to-end suites: ${suites.join(', ')}`);
run(PATHS.node22, ['--test', '--test-concurrency=1', '--test-reporter=spec', ...suites]);
