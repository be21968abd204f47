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
import { gunzipSync, gzipSync } from 'node:zlib';
import { measureSdk } from './sdk-size.mjs';
import { FOLD_STATEMENTS, storeEventsSql } from './store-sql.mjs';
import { benchContexts, growthbookPayload, unleashContext, unleashFeatures } from './flag-peers.mjs';
import { captureSideBySide } from './capture-bench.mjs';
import { trackBursts, trackPerTask } from './track-bursts.mjs';
import { ensureAll, ensureBrowsers, PATHS, ROOT, run as runTool } from './toolchain.mjs';

if (!process.versions.node.startsWith('22.')) {
  // node:sqlite and wrangler need Node 22: re-run under the pinned one.
  ensureAll();
  const r = spawnSync(PATHS.node22, ['--no-warnings', ...process.argv.slice(1)], { stdio: 'inherit' });
  process.exit(r.status ?? 1);
}

const { Collector, launchChromium, makeEvent, uuidv7, waitFor } = await import('../tests/e2e/harness.mjs');
const { ENGINES, launchEngine } = await import('../tests/e2e/engines.mjs');
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

/** The archive (#15) on the bench's load: an app with one day of retention receives TOTAL
 * events two days old, then archive runs move them to the local R2 bucket. Figures: events
 * archived per second of run time (written, read back, deleted from D1), gzip bytes per
 * event in R2, and how many runs and objects that took. */
async function archiveThroughput(collector) {
  const id = `bench-archive-${Date.now().toString(36)}`;
  const created = await collector.admin('POST', '/v1/admin/apps', { id, retention_days: 1 });
  if (created.status !== 201) throw new Error(`creating the archive app: ${created.text}`);
  const key = created.json.ingest_key;
  const pipeline = async () => (await collector.admin('GET', '/v1/admin/pipeline')).json.stored.events;
  const before = await pipeline();
  const twoDaysAgo = Date.now() - 2 * 86_400_000;
  const bodies = batches().map((text, r) => {
    const batch = JSON.parse(text);
    batch.events.forEach((e, i) => { e.ts = twoDaysAgo + r * EVENTS_PER_REQUEST + i; });
    return batch;
  });
  let next = 0;
  await Promise.all(Array.from({ length: CONCURRENCY }, async () => {
    while (next < bodies.length) {
      const res = await collector.ingest(bodies[next++], { key });
      if (res.status !== 202) throw new Error(`ingest answered ${res.status}: ${res.text}`);
    }
  }));
  // One newer event of another app: the archive never deletes the table's newest row.
  const newer = await collector.ingest({ sent_at: Date.now(), events: [makeEvent({ name: 'bench_view' })] });
  if (newer.status !== 202) throw new Error(`ingest answered ${newer.status}: ${newer.text}`);
  await waitFor(async () => (await pipeline()) - before === TOTAL + 1, { timeoutMs: 300_000, intervalMs: 100, what: `${TOTAL} stored events` });
  const status = async () => (await collector.admin('GET', `/v1/admin/archive?app=${id}`)).json.apps[0];
  let runs = 0;
  const t0 = performance.now();
  while ((await status()).events < TOTAL) {
    if (++runs > 20) throw new Error(`the archive moved ${(await status()).events} of ${TOTAL} events in 20 runs`);
    const res = await collector.admin('POST', '/v1/admin/archive/run');
    if (res.status !== 200) throw new Error(`archive run answered ${res.status}: ${res.text}`);
  }
  const seconds = (performance.now() - t0) / 1000;
  const archived = await status();
  const listing = (await collector.admin('GET', `/v1/admin/archive/objects?prefix=events/app=${id}/`)).json.objects;
  const first = await collector.request('GET', `/v1/admin/archive/object?key=${encodeURIComponent(listing[0].key)}`,
    { headers: { Authorization: `Bearer ${collector.adminKey}` }, raw: true });
  const ndjson = gunzipSync(Buffer.from(await first.arrayBuffer())).toString('utf8');
  const lines = ndjson.trimEnd().split('\n').length;
  return {
    events: TOTAL, runs, objects: archived.objects,
    events_per_s: Math.round(TOTAL / seconds),
    gzip_bytes_per_event: +(archived.bytes / TOTAL).toFixed(1),
    ndjson_bytes_per_event: +(Buffer.byteLength(ndjson) / lines).toFixed(1), // one object's lines
  };
}

/** D1 bytes per event by table (SQLite's `dbstat`), after the consumer's statements store
 * 20,000 events of two names with two properties and a URL, spread over 7 days, from `users`
 * distinct users: what the archive frees (the raw row and its key) and what stays for good
 * (the aggregates, mostly `agg_users`, one row per user per hour and per day). */
function storageBytesPerEvent(users) {
  const db = new DatabaseSync(':memory:');
  for (const file of ['0001_events.sql', '0006_fold_per_batch.sql', '0007_archive.sql', '0009_exposures.sql']) db.exec(readFileSync(join(ROOT, 'worker/migrations', file), 'utf8'));
  const prepared = Object.fromEntries(Object.entries(storeEventsSql()).map(([name, text]) => [name, db.prepare(text)]));
  const week = 7 * 86_400_000;
  const start = Date.now() - week;
  let seed = 1;
  const random = () => { seed = (seed * 48_271) % 2_147_483_647; return seed / 2_147_483_647; };
  for (let r = 0; r < TOTAL / EVENTS_PER_REQUEST; r++) {
    const rows = Array.from({ length: EVENTS_PER_REQUEST }, (_, i) => {
      const user = `user-${Math.floor(random() * users)}`;
      return ['demo', `${r}-${i}`, 'track', i % 4 ? 'bench_view' : 'bench_click', start + Math.floor(random() * week), 0, 0, user, null, user,
        { plan: ['free', 'pro', 'team'][i % 3], page: `/p/${i % 20}` }, `https://shop.example/p/${i % 20}`, `b${r}`];
    });
    db.exec('BEGIN');
    prepared.begin.run(1, rows.length, 0);
    prepared.insert_events.run(JSON.stringify(rows));
    for (const name of FOLD_STATEMENTS) prepared[name].run();
    db.exec('COMMIT');
  }
  const bytes = Object.fromEntries(db.prepare('SELECT name, sum(pgsize) AS bytes FROM dbstat GROUP BY name').all().map((r) => [r.name, r.bytes]));
  db.close();
  const per = (names) => +(names.reduce((sum, n) => sum + (bytes[n] ?? 0), 0) / TOTAL).toFixed(1);
  const raw = ['events', 'sqlite_autoindex_events_1'];
  const total = per(Object.keys(bytes));
  return { users, raw_bytes_per_event: per(raw), kept_bytes_per_event: +(total - per(raw)).toFixed(1), agg_users_bytes_per_event: per(['agg_users']) };
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
      if (scheme === 'store_events') { migration('0006_fold_per_batch.sql'); migration('0007_archive.sql'); migration('0009_exposures.sql'); }
    }
    // Parameters are made before the clock starts: the ceiling times SQLite, not JS.
    const rowsOf = (batch) => batch.events.map((e) => ['demo', e.id, e.type, e.name, e.ts, e.ts, e.ts, e.anonymous_id, null, e.anonymous_id, JSON.stringify(e.props), null, batch.batch_id]);
    const params = batches().map((text) => {
      const batch = JSON.parse(text);
      // The consumer sends props as an object inside its JSON rows (see pipeline.rs).
      return scheme === 'store_events'
        ? { count: batch.events.length, rows: JSON.stringify(rowsOf(batch).map((row, i) => row.with(10, batch.events[i].props))) }
        : { rows: rowsOf(batch) };
    });
    let write;
    if (scheme === 'store_events') {
      const prepared = Object.fromEntries(Object.entries(storeEventsSql()).map(([name, text]) => [name, db.prepare(text)]));
      write = ({ count, rows }) => {
        prepared.begin.run(1, count, 0);
        prepared.insert_events.run(rows);
        for (const f of FOLD_STATEMENTS) prepared[f].run();
      };
    } else {
      const insert = db.prepare('INSERT INTO events (app, id, type, name, ts, client_ts, received_at, anonymous_id, user_id, user_key, props, url, batch_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (app, id) DO NOTHING');
      write = ({ rows }) => { for (const row of rows) insert.run(...row); };
    }
    const t0 = performance.now();
    for (const batch of params) {
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

const BENCH_RULESET_SOURCE = readFileSync(join(ROOT, 'tests/spec/flags/bench-ruleset.json'), 'utf8');
/** The bench ruleset in the served form the engine module reads (compiled natively, as the
 * collector compiles a published ruleset). */
const BENCH_RULESET = (() => {
  const run = spawnSync('cargo', ['run', '--release', '-q', '-p', 'telltale-core', '--example', 'compile_ruleset'],
    { cwd: ROOT, input: BENCH_RULESET_SOURCE, encoding: 'utf8' });
  if (run.status !== 0) throw new Error(`compiling the bench ruleset failed: ${run.stderr}`);
  return run.stdout.trim();
})();
const benchRuleset = JSON.parse(BENCH_RULESET);
const FLAG_KEYS = benchRuleset.flags.map((f) => f.key);
const flagContexts = benchContexts();
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/** ns per evaluation of one pass over every context and flag. */
function pass(run) {
  const t0 = performance.now();
  run();
  return ((performance.now() - t0) * 1e6) / (flagContexts.length * FLAG_KEYS.length);
}

/** Flag evaluation side by side in this process: each engine decides the 20 bench flags
 * for the 1,000 contexts, one pass per engine per round, interleaved, 5 rounds; the figure
 * is the median round. Deterministic decisions must agree across engines first. */
async function flagBenchmarks() {
  const dir = mkdtempSync(join(tmpdir(), 'telltale-bench-flags-'));
  let native;
  try {
    const contextsFile = join(dir, 'contexts.json');
    writeFileSync(contextsFile, JSON.stringify(flagContexts));
    const run = spawnSync('cargo', ['run', '--release', '-q', '-p', 'telltale-core', '--example', 'flag_bench', '--', contextsFile], { cwd: ROOT, encoding: 'utf8' });
    if (run.status !== 0) throw new Error(`native flag bench failed: ${run.stderr}`);
    native = JSON.parse(run.stdout.trim().split('\n').pop());
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }

  const sdk = await import(join(PATHS.sdkPkg, 'engine.js'));
  await sdk.default({ module_or_path: readFileSync(join(PATHS.sdkPkg, 'telltale_engine_bg.wasm')) });
  const engine = new sdk.FlagEngine(BENCH_RULESET);
  const tables = engine.tables();
  const now = Date.now();
  const valueOf = (i, packed) => tables.variants[i][(packed % 65536) - 1]?.[1];
  const indexes = FLAG_KEYS.map((key) => engine.indexOf(key)); // the engine orders flags by key

  const { GrowthBookClient } = await import('@growthbook/growthbook');
  const gb = new GrowthBookClient();
  gb.initSync({ payload: growthbookPayload(benchRuleset) });
  const gbContexts = flagContexts.map((attributes) => ({ attributes }));

  const { Unleash, InMemStorageProvider } = await import('unleash-client');
  // Offline: bootstrap data only; the URL is a closed loopback port and never polled.
  const unleash = new Unleash({
    url: 'http://127.0.0.1:9/api/', appName: 'telltale-bench', refreshInterval: 0, disableMetrics: true,
    bootstrap: { data: unleashFeatures(benchRuleset) }, storageProvider: new InMemStorageProvider(),
  });
  unleash.on('error', () => {});
  unleash.on('warn', () => {});
  await new Promise((resolve) => { if (unleash.isSynchronized?.()) resolve(); else unleash.once('ready', resolve); setTimeout(resolve, 2000); });
  const unleashContexts = flagContexts.map(unleashContext);
  const variantFlags = new Set(benchRuleset.flags.filter((f) => f.variants.some((v) => typeof v.value !== 'boolean')).map((f) => f.key));
  const unleashValue = (key, ctx) => (variantFlags.has(key) ? unleash.getVariant(key, ctx).payload?.value : unleash.isEnabled(key, ctx));

  // Same rules, same answers: every deterministic decision agrees; hashed ones are close.
  const hashed = new Set(benchRuleset.flags.filter((f) => f.rules?.some((r) => r.serve.split || r.serve.rollout_percent != null)).map((f) => f.key));
  const onShare = { telltale: 0, growthbook: 0, unleash: 0 };
  let compared = 0;
  flagContexts.forEach((ctx, c) => {
    engine.setContext(ctx, undefined);
    FLAG_KEYS.forEach((key, k) => {
      const ours = valueOf(indexes[k], engine.decide(indexes[k], now));
      const theirs = [gb.evalFeature(key, gbContexts[c]).value, unleashValue(key, unleashContexts[c])];
      if (hashed.has(key)) {
        if (ours === true) onShare.telltale++;
        if (theirs[0] === true) onShare.growthbook++;
        if (theirs[1] === true) onShare.unleash++;
      } else {
        compared++;
        if (theirs[0] !== ours || theirs[1] !== ours) throw new Error(`engines disagree on ${key} for ${JSON.stringify(ctx)}: telltale ${ours}, growthbook ${theirs[0]}, unleash ${theirs[1]}`);
      }
    });
  });

  const engines = {
    telltale_evaluate: () => { for (const ctx of flagContexts) for (const key of FLAG_KEYS) engine.evaluate(key, ctx, undefined, now); },
    telltale_evaluate_all: () => { for (const ctx of flagContexts) engine.evaluateAll(ctx, undefined, now); },
    telltale_packed: () => {
      for (const ctx of flagContexts) {
        engine.setContext(ctx, undefined);
        for (const i of indexes) valueOf(i, engine.decide(i, now));
      }
    },
    telltale_packed_all: () => {
      for (const ctx of flagContexts) {
        engine.setContext(ctx, undefined);
        const all = engine.decideAll(now);
        for (let i = 0; i < all.length; i++) valueOf(i, all[i]);
      }
    },
    growthbook: () => { for (const ctx of gbContexts) for (const key of FLAG_KEYS) gb.evalFeature(key, ctx); },
    unleash: () => { for (const ctx of unleashContexts) for (const key of FLAG_KEYS) unleashValue(key, ctx); },
  };
  for (const run of Object.values(engines)) pass(run); // warm up
  const rounds = Object.fromEntries(Object.keys(engines).map((k) => [k, []]));
  for (let r = 0; r < 5; r++) for (const [name, run] of Object.entries(engines)) rounds[name].push(pass(run));
  unleash.destroy();
  const out = { native, deterministic_decisions_compared: compared, hashed_on_share: onShare };
  for (const [name, times] of Object.entries(rounds)) {
    const ns = median(times);
    out[name] = { ns_per_evaluation: Math.round(ns), per_second: Math.round(1e9 / ns) };
  }
  return out;
}

/** How a context object crosses into the wasm engine, ns per `setContext` (median of 5
 * interleaved rounds over the 1,000 bench contexts): the engine's own encoding of the
 * attribute values (what setContext does), its JSON route (`JSON.stringify`, read by
 * core's JSON reader), and serde-wasm-bindgen (scripts/context-crossing, a separate crate
 * built here only), each followed by resolving against the bench ruleset's attributes. */
async function contextCrossing() {
  const crate = join(ROOT, 'scripts/context-crossing');
  runTool('cargo', ['build', '--quiet', '--release', '--target', 'wasm32-unknown-unknown'], { cwd: crate });
  const dir = mkdtempSync(join(tmpdir(), 'telltale-crossing-'));
  try {
    runTool(PATHS.wasmBindgen, [join(crate, 'target/wasm32-unknown-unknown/release/telltale_context_crossing_bench.wasm'), '--out-dir', dir, '--target', 'web']);
    const wasmFile = join(dir, 'telltale_context_crossing_bench_bg.wasm');
    runTool(PATHS.wasmOpt, ['-Oz', '--strip-debug', '--strip-producers', wasmFile, '-o', wasmFile]);
    const swb = await import(join(dir, 'telltale_context_crossing_bench.js'));
    await swb.default({ module_or_path: readFileSync(wasmFile) });
    const sdk = await import(join(PATHS.sdkPkg, 'engine.js'));
    await sdk.default({ module_or_path: readFileSync(join(PATHS.sdkPkg, 'telltale_engine_bg.wasm')) });
    const engine = new sdk.FlagEngine(BENCH_RULESET);
    const crossing = new swb.Crossing(BENCH_RULESET_SOURCE);
    const ways = {
      encoded: () => { for (const ctx of flagContexts) engine.setContext(ctx, undefined); },
      serde_wasm_bindgen: () => { for (const ctx of flagContexts) crossing.viaSerdeWasmBindgen(ctx); },
    };
    const per = (f) => { const t0 = performance.now(); f(); return ((performance.now() - t0) * 1e6) / flagContexts.length; };
    for (const f of Object.values(ways)) per(f);
    const rounds = Object.fromEntries(Object.keys(ways).map((k) => [k, []]));
    for (let r = 0; r < 5; r++) for (const [name, f] of Object.entries(ways)) rounds[name].push(per(f));
    return Object.fromEntries(Object.entries(rounds).map(([k, v]) => [k, Math.round(median(v))]));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Requests/s of `POST /v1/flags/evaluate` (10 flags) against `GET /healthz` of the same
 * Worker, 8 in flight, interleaved, medians of 3: how much of a request the decision is. */
async function edgeDecisions(collector) {
  const ten = benchRuleset.flags.slice(0, 10);
  if (ten.some((f) => f.rules?.some((r) => r.segments?.length))) throw new Error('the first ten bench flags must not need segments');
  await collector.publishConfig('demo', ten.map((flag) => ['flags', flag.key, flag]), 'bench');
  const headers = { Authorization: `Bearer ${collector.ingestKey}` };
  let i = 0;
  const evaluate = async () => {
    const res = await collector.request('POST', '/v1/flags/evaluate', { body: { context: flagContexts[i++ % flagContexts.length] }, headers });
    if (res.status !== 200 || Object.keys(res.json.flags).length !== 10) throw new Error(`evaluate answered ${res.status}: ${res.text}`);
  };
  const healthz = async () => { await (await fetch(`${collector.url}/healthz`)).text(); };
  const rate = async (fn, n = 300) => {
    let next = 0;
    const t0 = performance.now();
    await Promise.all(Array.from({ length: CONCURRENCY }, async () => { while (next++ < n) await fn(); }));
    return n / ((performance.now() - t0) / 1000);
  };
  await rate(evaluate, 50);
  const trivial = []; const decisions = [];
  for (let r = 0; r < 3; r++) { trivial.push(await rate(healthz)); decisions.push(await rate(evaluate)); }
  const out = { flags: 10, concurrency: CONCURRENCY, healthz_per_s: Math.round(median(trivial)), evaluate_per_s: Math.round(median(decisions)) };
  out.ratio = +(out.evaluate_per_s / out.healthz_per_s).toFixed(2);
  return out;
}

ensureAll();
ensureBrowsers(); // the track() figures are taken in Chromium, Firefox ESR and WebKitGTK
results.sdk = await measureSdk();
const kib = (n) => `${(n / 1024).toFixed(1)} KiB`;
console.log(`SDK download (init + track + flag check, esbuild --minify, gzip -9): ${kib(results.sdk.total)} `
  + `(JS ${kib(results.sdk.js)}, wasm ${kib(results.sdk.wasm)}); flag engine, loaded by local mode only: ${kib(results.sdk.engineTotal)}`);
results.sqlite_store_events_per_s = sqliteBaseline('store_events');
results.sqlite_per_event_triggers_events_per_s = sqliteBaseline('per_event_triggers');
results.sqlite_bare_events_per_s = sqliteBaseline('bare');
results.storage = [500, 20_000].map(storageBytesPerEvent);
console.log(`D1 bytes per event (SQLite dbstat, ${TOTAL} events over 7 days): `
  + results.storage.map((s) => `${s.users} users: raw row and key ${s.raw_bytes_per_event} (the archive moves these), aggregates and the rest ${s.kept_bytes_per_event} (kept; agg_users ${s.agg_users_bytes_per_event})`).join('; '));
console.log(`SQLite ceiling (file database, WAL, ${EVENTS_PER_REQUEST} events per transaction): ${results.sqlite_store_events_per_s} events/s with the consumer's statements `
  + `(store_events.sql); ${results.sqlite_per_event_triggers_events_per_s} events/s with the old per-event triggers; ${results.sqlite_bare_events_per_s} events/s into a bare table`);
/** µs per `track()` in each browser engine (Chromium, Firefox ESR, WebKitGTK), through the
 * same page code (track-bursts.mjs), in TRACK_PAGES fresh pages per engine (a new browser
 * context each, so a new heap and new compiled code): a page's first burst of 19,000 calls,
 * the cost amortised over it and the 15 after it (the queue emptied between them) and their
 * median, and the median of 15 into a full queue; each figure is the median over the pages,
 * because on this 2-core VM one page's figure moves by up to 2x from one page to the next
 * (the amortised figure of every page is kept too). Then, in one more page, per event in a
 * page's ordinary use, a few events a task with the end-of-task work (trackPerTask). The
 * events' hand-over into wasm is included throughout. */
const TRACK_PAGES = 5;
async function trackCost(collector) {
  const out = {};
  const client = { endpoint: collector.url, key: collector.ingestKey };
  const median = (values) => [...values].sort((x, y) => x - y)[values.length >> 1];
  for (const name of ENGINES) {
    const engine = await launchEngine(name);
    try {
      const pages = [];
      for (let i = 0; i < TRACK_PAGES; i++) {
        const page = await engine.newPage();
        await page.open(`${collector.url}/healthz`);
        pages.push(await page.evaluate(trackBursts, client));
        await page.close();
      }
      const figures = {};
      for (const [key, value] of Object.entries(pages[0])) {
        figures[key] = typeof value === 'number' ? median(pages.map((p) => p[key])) : value;
      }
      figures.amortised_us_per_call_per_page = pages.map((p) => p.amortised_us_per_call);
      const page = await engine.newPage();
      await page.open(`${collector.url}/healthz`);
      out[name] = { pages: TRACK_PAGES, ...figures, ...await page.evaluate(trackPerTask, client) };
      await page.close();
    } finally {
      await engine.close();
    }
  }
  return out;
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
// alone, BENCH_ONLY=track track() in each browser engine alone, BENCH_ONLY=capture the
// capture side by side alone, BENCH_ONLY=archive the archive alone (quicker, for work on one).
const only = process.env.BENCH_ONLY;
if (only && !['ingest', 'flags', 'track', 'capture', 'archive'].includes(only)) throw new Error(`BENCH_ONLY is ingest, flags, track, capture or archive, not ${only}`);

function printFlags(f) {
  const line = (name) => `${f[name].ns_per_evaluation} ns (${f[name].per_second}/s)`;
  const fastestPeer = Math.min(f.growthbook.ns_per_evaluation, f.unleash.ns_per_evaluation);
  console.log(`Flag evaluations, ${FLAG_KEYS.length} flags x ${flagContexts.length} contexts, one process, interleaved, median of 5 rounds `
    + `(${f.deterministic_decisions_compared} deterministic decisions agree across the three engines; share on for hashed flags: ${JSON.stringify(f.hashed_on_share)}):`);
  console.log(`  Telltale wasm, setContext once + decide(index) per flag: ${line('telltale_packed')}; with decideAll: ${line('telltale_packed_all')}`);
  console.log(`  Telltale wasm, evaluate(key, context) per flag: ${line('telltale_evaluate')}; evaluateAll(context): ${line('telltale_evaluate_all')}`);
  console.log(`  GrowthBook 1.8.0 evalFeature: ${line('growthbook')}; unleash-client 6.12.1: ${line('unleash')}`);
  console.log(`  native Rust: evaluate by key ${f.native.evaluate_ns} ns (the context read each call); context resolved once + decide by index ${f.native.decide_ns} ns`);
  console.log(`  ratio, fastest JS engine / Telltale packed: ${(fastestPeer / f.telltale_packed.ns_per_evaluation).toFixed(2)}x (goal 3x); `
    + `Telltale packed / native decide: ${(f.telltale_packed.ns_per_evaluation / f.native.decide_ns).toFixed(2)} (goal within 2)`);
}

function printCrossing(c) {
  console.log(`Context into the wasm engine, ns per setContext (1,000 bench contexts, median of 5): encoded attribute values ${c.encoded} ns (what setContext does); `
    + `serde-wasm-bindgen ${c.serde_wasm_bindgen} ns`);
}

if (only === 'flags') {
  printFlags(await flagBenchmarks());
  printCrossing(await contextCrossing());
  process.exit(0);
}

const printCapture = (capture) => {
  const c = capture.us_per_call;
  console.log(`Capture side by side in one Chromium page, ${capture.calls_per_round} calls a burst, median of 5 interleaved rounds, µs per call: `
    + `Telltale track() ${c.telltale} (${c.telltale_with_handover} with its end-of-task work forced in), posthog-js capture() ${c.posthog}, Segment analytics-next track() ${c.segment}; `
    + `fastest peer / Telltale: ${(Math.min(c.posthog, c.segment) / c.telltale).toFixed(2)}x (goal 5x); with the hand-over: ${(Math.min(c.posthog, c.segment) / c.telltale_with_handover).toFixed(2)}x`);
};
if (only === 'capture') {
  printCapture(await captureSideBySide(launchChromium));
  process.exit(0);
}

const printTrack = (track) => {
  const per = (key) => ENGINES.map((n) => `${n} ${track[n][key]}`).join(', ');
  const { calls_per_round: calls, rounds, pages } = track.chromium;
  console.log(`track() per engine, µs per call, events handed into wasm included (bursts of ${calls} calls; each figure the median of ${pages} fresh pages): `
    + `amortised over a page's first ${rounds + 1} bursts (goal 1 µs in Chromium): ${per('amortised_us_per_call')} `
    + `(each page: ${ENGINES.map((n) => `${n} ${track[n].amortised_us_per_call_per_page.join(', ')}`).join('; ')}); `
    + `the first burst alone (the compilers warming up): ${per('first_burst_us_per_call')}; `
    + `median of the ${rounds} after it, the queue emptied between them: ${per('us_per_call')}; `
    + `into a full queue of ${calls} (each event evicts the oldest): ${per('full_queue_us_per_call')}; `
    + `a page's ordinary use (names alternating, the end-of-task work and localStorage write included, µs per event): `
    + `1 event a task: ${per('events_per_task_1_us_per_event')}; 10 a task: ${per('events_per_task_10_us_per_event')}`);
};

const collector = await Collector.start({ devHooks: false });
const printArchive = (a) => console.log(`Archive via wrangler dev (${a.events} events two days old, retention 1 day): ${a.events_per_s} events/s moved to R2 `
  + `(written, read back, deleted from D1) in ${a.runs} runs and ${a.objects} objects; ${a.gzip_bytes_per_event} gzip bytes per event in R2 `
  + `(${a.ndjson_bytes_per_event} bytes of NDJSON)`);
/** BENCH_ONLY runs that need only the collector: measure, print, stop, exit. */
const alone = { archive: [archiveThroughput, printArchive], track: [trackCost, printTrack] }[only];
if (alone) {
  const [measure, print] = alone;
  try {
    print(await measure(collector));
  } finally {
    await collector.stop();
  }
  process.exit(0);
}
try {
  if (!only) results.console = await consoleFigures(collector);
  if (!only) results.track = await trackCost(collector);
  if (!only) results.capture = await captureSideBySide(launchChromium);
  results.ingest = await ingestThroughput(collector);
  if (!only) results.edge_decisions = await edgeDecisions(collector);
  if (!only) results.archive = await archiveThroughput(collector);
} finally {
  await collector.stop();
}
if (!only) results.flags = await flagBenchmarks();
if (!only) results.context_crossing = await contextCrossing();
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
printTrack(results.track);
printCapture(results.capture);
printFlags(results.flags);
printCrossing(results.context_crossing);
console.log(`Console: ${kib(results.console.total_gzip_bytes)} gzipped (JS ${kib(results.console.js_gzip_bytes)}, CSS ${kib(results.console.css_gzip_bytes)}; goal 120 KB), `
  + `first chart ${results.console.first_chart_ms} ms after navigation (median of 5 warm loads; goal 1,000 ms)`);
printArchive(results.archive);
const e = results.edge_decisions;
console.log(`Edge decisions via wrangler dev, ${e.concurrency} in flight: POST /v1/flags/evaluate (${e.flags} flags) ${e.evaluate_per_s} requests/s, GET /healthz ${e.healthz_per_s}/s: ratio ${e.ratio} (goal 0.5)`);
mkdirSync(join(ROOT, 'bench-results'), { recursive: true });
writeFileSync(join(ROOT, 'bench-results/latest.json'), JSON.stringify({ at: new Date().toISOString(), ...results }, null, 2));
