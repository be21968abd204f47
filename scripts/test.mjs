// `npm test`: install and build what is missing, then run every suite:
// formatting and clippy (host and wasm32), Rust unit tests, the wasm-bindgen-test suites
// (wasm-pack, in Node and headless Chromium), and the end-to-end suites against
// `wrangler dev` and headless Chromium.
//   npm test -- --e2e-only         skip lint and Rust tests
//   npm test -- --wasm-only        only the wasm-bindgen-test suites (wasm-pack)
//   npm test -- --file ingest      run only tests/e2e/*ingest*.test.mjs
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { measureSdk } from './sdk-size.mjs';
import { ensureAll, log, PATHS, ROOT, run } from './toolchain.mjs';

const args = process.argv.slice(2);
const e2eOnly = args.includes('--e2e-only');
const wasmOnly = args.includes('--wasm-only');
const fileFilter = args.includes('--file') ? args[args.indexOf('--file') + 1] : '';

ensureAll({ browser: true });

// The size budgets: measured on every run; over a budget fails the run.
const budget = JSON.parse(readFileSync(join(ROOT, 'sdk/size-budget.json'), 'utf8'));
const size = await measureSdk();
log(`SDK size: ${size.total} bytes gzipped (JS ${size.js} + wasm ${size.wasm}; budget ${budget.max_gzip_bytes}, goal ${budget.goal_gzip_bytes}); ` +
  `flag engine on demand: ${size.engineTotal} (budget ${budget.max_engine_gzip_bytes})`);
const over = [[size.total, budget.max_gzip_bytes, 'SDK'], [size.engineTotal, budget.max_engine_gzip_bytes, 'flag engine']]
  .filter(([bytes, max]) => bytes > max);
for (const [bytes, max, what] of over) console.error(`${what} size ${bytes} bytes gzipped is over its budget of ${max} in sdk/size-budget.json`);
if (over.length) process.exit(1);

/** The same crates compiled to wasm, under wasm-bindgen-test: the engine and the shared
 * flag vectors in Node; the SDK core (outbox, ids, real localStorage and timers) in
 * headless Chromium through Debian's chromedriver. `--mode no-install`: wasm-pack uses the
 * pinned wasm-bindgen on PATH and downloads nothing. */
function wasmSuites() {
  log('wasm-bindgen-test suites (wasm-pack)');
  run(PATHS.wasmPack, ['test', '--node', '--mode', 'no-install', 'sdk-engine', '--features', 'std']);
  run(PATHS.wasmPack, ['test', '--headless', '--chrome', '--chromedriver', PATHS.chromedriver, '--mode', 'no-install', 'sdk', '--features', 'std']);
}

if (wasmOnly) {
  wasmSuites();
  process.exit(0);
}

if (!e2eOnly) {
  log('cargo fmt --check');
  run('cargo', ['fmt', '--all', '--check']);
  log('clippy (host)');
  run('cargo', ['clippy', '--quiet', '--workspace', '--all-targets', '--', '-D', 'warnings']);
  // Core as the wasm engine links it (`engine` alone, no_std), on the host too.
  run('cargo', ['clippy', '--quiet', '-p', 'telltale-core', '--no-default-features', '--features', 'engine', '--', '-D', 'warnings']);
  log('clippy (wasm32)');
  // The SDK core alone: with the others its dependencies' std features would unify in.
  run('cargo', ['clippy', '--quiet', '-p', 'telltale', '--target', 'wasm32-unknown-unknown', '--', '-D', 'warnings']);
  // One run each: together, the worker's std features would unify into the no_std engine.
  run('cargo', ['clippy', '--quiet', '-p', 'telltale-engine', '--target', 'wasm32-unknown-unknown', '--', '-D', 'warnings']);
  run('cargo', ['clippy', '--quiet', '-p', 'telltale-worker', '--target', 'wasm32-unknown-unknown', '--', '-D', 'warnings']);
  // The package's .d.ts are generated from its JSDoc (and the JS type-checked) by buildSdk;
  // here an app's strict TypeScript uses them, misuse included (tests/types).
  log('TypeScript: the published declarations under an app\'s strict tsc');
  run(PATHS.node22, [join(ROOT, 'node_modules/typescript/bin/tsc'), '-p', join(ROOT, 'tests/types')]);
  log('Rust tests');
  run('cargo', ['test', '--quiet', '--workspace']);
  wasmSuites();
}

const suites = readdirSync(join(ROOT, 'tests/e2e'))
  .filter((f) => f.endsWith('.test.mjs') && f.includes(fileFilter))
  .sort()
  .map((f) => join('tests/e2e', f));
log(`end-to-end suites: ${suites.join(', ')}`);
// A test that hangs fails after 10 minutes instead of holding CI to its limit.
run(PATHS.node22, ['--test', '--test-concurrency=1', '--test-timeout=600000', '--test-reporter=spec', ...suites]);
