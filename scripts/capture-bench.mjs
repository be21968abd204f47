// Event capture side by side in one Chromium page: Telltale's track(), posthog-js's
// capture() and Segment analytics-next's track(), each bundled by esbuild as an app
// would, each sending to a local sink on 127.0.0.1 (the only network this touches).
// A round is a burst of CALLS calls per SDK, timed around the calls (what the page's code
// waits for), then 4 s for the SDK to deliver; rounds are interleaved and the figure is
// µs per call, the median of 5 rounds (the order rotates each round). Work an SDK defers past the calls is not in it:
// Telltale's serialization and hand-over into wasm at the end of the task, posthog's
// serialization and compression on its flush timer, Segment's promise pipeline. Telltale
// is also timed with its deferred work forced inside the calls.
import { createServer } from 'node:http';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { extname, join } from 'node:path';
import { PATHS, ROOT } from './toolchain.mjs';

const CALLS = 1000;
const TYPES = { '.js': 'text/javascript', '.wasm': 'application/wasm' };

async function bundle(dir) {
  const { build } = await import(join(ROOT, 'node_modules/esbuild/lib/main.js'));
  const entries = {
    posthog: "import posthog from 'posthog-js'; window.posthog = posthog;",
    segment: "import { AnalyticsBrowser } from '@segment/analytics-next'; window.AnalyticsBrowser = AnalyticsBrowser;",
  };
  for (const [name, code] of Object.entries(entries)) {
    writeFileSync(join(dir, `${name}-entry.js`), code);
    await build({
      entryPoints: [join(dir, `${name}-entry.js`)], bundle: true, minify: true, format: 'iife',
      outfile: join(dir, `${name}.js`), logLevel: 'silent', target: 'es2022', absWorkingDir: ROOT,
      nodePaths: [join(ROOT, 'node_modules')], define: { 'process.env.NODE_ENV': '"production"' },
    });
  }
}

/** A sink for every SDK's requests, the page, the bundles, the Telltale SDK and Segment's
 * settings. Counts what it received. */
function sink(dir) {
  const received = { requests: 0 };
  const server = createServer((req, res) => {
    const path = req.url.split('?')[0];
    const cors = { 'Access-Control-Allow-Origin': req.headers.origin || '*', 'Access-Control-Allow-Headers': '*', 'Access-Control-Allow-Methods': 'GET,POST,OPTIONS', 'Access-Control-Allow-Credentials': 'true' };
    if (req.method === 'OPTIONS') { res.writeHead(204, cors); return res.end(); }
    if (req.method === 'POST') {
      received.requests++;
      req.resume();
      req.on('end', () => { res.writeHead(200, { ...cors, 'Content-Type': 'application/json' }); res.end('{"accepted":0,"duplicates":0,"rejected":[],"status":1}'); });
      return;
    }
    if (path === '/') { res.writeHead(200, { 'Content-Type': 'text/html' }); return res.end('<!doctype html><title>capture bench</title>'); }
    if (path.startsWith('/v1/projects/')) {
      const { port } = server.address();
      res.writeHead(200, { ...cors, 'Content-Type': 'application/json' });
      return res.end(JSON.stringify({ integrations: { 'Segment.io': { apiKey: 'bench', apiHost: `127.0.0.1:${port}/v1`, protocol: 'http' } }, plan: {}, edgeFunction: {} }));
    }
    const file = path.startsWith('/sdk/') ? join(ROOT, 'www', path) : join(dir, path);
    try {
      const body = readFileSync(file);
      res.writeHead(200, { ...cors, 'Content-Type': TYPES[extname(file)] || 'application/octet-stream' });
      res.end(body);
    } catch {
      res.writeHead(404, cors);
      res.end();
    }
  });
  return { server, received };
}

export async function captureSideBySide(launchChromium) {
  const dir = mkdtempSync(join(tmpdir(), 'telltale-capture-'));
  const { server, received } = sink(dir);
  const browser = await launchChromium();
  try {
    await bundle(dir);
    await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
    const origin = `http://127.0.0.1:${server.address().port}`;
    const page = await browser.newPage();
    await page.goto(`${origin}/`);
    for (const name of ['posthog', 'segment']) await page.addScriptTag({ url: `${origin}/${name}.js` });
    await page.evaluate(async ({ origin }) => {
      const sdk = await import('/sdk/telltale.js');
      await sdk.default();
      const telltale = new sdk.Telltale({ endpoint: origin, key: 'tt_ik_bench', flagMode: 'off', maxQueue: 100000, maxStorageBytes: 50_000_000 });
      window.posthog.init('phc_bench', {
        api_host: origin, autocapture: false, capture_pageview: false, capture_pageleave: false,
        disable_session_recording: true, advanced_disable_decide: true, advanced_disable_feature_flags: true,
        disable_surveys: true, disable_external_dependency_loading: true,
      });
      const [segment] = await window.AnalyticsBrowser.load({ writeKey: 'bench', cdnURL: origin }, {
        integrations: { 'Segment.io': { deliveryStrategy: { strategy: 'batching', config: { size: 20, timeout: 1000 } } } },
      });
      const props = (i) => ({ i, plan: 'pro', path: '/courses' });
      const calls = {
        telltale: (i) => telltale.track('bench_capture', props(i)),
        posthog: (i) => window.posthog.capture('bench_capture', props(i)),
        segment: (i) => { segment.track('bench_capture', props(i)); },
        // Telltale with its end-of-task work forced inside the timed calls: serializing the
        // events and handing them into wasm (what posthog and Segment defer is not counted).
        telltale_with_handover: (i, last) => { telltale.track('bench_capture', props(i)); if (last) void telltale.droppedCount; },
      };
      /** Makes `n` calls; returns their synchronous time in ms. */
      window.benchCalls = (name, n) => {
        const t0 = performance.now();
        for (let i = 0; i < n; i++) calls[name](i, i === n - 1);
        const ms = performance.now() - t0;
        if (name.startsWith('telltale')) telltale.flush(); // its timer would send within 5 s anyway
        return ms;
      };
    }, { origin });
    const idle = (ms) => new Promise((r) => setTimeout(r, ms));
    const names = ['telltale', 'telltale_with_handover', 'posthog', 'segment'];
    for (const name of names) { await page.evaluate(([n, c]) => window.benchCalls(n, c), [name, 200]); await idle(4000); }
    const rounds = Object.fromEntries(names.map((n) => [n, []]));
    for (let r = 0; r < 5; r++) {
      // Each round starts with another SDK: whoever goes first meets the last one's garbage.
      for (const name of [...names.slice(r % names.length), ...names.slice(0, r % names.length)]) {
        const ms = await page.evaluate(([n, c]) => window.benchCalls(n, c), [name, CALLS]);
        rounds[name].push((ms * 1000) / CALLS);
        await idle(4000);
      }
    }
    const median = (xs) => +[...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)].toFixed(2);
    const result = Object.fromEntries(names.map((n) => [n, median(rounds[n])]));
    return { us_per_call: result, calls_per_round: CALLS, sink_requests: received.requests };
  } finally {
    await browser.close();
    server.close();
    rmSync(dir, { recursive: true, force: true });
  }
}
