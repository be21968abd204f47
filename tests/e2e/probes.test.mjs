// Probes end to end: local HTTP servers are the probed partner endpoints (switched between
// healthy and failing by each test), a local webhook receiver collects alerts, and cron
// runs are triggered through the scheduled-test URL. Windows are seconds long here so
// the hysteresis plays out in a test; the defaults (5 and 15 minutes) are simulated in
// core (tests: probe_simulations). Every test owns its app, partner and probe: the cron
// runs all apps' probes, and each test reads only its own app's state and alerts.
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { after, before, describe, test } from 'node:test';
import { Collector, waitFor, launchChromium } from './harness.mjs';

const PROBE_KEY = 'tt_probe_test_key';
const DISABLE_WINDOW = 2500;
const ENABLE_WINDOW = 7000;
const BOOL = [{ key: 'on', value: true }, { key: 'off', value: false }];

const alerts = [];
const servers = [];
let webhook;
let collector;

function listen(handler) {
  return new Promise((resolve) => {
    const server = createServer(handler);
    servers.push(server);
    server.listen(0, '127.0.0.1', () => resolve(server));
  });
}

/** A partner endpoint whose health the test switches. */
async function partner() {
  const state = { healthy: true, calls: 0 };
  const server = await listen((req, res) => {
    state.calls++;
    if (state.healthy) res.writeHead(200, { 'content-type': 'application/json' }).end('{"status":"green"}');
    else res.writeHead(503).end('down for maintenance');
  });
  state.url = `http://127.0.0.1:${server.address().port}/health`;
  return state;
}

before(async () => {
  webhook = await listen((req, res) => {
    let body = '';
    req.on('data', (c) => { body += c; });
    req.on('end', () => {
      const alert = JSON.parse(body);
      // Alerts about apps named `broken-hook-*` meet a failing webhook.
      const failing = /app `broken-hook-/.test(alert.text);
      if (!failing) alerts.push(alert);
      res.writeHead(failing ? 500 : 200).end();
    });
  });
  collector = await Collector.start({ vars: { ALERT_WEBHOOK_URL: `http://127.0.0.1:${webhook.address().port}/hook`, PROBE_KEY } });
});
after(async () => {
  await collector?.stop();
  for (const server of servers) server.close();
});

/** An app with a probe on `url` and a flag `partner-deals` that requires it. */
async function probedApp(prefix, url, windows = {}) {
  const app = await collector.newApp(prefix);
  await collector.publishConfig(app.id, [
    ['probes', 'partner-api', {
      url, body_json: { pointer: '/status', equals: 'green' }, timeout_ms: 1000, interval_s: 60, min_samples: 2,
      disable_window_ms: DISABLE_WINDOW, enable_window_ms: ENABLE_WINDOW, ...windows,
    }],
    ['flags', 'partner-deals', { variants: BOOL, default_variant: 'on', off_variant: 'off', requires_probe: 'partner-api' }],
  ], 'partner probe');
  const decision = async () => {
    const res = await collector.request('POST', '/v1/flags/evaluate', { body: { context: {} }, headers: { Authorization: `Bearer ${app.ingest_key}` } });
    return res.json.flags['partner-deals'];
  };
  const probeState = async () => (await collector.admin('GET', `/v1/apps/${app.id}/probes`)).json.probes.find((p) => p.name === 'partner-api');
  const alertsOf = () => alerts.filter((a) => a.text.includes(`app \`${app.id}\``));
  return { app, decision, probeState, alertsOf };
}

/** Triggers cron runs until `check` holds; returns how long it took. */
async function cronUntil(check, what, timeoutMs = 30_000) {
  const t0 = Date.now();
  await waitFor(async () => {
    await collector.scheduled();
    return check();
  }, { timeoutMs, intervalMs: 250, what });
  return Date.now() - t0;
}

describe('probes switch a flag off and back on, with hysteresis', () => {
  test('unknown -> up -> down (flag off, probe named) -> up only after the enable window, one alert per transition', async () => {
    const p = await partner();
    const { app, decision, probeState, alertsOf } = await probedApp('hysteresis', p.url);
    assert.equal((await probeState()).state, 'unknown');
    await cronUntil(async () => (await probeState()).state === 'up', 'probe up');
    assert.equal((await decision()).value, true);

    p.healthy = false;
    const took = await cronUntil(async () => (await probeState()).state === 'down', 'probe down');
    assert.ok(took <= DISABLE_WINDOW + 3000, `detected after ${took} ms`);
    const d = await decision();
    assert.deepEqual([d.value, d.reason, d.probe], [false, 'DISABLED', 'partner-api']);
    const flagsAnswer = await collector.request('POST', '/v1/flags/evaluate', { body: { context: {} }, headers: { Authorization: `Bearer ${app.ingest_key}` } });
    assert.deepEqual(flagsAnswer.json.probes, { 'partner-api': 'down' }, 'flag answers carry their app\'s probe states');

    // A few more failing runs, so the long window is dominated by the outage however
    // fast or slow the runs are on this machine.
    for (let i = 0; i < 6; i++) await collector.scheduled();
    p.healthy = true;
    const healthySince = Date.now();
    // The short window recovers after a few runs; the flag must stay off until the long one does.
    await waitFor(() => Date.now() - healthySince > DISABLE_WINDOW + 200, { what: 'the disable window to pass', intervalMs: 100 });
    await collector.scheduled();
    await collector.scheduled();
    const mid = await probeState();
    assert.equal(mid.state, 'down');
    assert.equal(mid.disable_window.pass_rate, 1, 'the short window is all green already');
    await cronUntil(async () => (await probeState()).state === 'up', 'probe up again');
    const recovery = Date.now() - healthySince;
    assert.ok(recovery >= DISABLE_WINDOW, `recovered after ${recovery} ms`);
    assert.equal((await decision()).value, true);

    await waitFor(() => alertsOf().length >= 3, { what: '3 alerts' });
    const history = await collector.admin('GET', `/v1/apps/${app.id}/probes/partner-api/history`);
    assert.deepEqual(history.json.transitions.map((t) => `${t.from}->${t.to}`), ['unknown->up', 'up->down', 'down->up']);
    assert.equal(alertsOf().length, 3, 'exactly one alert per transition');
    assert.match(alertsOf()[1].text, /partner-api.*DOWN/);
    assert.match(alertsOf()[2].text, /UP/);
    assert.ok(history.json.results.length >= 6);
    assert.ok(history.json.results.some((r) => !r.ok && r.status === 503));
    assert.match(history.json.results[0].ended_at, /Z$/);
  });

  test('a manual override holds against the automatic decision, and is audited', async () => {
    const p = await partner();
    const { app, decision, probeState } = await probedApp('override', p.url);
    await cronUntil(async () => (await probeState()).state === 'up', 'probe up');
    const forced = await collector.request('PUT', `/v1/apps/${app.id}/probes/partner-api/override`,
      { body: { mode: 'force_down', reason: 'partner asked us to stop calling' }, headers: { Authorization: `Bearer ${collector.adminKey}`, 'X-Telltale-Actor': 'grace@example.com' } });
    assert.deepEqual([forced.status, forced.json.state], [200, 'down']);
    for (let i = 0; i < 4; i++) await collector.scheduled(); // healthy runs
    assert.equal((await probeState()).state, 'down');
    assert.equal((await decision()).value, false);
    const view = await probeState();
    assert.deepEqual([view.override, view.override_by, view.override_reason], ['force_down', 'grace@example.com', 'partner asked us to stop calling']);
    const auto = await collector.request('PUT', `/v1/apps/${app.id}/probes/partner-api/override`,
      { body: { mode: 'auto', reason: 'partner is back' }, headers: { Authorization: `Bearer ${collector.adminKey}` } });
    assert.equal(auto.json.state, 'up', 'the windows are green, so auto goes straight back up');
    const audit = await collector.config(app.id, 'GET', '/audit');
    assert.ok(audit.json.entries.some((e) => e.action === 'probe.override' && e.actor === 'grace@example.com' && e.after.reason === 'partner asked us to stop calling'));
    assert.ok(audit.json.entries.some((e) => e.action === 'probe.transition'));
  });

  test('a failing webhook never blocks or reverts a decision', async () => {
    const p = await partner();
    const { decision, probeState } = await probedApp('broken-hook', p.url);
    await cronUntil(async () => (await probeState()).state === 'up', 'probe up');
    p.healthy = false;
    await cronUntil(async () => (await probeState()).state === 'down', 'probe down with a broken webhook');
    assert.equal((await decision()).value, false);
    assert.match(collector.output, /alert for probe partner-api got 500/);
  });
});

describe('pushed results and the API', () => {
  test('results pushed with the probe key count like cron runs', async () => {
    const { app } = await probedApp('push', 'http://127.0.0.1:9/never-called');
    const push = (body, key = PROBE_KEY, name = 'partner-api') => collector.request('POST', `/v1/apps/${app.id}/probes/${name}/results`, { body, headers: { Authorization: `Bearer ${key}` } });
    const wrong = await push({ ok: true }, 'nope');
    assert.deepEqual([wrong.status, wrong.json.error.code], [401, 'invalid_probe_key']);
    const admin = await push({ ok: true }, collector.adminKey);
    assert.deepEqual([admin.status, admin.json.error.code], [401, 'invalid_probe_key'], 'the admin key is not the probe key');
    const unknown = await push({ ok: true }, PROBE_KEY, 'ghost');
    assert.deepEqual([unknown.status, unknown.json.error.code], [404, 'unknown_probe']);
    const bad = await push({ ok: 'yes' });
    assert.equal(bad.status, 400);
    const notObject = await push([{ ok: true }]);
    assert.equal(notObject.status, 400);
    const ok = await push({ results: [{ ok: true, status: 200, latency_ms: 12 }, { ok: true, status: 200, latency_ms: 15 }] });
    assert.equal(ok.status, 202, ok.text);
    assert.deepEqual([ok.json.accepted, ok.json.state], [2, 'up']);
  });

  test('unknown probes and parameters are 4xx naming them; a probe in use cannot be deleted', async () => {
    const { app } = await probedApp('probe-api', 'http://127.0.0.1:9/never-called');
    const cfg = (method, path, body) => collector.config(app.id, method, path, body);
    const history = await collector.admin('GET', `/v1/apps/${app.id}/probes/ghost/history`);
    assert.deepEqual([history.status, history.json.error.code], [404, 'unknown_probe']);
    const param = await collector.admin('GET', `/v1/apps/${app.id}/probes/partner-api/history?form=1`);
    assert.deepEqual([param.status, param.json.error.field], [400, 'form']);
    const noApp = await collector.admin('GET', '/v1/apps/no-such-app/probes');
    assert.deepEqual([noApp.status, noApp.json.error.code], [404, 'unknown_app']);
    const inUse = await cfg('DELETE', '/stage/probes/partner-api');
    assert.deepEqual([inUse.status, inUse.json.error.code, inUse.json.error.details.flags], [409, 'probe_in_use', ['partner-deals']]);
    const flagWithGhost = await cfg('PUT', '/stage/flags/ghostly', { variants: [{ key: 'a', value: 1 }], default_variant: 'a', requires_probe: 'ghost' });
    assert.deepEqual([flagWithGhost.status, flagWithGhost.json.error.code], [422, 'unknown_probe']);
    const badProbe = await cfg('PUT', '/stage/probes/p2', { url: 'https://x.example', interval_s: 7 });
    assert.deepEqual([badProbe.status, badProbe.json.error.field], [422, 'interval_s']);
  });

  test('probes with different intervals each run sixty over their interval times a minute', async () => {
    // One cron run takes the whole minute here (rounds at their seconds); the schedule
    // itself is unit-tested in core (cron_rounds), this proves the Worker follows it.
    const ten = await partner();
    const twelve = await partner();
    const app = await collector.newApp('intervals');
    await collector.publishConfig(app.id, [
      ['probes', 'every-10', { url: ten.url, interval_s: 10 }],
      ['probes', 'every-12', { url: twelve.url, interval_s: 12 }],
    ]);
    try {
      const started = Date.now();
      const res = await collector.scheduled();
      assert.equal(res.status, 200);
      await waitFor(() => ten.calls >= 6 && twelve.calls >= 5, { timeoutMs: 75_000, what: 'a minute of rounds' });
      // The last rounds are at 50 s and 48 s: nothing more comes from this run after them.
      await waitFor(() => Date.now() - started > 55_000, { timeoutMs: 75_000, intervalMs: 500, what: 'the end of the minute' });
      assert.deepEqual([ten.calls, twelve.calls], [6, 5]);
    } finally {
      // Sub-minute probes make every cron run last the minute: leave none behind.
      await collector.admin('DELETE', `/v1/admin/apps/${app.id}`);
    }
  });
});

describe('the SDK and the demo page follow probe state', () => {
  test('probe(), onProbeChange, the banner and the hidden feature', async () => {
    // The demo page uses the demo app: this test publishes its config there.
    const p = await partner();
    await collector.publishConfig('demo', [
      ['probes', 'partner-api', { url: p.url, body_json: { pointer: '/status', equals: 'green' }, timeout_ms: 1000, interval_s: 60, min_samples: 2, disable_window_ms: DISABLE_WINDOW, enable_window_ms: ENABLE_WINDOW }],
      ['flags', 'partner-deals', { variants: BOOL, default_variant: 'on', off_variant: 'off', requires_probe: 'partner-api' }],
    ]);
    const probeState = async () => (await collector.admin('GET', '/v1/apps/demo/probes')).json.probes.find((x) => x.name === 'partner-api').state;
    const browser = await launchChromium();
    try {
      await cronUntil(async () => (await probeState()) === 'up', 'probe up before the page opens');
      const page = await browser.newPage();
      await page.goto(`${collector.url}/`);
      await page.waitForFunction(() => window.telltale && window.telltale.probe('partner-api') === 'up');
      assert.equal(await page.isVisible('#partner-deals'), true);
      assert.equal(await page.isVisible('#probe-banner'), false);

      p.healthy = false;
      await cronUntil(async () => (await probeState()) === 'down', 'probe down');
      await page.evaluate(() => window.telltale.refreshFlags()); // the page would also refresh on its interval
      await page.waitForFunction(() => !document.getElementById('probe-banner').hidden);
      assert.equal(await page.isVisible('#partner-deals'), false);
      assert.equal(await page.evaluate(() => window.telltale.probe('partner-api')), 'down');
      assert.match(await page.textContent('#log'), /probe partner-api is down/);

      p.healthy = true;
      await cronUntil(async () => (await probeState()) === 'up', 'probe up again', 40_000);
      await page.evaluate(() => window.telltale.refreshFlags());
      await page.waitForFunction(() => document.getElementById('probe-banner').hidden);
      assert.equal(await page.isVisible('#partner-deals'), true);
    } finally {
      await browser.close();
    }
  });

  test('npm start\'s demo config probes the collector\'s own demo partner endpoint', async () => {
    const { seedDemoConfig } = await import('../../scripts/demo-config.mjs');
    const demo = await Collector.start();
    try {
      assert.equal(await seedDemoConfig(demo.url, demo.adminKey, { intervalS: 60, minSamples: 2, disableWindowMs: 2000, enableWindowMs: 5000 }), true);
      assert.equal(await seedDemoConfig(demo.url, demo.adminKey), false, 'seeding is idempotent');
      const state = async () => (await demo.admin('GET', '/v1/apps/demo/probes')).json.probes[0].state;
      await waitFor(async () => { await demo.scheduled(); return (await state()) === 'up'; }, { what: 'demo probe up' });
      const off = await demo.admin('PUT', '/demo-partner/health', { healthy: false });
      assert.equal(off.status, 200);
      await waitFor(async () => { await demo.scheduled(); return (await state()) === 'down'; }, { what: 'demo probe down' });
      const flags = await demo.request('POST', '/v1/flags/evaluate', { body: { context: {} }, headers: { Authorization: `Bearer ${demo.ingestKey}` } });
      assert.deepEqual([flags.json.flags['partner-deals'].value, flags.json.flags['partner-deals'].probe], [false, 'partner-api']);
    } finally {
      await demo.stop();
    }
  });
});
