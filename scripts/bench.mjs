// `npm run bench`: figures, not pass/fail. Prints
//  1. the SDK's gzipped download (wasm + JS glue);
//  2. ingest throughput through `wrangler dev` (bounded load from this process, loopback
//     only): accepted events/s at the edge, and stored events/s through Queue -> D1;
//  3. a raw SQLite batched-insert baseline on the same machine (same schema with its
//     aggregation triggers, and a bare table), so the ratios are visible.
import { readFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { gzipSync } from 'node:zlib';
import { ensureAll, PATHS, ROOT } from './toolchain.mjs';

if (!process.versions.node.startsWith('22.')) {
  // node:sqlite and wrangler need Node 22: re-run under the pinned one.
  ensureAll();
  const r = spawnSync(PATHS.node22, ['--no-warnings', ...process.argv.slice(1)], { stdio: 'inherit' });
  process.exit(r.status ?? 1);
}

const { Collector, makeEvent, uuidv7, waitFor } = await import('../tests/e2e/harness.mjs');
const { DatabaseSync } = await import('node:sqlite');

const REQUESTS = Number(process.env.BENCH_REQUESTS || 200);
const EVENTS_PER_REQUEST = Number(process.env.BENCH_BATCH || 100);
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY || 8);
const TOTAL = REQUESTS * EVENTS_PER_REQUEST;
const results = {};

function sdkSize() {
  const wasm = readFileSync(join(PATHS.sdkPkg, 'telltale_bg.wasm'));
  const js = readFileSync(join(PATHS.sdkPkg, 'telltale.js'));
  const gz = (b) => gzipSync(b, { level: 9 }).length;
  return { wasm_bytes: wasm.length, js_bytes: js.length, wasm_gzip: gz(wasm), js_gzip: gz(js), total_gzip: gz(wasm) + gz(js) };
}

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

async function ingestThroughput() {
  const collector = await Collector.start();
  try {
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
    const counted = async () => ((await collector.count('demo', 'bench_click', { source: 'raw' })) ?? 0)
      + ((await collector.count('demo', 'bench_view', { source: 'raw' })) ?? 0);
    await waitFor(async () => (await counted()) === TOTAL, { timeoutMs: 300_000, intervalMs: 200, what: `${TOTAL} stored events` });
    const stored = performance.now() - t0;
    return {
      events: TOTAL, requests: REQUESTS, concurrency: CONCURRENCY,
      accepted_events_per_s: Math.round(TOTAL / (accepted / 1000)),
      stored_events_per_s: Math.round(TOTAL / (stored / 1000)),
      p_request_ms: +(accepted / REQUESTS * CONCURRENCY).toFixed(2),
    };
  } finally {
    await collector.stop();
  }
}

function sqliteBaseline(withSchema) {
  const db = new DatabaseSync(':memory:');
  if (withSchema) {
    db.exec(readFileSync(join(ROOT, 'worker/migrations/0001_events.sql'), 'utf8'));
  } else {
    db.exec('CREATE TABLE events (app TEXT, id TEXT, type TEXT, name TEXT, ts INTEGER, client_ts INTEGER, received_at INTEGER, anonymous_id TEXT, user_id TEXT, user_key TEXT, props TEXT, url TEXT, batch_id TEXT, PRIMARY KEY (app, id))');
  }
  const insert = db.prepare('INSERT INTO events (app, id, type, name, ts, client_ts, received_at, anonymous_id, user_id, user_key, props, url, batch_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (app, id) DO NOTHING');
  const bodies = batches().map((b) => JSON.parse(b));
  const t0 = performance.now();
  for (const batch of bodies) {
    db.exec('BEGIN');
    for (const e of batch.events) {
      insert.run('demo', e.id, e.type, e.name, e.ts, e.ts, e.ts, e.anonymous_id, null, e.anonymous_id, JSON.stringify(e.props), null, batch.batch_id);
    }
    db.exec('COMMIT');
  }
  const ms = performance.now() - t0;
  return Math.round(TOTAL / (ms / 1000));
}

ensureAll();
results.sdk = sdkSize();
console.log(`SDK download: ${(results.sdk.total_gzip / 1024).toFixed(1)} KiB gzipped `
  + `(wasm ${(results.sdk.wasm_gzip / 1024).toFixed(1)} KiB of ${(results.sdk.wasm_bytes / 1024).toFixed(1)} KiB, `
  + `JS ${(results.sdk.js_gzip / 1024).toFixed(1)} KiB of ${(results.sdk.js_bytes / 1024).toFixed(1)} KiB)`);
results.sqlite_with_aggregates_events_per_s = sqliteBaseline(true);
results.sqlite_bare_events_per_s = sqliteBaseline(false);
console.log(`SQLite baseline (in-process, ${EVENTS_PER_REQUEST} per transaction): ${results.sqlite_bare_events_per_s} events/s bare table, `
  + `${results.sqlite_with_aggregates_events_per_s} events/s with Telltale's schema and aggregation triggers`);
results.ingest = await ingestThroughput();
console.log(`Ingest via wrangler dev (${TOTAL} events, ${REQUESTS} requests of ${EVENTS_PER_REQUEST}, concurrency ${CONCURRENCY}): `
  + `${results.ingest.accepted_events_per_s} events/s accepted (202), ${results.ingest.stored_events_per_s} events/s stored in D1 with aggregates`);
console.log(`Ratios: stored/SQLite-with-aggregates = ${(results.ingest.stored_events_per_s / results.sqlite_with_aggregates_events_per_s).toFixed(3)}, `
  + `accepted/SQLite-bare = ${(results.ingest.accepted_events_per_s / results.sqlite_bare_events_per_s).toFixed(3)}`);
mkdirSync(join(ROOT, 'bench-results'), { recursive: true });
writeFileSync(join(ROOT, 'bench-results/latest.json'), JSON.stringify({ at: new Date().toISOString(), ...results }, null, 2));
