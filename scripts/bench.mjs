// `npm run bench`: figures, not pass/fail. Prints
//  1. the SDK's gzipped download as a minimal app bundles it (esbuild --minify; JS + wasm),
//     and the flag engine's, which only local mode loads;
//  2. ingest throughput through `wrangler dev` (bounded load from this process, loopback
//     only): accepted events/s at the edge, and stored events/s through Queue -> D1;
//  3. D1 rows written per stored event (the figure D1 bills), from the collector's own
//     count of `meta.rows_written`, against the per-event-trigger scheme it replaced;
//  4. the raw SQLite ceiling on the same machine: the consumer's own statements
//     (worker/src/store_events.sql) in one transaction per request, on a file database,
//     and the old per-event trigger scheme and a bare table for comparison;
//  5. flag evaluations per second: native Rust, the same engine in wasm under Node, and
//     GrowthBook's JS SDK on equivalent rules in the same process; and the collector's
//     per-request time for /v1/flags/evaluate through wrangler dev.
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { gzipSync } from 'node:zlib';
import { measureSdk } from './sdk-size.mjs';
import { FOLD_STATEMENTS, storeEventsSql } from './store-sql.mjs';
import { ensureAll, PATHS, ROOT } from './toolchain.mjs';

if (!process.versions.node.startsWith('22.')) {
  // node:sqlite and wrangler need Node 22: re-run under the pinned one.
  ensureAll();
  const r = spawnSync(PATHS.node22, ['--no-warnings', ...process.argv.slice(1)], { stdio: 'inherit' });
  process.exit(r.status ?? 1);
}

const { Collector, launchChromium, loadSdk, makeEvent, uuidv7, waitFor } = await import('../tests/e2e/harness.mjs');
const { DatabaseSync } = await import('node:sqlite');

const REQUESTS = Number(process.env.BENCH_REQUESTS || 200);
const EVENTS_PER_REQUEST = Number(process.env.BENCH_BATCH || 100);
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY || 8);
const TOTAL = REQUESTS * EVENTS_PER_REQUEST;
const results = {};


function batches() {
  const now = Date.now();
  return Array.from({ length: REQUESTS }, (_, r) => JSON.stringify({
    sent_at: now,
    batch_id: uuidv7(),
    events: Array.from({ length: EVENTS_PER_REQUEST }, (_, i) => makeEvent({
      name: i % 4 === 0 ? 'bench_click' : 'bench_view', anonymous_id: `user-${(r * 31 + i) % 500}`, props: { plan: ['free', 'pro', 'team'][i % 3], page: `/p/${i % 20}` },
    })),
  }));
}

/** D1 rows written per stored event by the per-event trigger scheme this replaced,
 * measured with this same load (200 requests of 100 events, 500 users) at commit 8f20fbe
 * by summing the consumer's `meta.rows_written`. It can no longer be run: the scheme is gone. */
const ROWS_PER_EVENT_PER_EVENT_TRIGGERS = 7.2;

/** Requests/s that `wrangler dev` itself serves at the bench's concurrency, for a route that
 * does nothing (`/healthz`): its local proxy is a floor under every request's cost. */
async function devServerCeiling(collector, requests = 300) {
  let next = 0;
  const t0 = performance.now();
  await Promise.all(Array.from({ length: CONCURRENCY }, async () => {
    while (next++ < requests) await (await fetch(`${collector.url}/healthz`)).text();
  }));
  return Math.round(requests / ((performance.now() - t0) / 1000));
}

async function ingestThroughput(collector) {
  const healthzPerSecond = await devServerCeiling(collector);
  const pipeline = async () => (await collector.admin('GET', '/v1/admin/pipeline')).json.stored;
  const before = await pipeline();
  const bodies = batches();
  let next = 0;
  const t0 = performance.now();
  await Promise.all(Array.from({ length: CONCURRENCY }, async () => {
    while (next < bodies.length) {
      const body = bodies[next++];
      const res = await collector.ingest(body);
      if (res.status !== 202) throw new Error(`ingest answered ${res.status}: ${res.text}`);
    }
  }));
  const accepted = performance.now() - t0;
  await waitFor(async () => (await pipeline()).events - before.events === TOTAL, { timeoutMs: 300_000, intervalMs: 100, what: `${TOTAL} stored events` });
  const stored = performance.now() - t0;
  const raw = ((await collector.count('demo', 'bench_click', { source: 'raw' })) ?? 0) + ((await collector.count('demo', 'bench_view', { source: 'raw' })) ?? 0);
  if (raw !== TOTAL) throw new Error(`the raw store holds ${raw} bench events, not ${TOTAL}`);
  // The rows_written update follows each commit: give the last one a moment.
  await new Promise((r) => setTimeout(r, 500));
  const after = await pipeline();
  return {
    events: TOTAL, requests: REQUESTS, concurrency: CONCURRENCY,
    accepted_events_per_s: Math.round(TOTAL / (accepted / 1000)),
    stored_events_per_s: Math.round(TOTAL / (stored / 1000)),
    p_request_ms: +(accepted / REQUESTS * CONCURRENCY).toFixed(2),
    transactions: after.transactions - before.transactions,
    dev_server_healthz_per_s: healthzPerSecond,
    rows_written_per_event: +((after.rows_written - before.rows_written) / TOTAL).toFixed(3),
  };
}

/** Events/s of raw SQLite doing `scheme`'s storage work, one transaction per request, on a
 * file database in WAL mode (as workerd keeps D1's local database). */
function sqliteBaseline(scheme) {
  const dir = mkdtempSync(join(tmpdir(), 'telltale-bench-sqlite-'));
  const db = new DatabaseSync(join(dir, 'bench.sqlite'));
  try {
    db.exec('PRAGMA journal_mode = WAL');
    const migration = (file) => db.exec(readFileSync(join(ROOT, 'worker/migrations', file), 'utf8'));
    if (scheme === 'bare') {
      db.exec('CREATE TABLE events (app TEXT, id TEXT, type TEXT, name TEXT, ts INTEGER, client_ts INTEGER, received_at INTEGER, anonymous_id TEXT, user_id TEXT, user_key TEXT, props TEXT, url TEXT, batch_id TEXT, PRIMARY KEY (app, id))');
    } else {
      migration('0001_events.sql');
      if (scheme === 'store_events') migration('0006_fold_per_batch.sql');
    }
    const bodies = batches().map((b) => JSON.parse(b));
    const rowsOf = (batch) => batch.events.map((e) => ['demo', e.id, e.type, e.name, e.ts, e.ts, e.ts, e.anonymous_id, null, e.anonymous_id, JSON.stringify(e.props), null, batch.batch_id]);
    let write;
    if (scheme === 'store_events') {
      const sql = storeEventsSql();
      const prepared = Object.fromEntries(Object.entries(sql).map(([name, text]) => [name, db.prepare(text)]));
      write = (batch) => {
        prepared.begin.run(1, batch.events.length, 0);
        prepared.insert_events.run(JSON.stringify(rowsOf(batch).map((row) => row.with(10, JSON.parse(row[10])))));
        for (const f of FOLD_STATEMENTS) prepared[f].run();
      };
    } else {
      const insert = db.prepare('INSERT INTO events (app, id, type, name, ts, client_ts, received_at, anonymous_id, user_id, user_key, props, url, batch_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (app, id) DO NOTHING');
      write = (batch) => { for (const row of rowsOf(batch)) insert.run(...row); };
    }
    const t0 = performance.now();
    for (const batch of bodies) {
      db.exec('BEGIN');
      write(batch);
      db.exec('COMMIT');
    }
    const ms = performance.now() - t0;
    return Math.round(TOTAL / (ms / 1000));
  } finally {
    db.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

const BENCH_RULESET = readFileSync(join(ROOT, 'tests/spec/flags/bench-ruleset.json'), 'utf8');
const FLAG_KEYS = ['checkout', 'course-layout', 'limits'];
const flagContexts = Array.from({ length: 1000 }, (_, i) => ({ user_id: `user-${i}`, role: i % 5 === 0 ? 'teacher' : 'student', course_id: `course-${i % 37}` }));
const FLAG_ROUNDS = Number(process.env.BENCH_FLAG_ROUNDS || 50);

function timeEvaluations(evaluate) {
  evaluate(flagContexts[0], FLAG_KEYS[0]); // warm up
  let on = 0;
  const t0 = performance.now();
  for (let r = 0; r < FLAG_ROUNDS; r++) {
    for (const ctx of flagContexts) {
      for (const key of FLAG_KEYS) if (evaluate(ctx, key) === true) on++;
    }
  }
  const seconds = (performance.now() - t0) / 1000;
  const evaluations = FLAG_ROUNDS * flagContexts.length * FLAG_KEYS.length;
  return { per_second: Math.round(evaluations / seconds), ns_per_evaluation: Math.round((seconds * 1e9) / evaluations), on };
}

async function flagBenchmarks() {
  const native = spawnSync('cargo', ['run', '--release', '-q', '-p', 'telltale-core', '--example', 'flag_bench'], { cwd: ROOT, encoding: 'utf8' });
  if (native.status !== 0) throw new Error(`native flag bench failed: ${native.stderr}`);
  const nativeResult = JSON.parse(native.stdout.trim().split('\n').pop());

  const sdk = await import(join(PATHS.sdkPkg, 'engine.js'));
  await sdk.default({ module_or_path: readFileSync(join(PATHS.sdkPkg, 'telltale_engine_bg.wasm')) });
  const engine = new sdk.FlagEngine(BENCH_RULESET);
  const now = Date.now();
  const wasm = timeEvaluations((ctx, key) => engine.evaluate(key, ctx, {}, now).value);
  // The fast path: the context crosses once, each decision comes back as one number, and
  // the value is read from the tables on the JS side.
  const tables = sdk.readTables(engine);
  const indexes = FLAG_KEYS.map((key) => tables.keys.indexOf(key));
  const valueOf = (i, packed) => tables.variants[i][(packed % 65536) - 1]?.[1];
  const timePacked = (decideContext) => {
    let on = 0;
    const t0 = performance.now();
    for (let r = 0; r < FLAG_ROUNDS; r++) for (const ctx of flagContexts) on += decideContext(ctx);
    const seconds = (performance.now() - t0) / 1000;
    const evaluations = FLAG_ROUNDS * flagContexts.length * FLAG_KEYS.length;
    return { per_second: Math.round(evaluations / seconds), ns_per_evaluation: Math.round((seconds * 1e9) / evaluations), on };
  };
  const wasmPacked = timePacked((ctx) => {
    engine.setContext(ctx, undefined);
    let on = 0;
    for (const i of indexes) if (valueOf(i, engine.decide(i, now)) === true) on++;
    return on;
  });
  const wasmPackedAll = timePacked((ctx) => {
    engine.setContext(ctx, undefined);
    const all = engine.decideAll(now);
    let on = 0;
    for (const i of indexes) if (valueOf(i, all[i]) === true) on++;
    return on;
  });
  // As the SDK's local mode works: one context crossing, all flags decided.
  const wasmAll = (() => {
    const t0 = performance.now();
    let on = 0;
    for (let r = 0; r < FLAG_ROUNDS; r++) {
      for (const ctx of flagContexts) {
        const all = engine.evaluateAll(ctx, {}, now);
        if (all.checkout.value === true) on++;
      }
    }
    const seconds = (performance.now() - t0) / 1000;
    const evaluations = FLAG_ROUNDS * flagContexts.length * FLAG_KEYS.length;
    return { per_second: Math.round(evaluations / seconds), ns_per_evaluation: Math.round((seconds * 1e9) / evaluations), on };
  })();

  const { GrowthBookClient } = await import('@growthbook/growthbook');
  const gb = new GrowthBookClient();
  gb.initSync({ payload: { features: {
    checkout: { defaultValue: false, rules: [{ condition: { role: 'teacher' }, force: true }, { force: true, coverage: 0.3, hashAttribute: 'id' }] },
    'course-layout': { defaultValue: 'grid', rules: [{ key: 'course-layout', variations: ['grid', 'list'], weights: [0.5, 0.5], hashAttribute: 'course_id' }] },
    limits: { defaultValue: { max: 3 } },
  } } });
  const growthbook = timeEvaluations((ctx, key) => gb.evalFeature(key, { attributes: { id: ctx.user_id, role: ctx.role, course_id: ctx.course_id } }).value);
  return { native: nativeResult, wasm, wasm_evaluate_all: wasmAll, wasm_packed: wasmPacked, wasm_packed_all: wasmPackedAll, growthbook };
}

async function evaluateLatency(collector) {
  await collector.publishConfig('demo', JSON.parse(BENCH_RULESET).flags.map((flag) => ['flags', flag.key, flag]), 'bench');
  const n = 500;
  for (let i = 0; i < 20; i++) await collector.request('POST', '/v1/flags/evaluate', { body: { context: flagContexts[i] }, headers: { Authorization: `Bearer ${collector.ingestKey}` } });
  const t0 = performance.now();
  for (let i = 0; i < n; i++) {
    const res = await collector.request('POST', '/v1/flags/evaluate', { body: { context: flagContexts[i % flagContexts.length] }, headers: { Authorization: `Bearer ${collector.ingestKey}` } });
    if (res.status !== 200) throw new Error(`evaluate answered ${res.status}`);
  }
  return { requests: n, flags_per_request: FLAG_KEYS.length, ms_per_request: +((performance.now() - t0) / n).toFixed(3) };
}

ensureAll();
results.sdk = await measureSdk();
const kib = (n) => `${(n / 1024).toFixed(1)} KiB`;
console.log(`SDK download (init + track + flag check, esbuild --minify, gzip -9): ${kib(results.sdk.total)} `
  + `(JS ${kib(results.sdk.js)}, wasm ${kib(results.sdk.wasm)}); flag engine, loaded by local mode only: ${kib(results.sdk.engineTotal)}`);
results.sqlite_store_events_per_s = sqliteBaseline('store_events');
results.sqlite_per_event_triggers_events_per_s = sqliteBaseline('per_event_triggers');
results.sqlite_bare_events_per_s = sqliteBaseline('bare');
console.log(`SQLite ceiling (file database, WAL, ${EVENTS_PER_REQUEST} events per transaction): ${results.sqlite_store_events_per_s} events/s with the consumer's statements `
  + `(store_events.sql); ${results.sqlite_per_event_triggers_events_per_s} events/s with the old per-event triggers; ${results.sqlite_bare_events_per_s} events/s into a bare table`);
/** `track()` in Chromium: ns per call over 100,000 calls (no network or storage on the call path). */
async function trackCost(collector) {
  const browser = await launchChromium();
  try {
    const page = await browser.newPage();
    await page.goto(`${collector.url}/healthz`);
    await loadSdk(page);
    return await page.evaluate(({ endpoint, key }) => {
      const tt = new window.Telltale({ endpoint, key, flagMode: 'off', flushAt: 500, flushIntervalMs: 3600000, maxQueue: 100000, maxStorageBytes: 50000000 });
      for (let i = 0; i < 2000; i++) tt.track('warmup', { i });
      const n = 100000;
      const t0 = performance.now();
      for (let i = 0; i < n; i++) tt.track('bench_track', { i, plan: 'pro' });
      const ms = performance.now() - t0;
      return { calls: n, ns_per_call: Math.round((ms * 1e6) / n) };
    }, { endpoint: collector.url, key: collector.ingestKey });
  } finally {
    await browser.close();
  }
}

/** The console: its gzipped JS and CSS, and the time from navigation to the overview's
 * first drawn chart on a warm local collector (median of 5 loads). */
async function consoleFigures(collector) {
  const dir = join(ROOT, 'www/console');
  const gz = (file) => gzipSync(readFileSync(join(dir, file)), { level: 9 }).length;
  const size = { js_gzip_bytes: gz('console.js'), css_gzip_bytes: gz('console.css') };
  size.total_gzip_bytes = size.js_gzip_bytes + size.css_gzip_bytes;
  const events = Array.from({ length: 200 }, (_, i) => ({ id: uuidv7(), type: 'track', name: i % 3 ? 'search' : 'enroll', ts: Date.now() - i * 60_000, anonymous_id: `a${i % 17}`, props: { q: `q${i % 5}` } }));
  await collector.ingest({ events });
  await collector.waitForCount('demo', 'search', events.filter((e) => e.name === 'search').length, { timeoutMs: 60_000 });
  const browser = await launchChromium();
  const times = [];
  try {
    for (let i = 0; i < 6; i++) {
      const page = await browser.newPage();
      await page.goto(`${collector.url}/console/#key=${collector.adminKey}`);
      await page.waitForSelector('#overview-chart canvas');
      const ms = await page.evaluate(() => performance.now());
      if (i > 0) times.push(ms); // the first load warms the isolate and the caches
      await page.close();
    }
  } finally {
    await browser.close();
  }
  times.sort((a, b) => a - b);
  return { ...size, first_chart_ms: Math.round(times[Math.floor(times.length / 2)]) };
}

// BENCH_ONLY=ingest measures ingest and storage alone, BENCH_ONLY=flags flag evaluation
// alone (quicker, for work on one of them).
const only = process.env.BENCH_ONLY;
if (only && !['ingest', 'flags'].includes(only)) throw new Error(`BENCH_ONLY is ingest or flags, not ${only}`);

function printFlags(f) {
  console.log(`Flag evaluations (${FLAG_KEYS.length} flags x ${flagContexts.length} contexts): native ${f.native.per_second}/s (${f.native.ns_per_evaluation} ns), `
    + `wasm under Node ${f.wasm.per_second}/s (${f.wasm.ns_per_evaluation} ns) one call per flag, ${f.wasm_evaluate_all.per_second}/s (${f.wasm_evaluate_all.ns_per_evaluation} ns) with evaluateAll, `
    + `GrowthBook JS ${f.growthbook.per_second}/s (${f.growthbook.ns_per_evaluation} ns)`);
  console.log(`Packed decisions (setContext once per context, then decide(index) per flag / decideAll; value read from the tables): `
    + `${f.wasm_packed.per_second}/s (${f.wasm_packed.ns_per_evaluation} ns), ${f.wasm_packed_all.per_second}/s (${f.wasm_packed_all.ns_per_evaluation} ns); `
    + `vs GrowthBook ${(f.wasm_packed.per_second / f.growthbook.per_second).toFixed(2)}x and ${(f.wasm_packed_all.per_second / f.growthbook.per_second).toFixed(2)}x`);
  console.log(`Ratios: wasm/GrowthBook = ${(f.wasm.per_second / f.growthbook.per_second).toFixed(2)} (evaluateAll ${(f.wasm_evaluate_all.per_second / f.growthbook.per_second).toFixed(2)}), native/GrowthBook = ${(f.native.per_second / f.growthbook.per_second).toFixed(2)}`);
}

if (only === 'flags') {
  printFlags(await flagBenchmarks());
  process.exit(0);
}

const collector = await Collector.start({ devHooks: false });
try {
  if (!only) results.console = await consoleFigures(collector);
  if (!only) results.track = await trackCost(collector);
  results.ingest = await ingestThroughput(collector);
  if (!only) results.flags_http = await evaluateLatency(collector);
} finally {
  await collector.stop();
}
if (!only) results.flags = await flagBenchmarks();
console.log(`Ingest via wrangler dev (${TOTAL} events, ${REQUESTS} requests of ${EVENTS_PER_REQUEST}, concurrency ${CONCURRENCY}): `
  + `${results.ingest.accepted_events_per_s} events/s accepted (202), ${results.ingest.stored_events_per_s} events/s stored in D1 with aggregates `
  + `(${results.ingest.transactions} consumer transactions)`);
console.log(`Ratios: stored/SQLite-ceiling = ${(results.ingest.stored_events_per_s / results.sqlite_store_events_per_s).toFixed(3)} (goal 0.3), `
  + `accepted/SQLite-bare = ${(results.ingest.accepted_events_per_s / results.sqlite_bare_events_per_s).toFixed(3)}`);
console.log(`wrangler dev's own ceiling: ${results.ingest.dev_server_healthz_per_s} requests/s for GET /healthz at concurrency ${CONCURRENCY}, `
  + `so at most ${results.ingest.dev_server_healthz_per_s * EVENTS_PER_REQUEST} events/s in ${EVENTS_PER_REQUEST}-event requests; `
  + `ingest reaches ${(results.ingest.accepted_events_per_s / EVENTS_PER_REQUEST / results.ingest.dev_server_healthz_per_s).toFixed(2)} of it`);
results.rows_written_per_event_before = ROWS_PER_EVENT_PER_EVENT_TRIGGERS;
console.log(`D1 rows written per stored event (${EVENTS_PER_REQUEST}-event batches): ${results.ingest.rows_written_per_event}, `
  + `was ${ROWS_PER_EVENT_PER_EVENT_TRIGGERS} with per-event triggers: ${(results.ingest.rows_written_per_event / ROWS_PER_EVENT_PER_EVENT_TRIGGERS * 100).toFixed(0)}% (goal at most 40%)`);
if (only) process.exit(0);
const budget = JSON.parse(readFileSync(join(ROOT, 'sdk/size-budget.json'), 'utf8'));
console.log(`SDK size vs budget: ${results.sdk.total} / ${budget.max_gzip_bytes} bytes; vs goal ${budget.goal_gzip_bytes}: ${(results.sdk.total / budget.goal_gzip_bytes).toFixed(2)}x`);
console.log(`track() in Chromium: ${results.track.ns_per_call} ns per call over ${results.track.calls} calls`);
printFlags(results.flags);
console.log(`Console: ${kib(results.console.total_gzip_bytes)} gzipped (JS ${kib(results.console.js_gzip_bytes)}, CSS ${kib(results.console.css_gzip_bytes)}; goal 120 KB), `
  + `first chart ${results.console.first_chart_ms} ms after navigation (median of 5 warm loads; goal 1,000 ms)`);
console.log(`POST /v1/flags/evaluate via wrangler dev: ${results.flags_http.ms_per_request} ms per request (${FLAG_KEYS.length} decisions, sequential, loopback, cached snapshot)`);
mkdirSync(join(ROOT, 'bench-results'), { recursive: true });
writeFileSync(join(ROOT, 'bench-results/latest.json'), JSON.stringify({ at: new Date().toISOString(), ...results }, null, 2));
