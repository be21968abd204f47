// `npm test`: install and build what is missing, then run every suite:
// formatting and clippy (host and wasm32), Rust unit tests, and the end-to-end suites
// against `wrangler dev` and headless Chromium.
//   npm test -- --e2e-only         skip lint and Rust tests
//   npm test -- --file ingest      run only tests/e2e/*ingest*.test.mjs
import { readdirSync, readFileSync } from 'node:fs';
import { gzipSync } from 'node:zlib';
import { join } from 'node:path';
import { ensureAll, log, PATHS, ROOT, run } from './toolchain.mjs';

const args = process.argv.slice(2);
const e2eOnly = args.includes('--e2e-only');
const fileFilter = args.includes('--file') ? args[args.indexOf('--file') + 1] : '';

ensureAll({ browser: true });

// The size budget: measured on every run; over the budget fails the run.
const budget = JSON.parse(readFileSync(join(ROOT, 'sdk/size-budget.json'), 'utf8'));
const gz = (file) => gzipSync(readFileSync(join(PATHS.sdkPkg, file)), { level: 9 }).length;
const size = gz('telltale_bg.wasm') + gz('telltale.js');
log(`SDK size: ${size} bytes gzipped (budget ${budget.max_gzip_bytes}, goal ${budget.goal_gzip_bytes})`);
if (size > budget.max_gzip_bytes) {
  console.error(`SDK size ${size} bytes gzipped is over the budget of ${budget.max_gzip_bytes} in sdk/size-budget.json`);
  process.exit(1);
}

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
