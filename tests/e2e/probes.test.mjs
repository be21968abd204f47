// Probes end to end: a local HTTP server is the probed partner endpoint (switched between
// healthy and failing by the test), a local webhook receiver collects alerts, and cron
// runs are triggered through the scheduled-test URL. Windows are seconds long here so
// the hysteresis plays out in a test; the defaults (5 and 15 minutes) are simulated in
// core (tests: probe_simulations).
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { after, before, describe, test } from 'node:test';
import { Collector, sleep, waitFor, launchChromium } from './harness.mjs';

const PROBE_KEY = 'tt_probe_test_key';
let partnerHealthy = true;
let webhookStatus = 200;
const alerts = [];
let partner;
let webhook;
let collector;

function listen(handler) {
  return new Promise((resolve) => {
    const server = createServer(handler);
    server.listen(0, '127.0.0.1', () => resolve(server));
  });
}

const DISABLE_WINDOW = 2500;
const ENABLE_WINDOW = 7000;

before(async () => {
  partner = await listen((req, res) => {
    if (partnerHealthy) {
      res.writeHead(200, { 'content-type': 'application/json' }).end('{"status":"green"}');
    } else {
      res.writeHead(503).end('down for maintenance');
    }
  });
  webhook = await listen((req, res) => {
    let body = '';
    req.on('data', (c) => { body += c; });
    req.on('end', () => {
      if (webhookStatus === 200) alerts.push(JSON.parse(body));
      res.writeHead(webhookStatus).end();
    });
  });
  collector = await Collector.start({ vars: { ALERT_WEBHOOK_URL: `http://127.0.0.1:${webhook.address().port}/hook`, PROBE_KEY } });
  const admin = { Authorization: `Bearer ${collector.adminKey}`, 'X-Telltale-Actor': 'oncall@example.com' };
  const stage = (kind, key, body) => collector.request('PUT', `/v1/config/stage/${kind}/${key}`, { body, headers: admin });
  const probe = await stage('probes', 'partner-api', {
    url: `http://127.0.0.1:${partner.address().port}/health`, body_json: { pointer: '/status', equals: 'green' },
    timeout_ms: 1000, interval_s: 60, min_samples: 2,
    disable_window_ms: DISABLE_WINDOW, enable_window_ms: ENABLE_WINDOW,
  });
  assert.equal(probe.status, 200, probe.text);
  const flag = await stage('flags', 'partner-deals', {
    variants: [{ key: 'on', value: true }, { key: 'off', value: false }], default_variant: 'on', off_variant: 'off', requires_probe: 'partner-api',
  });
  assert.equal(flag.status, 200, flag.text);
  await collector.request('POST', '/v1/config/commits', { body: { message: 'partner probe' }, headers: admin });
  await collector.request('POST', '/v1/config/publish', { body: {}, headers: admin });
});
after(async () => {
  await collector?.stop();
  partner?.close();
  webhook?.close();
});

async function decision() {
  const res = await collector.request('POST', '/v1/flags/evaluate', { body: { context: {} }, headers: { Authorization: `Bearer ${collector.ingestKey}` } });
  return res.json.flags['partner-deals'];
}

async function probeState() {
  const res = await collector.admin('GET', '/v1/probes');
  return res.json.probes.find((p) => p.name === 'partner-api');
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
  test('unknown -> up once there are enough samples', async () => {
    assert.equal((await probeState()).state, 'unknown');
    await cronUntil(async () => (await probeState()).state === 'up', 'probe up');
    assert.equal((await decision()).value, true);
  });

  test('an outage turns the flag off, with the probe named', async () => {
    partnerHealthy = false;
    const took = await cronUntil(async () => (await probeState()).state === 'down', 'probe down');
    assert.ok(took <= DISABLE_WINDOW + 3000, `detected after ${took} ms`);
    const d = await decision();
    assert.deepEqual([d.value, d.reason, d.probe], [false, 'DISABLED', 'partner-api']);
    const flagsAnswer = await collector.request('POST', '/v1/flags/evaluate', { body: { context: {} }, headers: { Authorization: `Bearer ${collector.ingestKey}` } });
    assert.equal(flagsAnswer.json.probes['partner-api'], 'down', 'flag responses carry probe states');
  });

  test('recovery waits for the longer enable window', async () => {
    partnerHealthy = true;
    const healthySince = Date.now();
    // The short window recovers after a few runs; the flag must stay off until the long one does.
    await sleep(DISABLE_WINDOW + 200);
    await collector.scheduled();
    await collector.scheduled();
    const mid = await probeState();
    assert.equal(mid.state, 'down');
    assert.equal(mid.disable_window.pass_rate, 1, 'the short window is all green already');
    await cronUntil(async () => (await probeState()).state === 'up', 'probe up again');
    const recovery = Date.now() - healthySince;
    assert.ok(recovery >= DISABLE_WINDOW, `recovered after ${recovery} ms`);
    assert.equal((await decision()).value, true);
  });

  test('exactly one alert per transition', async () => {
    await waitFor(() => alerts.length >= 3, { what: '3 alerts' });
    await sleep(500);
    const history = await collector.admin('GET', '/v1/probes/partner-api/history');
    assert.deepEqual(history.json.transitions.map((t) => `${t.from}->${t.to}`), ['unknown->up', 'up->down', 'down->up']);
    assert.equal(alerts.length, 3);
    assert.match(alerts[1].text, /partner-api.*DOWN/);
    assert.match(alerts[2].text, /UP/);
    assert.ok(history.json.results.length >= 6);
    assert.ok(history.json.results.some((r) => !r.ok && r.status === 503));
    assert.match(history.json.results[0].ended_at, /Z$/);
  });

  test('a manual override holds against the automatic decision, and is audited', async () => {
    const forced = await collector.request('PUT', '/v1/probes/partner-api/override',
      { body: { mode: 'force_down', reason: 'partner asked us to stop calling' }, headers: { Authorization: `Bearer ${collector.adminKey}`, 'X-Telltale-Actor': 'grace@example.com' } });
    assert.deepEqual([forced.status, forced.json.state], [200, 'down']);
    for (let i = 0; i < 6; i++) await collector.scheduled(); // healthy runs
    assert.equal((await probeState()).state, 'down');
    assert.equal((await decision()).value, false);
    const view = await probeState();
    assert.deepEqual([view.override, view.override_by, view.override_reason], ['force_down', 'grace@example.com', 'partner asked us to stop calling']);
    const auto = await collector.request('PUT', '/v1/probes/partner-api/override',
      { body: { mode: 'auto', reason: 'partner is back' }, headers: { Authorization: `Bearer ${collector.adminKey}` } });
    assert.equal(auto.json.state, 'up', 'the long window is green, so auto goes straight back up');
    const audit = await collector.admin('GET', '/v1/config/audit');
    assert.ok(audit.json.entries.some((e) => e.action === 'probe.override' && e.actor === 'grace@example.com' && e.after.reason === 'partner asked us to stop calling'));
    assert.ok(audit.json.entries.some((e) => e.action === 'probe.transition'));
  });

  test('a failing webhook never blocks or reverts a decision', async () => {
    webhookStatus = 500;
    partnerHealthy = false;
    await cronUntil(async () => (await probeState()).state === 'down', 'probe down with a broken webhook');
    assert.equal((await decision()).value, false);
    assert.match(collector.output, /alert for probe partner-api got 500/);
    webhookStatus = 200;
    partnerHealthy = true;
  });
});

describe('pushed results and the API', () => {
  test('results pushed with the probe key count like cron runs', async () => {
    const push = (body, key = PROBE_KEY) => collector.request('POST', '/v1/probes/partner-api/results', { body, headers: { Authorization: `Bearer ${key}` } });
    const wrong = await push({ ok: true }, 'nope');
    assert.deepEqual([wrong.status, wrong.json.error.code], [401, 'invalid_probe_key']);
    const unknown = await collector.request('POST', '/v1/probes/ghost/results', { body: { ok: true }, headers: { Authorization: `Bearer ${PROBE_KEY}` } });
    assert.deepEqual([unknown.status, unknown.json.error.code], [404, 'unknown_probe']);
    const bad = await push({ ok: 'yes' });
    assert.equal(bad.status, 400);
    const ok = await push({ results: [{ ok: true, status: 200, latency_ms: 12 }, { ok: true, status: 200, latency_ms: 15 }] });
    assert.equal(ok.status, 202, ok.text);
    assert.equal(ok.json.accepted, 2);
  });

  test('unknown probes and parameters are 4xx naming them; a probe in use cannot be deleted', async () => {
    const history = await collector.admin('GET', '/v1/probes/ghost/history');
    assert.deepEqual([history.status, history.json.error.code], [404, 'unknown_probe']);
    const param = await collector.admin('GET', '/v1/probes/partner-api/history?form=1');
    assert.deepEqual([param.status, param.json.error.field], [400, 'form']);
    const inUse = await collector.admin('DELETE', '/v1/config/stage/probes/partner-api');
    assert.deepEqual([inUse.status, inUse.json.error.code], [409, 'probe_in_use']);
    const flagWithGhost = await collector.admin('PUT', '/v1/config/stage/flags/ghostly', { variants: [{ key: 'a', value: 1 }], default_variant: 'a', requires_probe: 'ghost' });
    assert.deepEqual([flagWithGhost.status, flagWithGhost.json.error.code], [422, 'unknown_probe']);
    const badProbe = await collector.admin('PUT', '/v1/config/stage/probes/p2', { url: 'https://x.example', interval_s: 7 });
    assert.deepEqual([badProbe.status, badProbe.json.error.field], [422, 'interval_s']);
  });
});

describe('the SDK and the demo page follow probe state', () => {
  test('probe(), onProbeChange, the banner and the hidden feature', async () => {
    const browser = await launchChromium();
    try {
      partnerHealthy = true;
      await cronUntil(async () => (await probeState()).state === 'up', 'probe up before the page opens');
      const page = await browser.newPage();
      await page.goto(`${collector.url}/`);
      await page.waitForFunction(() => window.telltale && window.telltale.probe('partner-api') === 'up');
      assert.equal(await page.isVisible('#partner-deals'), true);
      assert.equal(await page.isVisible('#probe-banner'), false);

      partnerHealthy = false;
      await cronUntil(async () => (await probeState()).state === 'down', 'probe down');
      await page.evaluate(() => window.telltale.refreshFlags()); // the page would also refresh on its interval
      await page.waitForFunction(() => !document.getElementById('probe-banner').hidden);
      assert.equal(await page.isVisible('#partner-deals'), false);
      assert.equal(await page.evaluate(() => window.telltale.probe('partner-api')), 'down');
      assert.match(await page.textContent('#log'), /probe partner-api is down/);

      partnerHealthy = true;
      await cronUntil(async () => (await probeState()).state === 'up', 'probe up again', 40_000);
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
      const state = async () => (await demo.admin('GET', '/v1/probes')).json.probes[0].state;
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
