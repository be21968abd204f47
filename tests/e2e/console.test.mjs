// The console in headless Chromium, driven as a user would: sign in, create an app, edit
// and release a flag, roll it back, force a probe down, explore events and download their
// CSV, with hostile event names rendered as text and no console errors anywhere. Each
// view is photographed at 1280x800 into docs/console/ (the README shows them).
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { ROOT } from '../../scripts/toolchain.mjs';
import { Collector, launchChromium, makeEvent, waitFor } from './harness.mjs';

const SHOTS = join(ROOT, 'docs/console');
const BOOL = [{ key: 'on', value: true }, { key: 'off', value: false }];
const XSS = '<img src=x onerror="window.__xss=1">';

let collector;
let browser;
let page;
const problems = []; // script errors and server errors, from every view

before(async () => {
  mkdirSync(SHOTS, { recursive: true });
  collector = await Collector.start();
  browser = await launchChromium();
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 }, acceptDownloads: true });
  page = await context.newPage();
  // Chromium also logs every 4xx as a console error; the deliberate ones (a wrong key, a
  // refused rule) are the point of some tests, so failed requests count only as 5xx.
  page.on('console', (m) => { if (m.type() === 'error' && !m.text().startsWith('Failed to load resource')) problems.push(`console: ${m.text()}`); });
  page.on('response', (r) => { if (r.status() >= 500) problems.push(`HTTP ${r.status()} ${r.url()}`); });
  page.on('pageerror', (e) => problems.push(`page: ${e.message}`));
  page.on('dialog', (d) => d.accept());
  // The demo app gets a base config (a flag, a probe that requires a flag) to release on top of.
  await collector.publishConfig('demo', [
    ['probes', 'partner-api', { url: 'http://127.0.0.1:9/never-up', interval_s: 60, min_samples: 2 }],
    ['flags', 'partner-deals', { variants: BOOL, default_variant: 'on', off_variant: 'off', requires_probe: 'partner-api' }],
  ], 'base config');
});
after(async () => {
  await browser?.close();
  await collector?.stop();
});

async function shot(name, { top = true } = {}) {
  if (top) await page.evaluate(() => window.scrollTo(0, 0));
  await page.waitForTimeout(150); // let charts paint
  await page.screenshot({ path: join(SHOTS, `${name}.png`) });
}

async function view(hash) {
  await page.evaluate((h) => { location.hash = h; }, hash);
  await page.waitForSelector('#view > h2');
}

async function decision(flag) {
  const res = await collector.request('POST', '/v1/flags/evaluate', { body: { context: { user_id: 'u-7' } }, headers: { Authorization: `Bearer ${collector.ingestKey}` } });
  return res.json.flags[flag];
}

describe('the console', () => {
  test('sign-in: a wrong key says so; the right one opens the overview', async () => {
    await page.goto(`${collector.url}/console/`);
    await page.fill('#admin-key', 'tt_admin_wrong');
    await page.click('button[type=submit]');
    await page.waitForSelector('#signin-message.error');
    assert.match(await page.textContent('#signin-message'), /wrong/);
    await shot('sign-in');
    await page.fill('#admin-key', collector.adminKey);
    await page.click('button[type=submit]');
    await page.waitForSelector('#view > h2');
    assert.equal(await page.textContent('#view > h2'), 'Overview');
    const csp = (await collector.request('GET', '/console/')).headers.get('content-security-policy');
    assert.match(csp || '', /script-src 'self'/, 'the console is served with a CSP');
    assert.equal(await page.evaluate(() => location.href.includes(sessionStorage.getItem('telltale:admin_key'))), false, 'the key is not in the URL');
  });

  test('the old dashboard link lands in the console, signed in by the fragment', async () => {
    const fresh = await browser.newPage();
    await fresh.goto(`${collector.url}/dashboard.html#key=${collector.adminKey}`);
    await fresh.waitForSelector('#view > h2');
    assert.match(fresh.url(), /\/console\/#\/overview$/);
    await fresh.close();
  });

  test('apps: create one, and see its snippet', async () => {
    await view('#/apps');
    await page.fill('#new-app-id', 'console-shop');
    await page.fill('#new-app-origins', 'https://shop.example');
    await page.click('#create-app button[type=submit]');
    await page.waitForSelector('.app-card[data-app="console-shop"]');
    assert.match(await page.textContent('.app-card[data-app="console-shop"] pre.snippet'), /new Telltale\(\{ endpoint: .*key: 'tt_ik_/);
    // Retention: a bad value is refused with the API's reason, a good one saved; the archive's
    // last run shows once there was one.
    const shop = '.app-card[data-app="console-shop"]';
    assert.match(await page.textContent(`${shop} .archive-status`), /nothing archived yet/);
    await page.fill(`${shop} input.retention`, '0');
    await page.click(`${shop} .save-retention`);
    await page.waitForFunction((sel) => /retention_days must be 1 to 3650/.test(document.querySelector(sel)?.textContent || ''), `${shop} p[role=status]`);
    await page.fill(`${shop} input.retention`, '7');
    await page.click(`${shop} .save-retention`);
    await page.waitForFunction(() => /Retention of console-shop saved: 7 days/.test(document.querySelector('#apps-status')?.textContent || ''));
    assert.equal((await collector.admin('GET', '/v1/admin/apps/console-shop')).json.retention_days, 7);
    assert.equal((await collector.admin('POST', '/v1/admin/archive/run')).status, 200);
    await page.evaluate(() => location.reload());
    await page.waitForFunction((sel) => /last run \d{4}-/.test(document.querySelector(sel)?.textContent || ''), `${shop} .archive-status`);
    await shot('apps');
    await collector.createApp('console-doomed');
    await page.evaluate(() => location.reload());
    await page.waitForSelector('.app-card[data-app="console-doomed"]');
    await page.click('.app-card[data-app="console-doomed"] .delete-app');
    await page.waitForFunction(() => !document.querySelector('.app-card[data-app="console-doomed"]'));
    assert.match(await page.textContent('#apps-status'), /Deleted console-doomed/);
    assert.equal((await collector.admin('GET', '/v1/admin/apps/console-doomed')).json.deleted_at !== undefined, true);
    // Back to the demo app for the flag work (its page is the demo product).
    await page.selectOption('#app-picker', 'demo');
  });

  test('flags: a 30% rollout from the editor; a bad rule shows its field error', async () => {
    await view('#/flags/edit/');
    await page.fill('#flag-key', 'console-canary');
    await page.click('#add-rule');
    await page.check('input[name="mode-0"][value="rollout"]');
    await page.$eval('input.rollout', (el) => { el.value = '30'; el.dispatchEvent(new Event('input', { bubbles: true })); });
    await page.click('.add-condition');
    await page.selectOption('select.cond-op', 'gt');
    await page.fill('input.cond-value', '"old"');
    await page.click('#save-flag');
    await page.waitForSelector('#editor-status.error');
    const fieldError = await page.textContent('[data-path="rules[0].conditions[0].value"] .field-error');
    assert.match(fieldError, /numbers/, 'the 422 shows next to the value');
    await shot('flag-editor-error', { top: false });
    await page.fill('input.cond-attribute', 'age');
    await page.fill('input.cond-value', '17');
    await page.click('#save-flag');
    await page.waitForSelector('#editor-status.ok');
    const staged = await collector.config('demo', 'GET', '/stage');
    const body = staged.json.changes.find((c) => c.key === 'console-canary').body;
    assert.equal(body.rules[0].serve.rollout_percent, 30);
    await shot('flag-editor');
    await view('#/flags');
    await page.waitForSelector('text=console-canary');
    await shot('flags');
  });

  test('release: the diff, a commit with a message, publish; the demo page sees the flag', async () => {
    await view('#/release');
    assert.match(await page.textContent('#release-diff'), /flags\/console-canary/);
    await shot('release');
    await page.fill('#commit-message', 'canary from the console');
    await page.click('#commit');
    await page.waitForSelector('#release-status.ok');
    await page.click('#publish');
    await page.waitForFunction(() => /Published/.test(document.getElementById('release-status').textContent));
    assert.ok(await decision('console-canary'), 'the collector serves it');
    const demo = await browser.newPage();
    await demo.goto(`${collector.url}/`);
    await demo.waitForFunction(() => window.telltale);
    const seen = await demo.evaluate(async () => { await window.telltale.refreshFlags(); return window.telltale.details('console-canary'); });
    assert.notEqual(seen.reason, 'ERROR', JSON.stringify(seen));
    await demo.close();
  });

  test('history: roll back, and the flag is gone again', async () => {
    await view('#/history');
    await shot('history');
    const base = (await collector.config('demo', 'GET', '/commits')).json.commits.find((c) => c.message === 'base config');
    await page.click(`button.rollback[data-commit="${base.id}"]`);
    await page.waitForSelector('#history-status.ok');
    assert.equal(await decision('console-canary'), undefined, 'rolled back: not served');
  });

  test('probes: forcing one down turns the dependent flag off at once', async () => {
    assert.equal((await decision('partner-deals')).value, true);
    await view('#/probes/partner-api');
    await page.selectOption('#override-mode', 'force_down');
    await page.fill('#override-reason', 'maintenance window');
    await page.click('#override-apply');
    await page.waitForSelector('#override-status.ok');
    assert.deepEqual([(await decision('partner-deals')).value, (await decision('partner-deals')).reason], [false, 'DISABLED']);
    await shot('probe');
    await view('#/probes');
    await shot('probes');
  });

  test('events: counts equal /v1/stats, the CSV equals the API\'s, hostile names are text', async () => {
    const app = await collector.newApp('console-events');
    const events = [
      ...Array.from({ length: 7 }, (_, i) => makeEvent({ name: 'search', anonymous_id: `a${i % 3}`, props: { q: i % 2 ? 'rust' : 'wasm' } })),
      ...Array.from({ length: 3 }, () => makeEvent({ name: 'enroll' })),
      makeEvent({ name: XSS, props: { [XSS]: XSS } }),
    ];
    assert.equal((await collector.ingest({ events }, { key: app.ingest_key })).status, 202);
    await collector.waitForCount(app.id, 'search', 7);
    await collector.waitForCount(app.id, XSS, 1);
    await page.evaluate(() => location.reload());
    await page.waitForSelector('#app-picker');
    await page.selectOption('#app-picker', app.id);
    await view('#/overview');
    await page.waitForSelector('#total-events');
    assert.equal(await page.textContent('#total-events'), '11');
    await shot('overview');
    await view('#/events');
    await page.selectOption('#event', 'search');
    await page.waitForFunction(() => /^7 search/.test(document.getElementById('event-total')?.textContent || ''));
    const api = await collector.count(app.id, 'search');
    assert.equal(api, 7);
    await page.selectOption('#by', 'q');
    await page.waitForSelector('#breakdown-chart');
    await page.selectOption('#compare', 'enroll');
    await page.waitForFunction(() => /3 enroll/.test(document.getElementById('event-total')?.textContent || ''));
    await page.check('#tail-toggle');
    await page.waitForSelector('#view table td');
    await shot('events');
    // The CSV button downloads exactly what the API answers for the query it shows.
    const request = page.waitForRequest((r) => r.url().includes('/v1/stats') && r.url().includes('format=csv'));
    const download = page.waitForEvent('download');
    await page.click('#csv');
    const url = (await request).url();
    const file = readFileSync(await (await download).path(), 'utf8');
    const fromApi = await collector.request('GET', url.slice(collector.url.length), { headers: { Authorization: `Bearer ${collector.adminKey}` } });
    assert.equal(file, fromApi.text);
    assert.match(file, /^value,count\n/);
    // Hostile names render as text and run nothing.
    await page.selectOption('#event', XSS);
    await page.waitForFunction((x) => document.getElementById('event-total')?.textContent.includes(x), XSS);
    assert.equal(await page.evaluate(() => window.__xss), undefined);
    assert.equal(await page.$$eval('img', (imgs) => imgs.length), 0);
  });

  test('try a context: staged and published decisions side by side', async () => {
    await page.selectOption('#app-picker', 'demo');
    await view('#/try');
    await page.waitForSelector('#try-result table');
    assert.match(await page.textContent('#try-result'), /partner-deals/);
    await shot('try');
  });

  test('experiments: from a flag in two clicks to results, with the sample ratio mismatch banner', async () => {
    const app = await collector.createApp('console-exp', [collector.url]);
    await collector.publishConfig(app.id, [['flags', 'layout', { variants: [{ key: 'grid', value: 'grid' }, { key: 'list', value: 'list' }], default_variant: 'grid',
      rules: [{ id: 'ab', serve: { split: [{ variant: 'grid', weight: 50 }, { variant: 'list', weight: 50 }] } }] }]], 'a split');
    // Exposures today, logged 2:1 (a broken client); `list` buyers twice as often (24% vs 12%).
    const events = [];
    const midnight = Date.now() - (Date.now() % 86_400_000);
    for (let i = 0; i < 600; i++) {
      const variant = i % 3 ? 'list' : 'grid';
      const user = { user_id: `u${i}`, anonymous_id: `a${i}` };
      const ts = midnight + Math.floor(((Date.now() - midnight) * i) / 601);
      events.push(makeEvent({ name: '$exposure', ts, ...user, props: { flag: 'layout', variant, version: 'v', reason: 'SPLIT' } }));
      if (i % 25 < (variant === 'list' ? 6 : 3)) events.push(makeEvent({ name: 'purchase', ts: ts + 1, ...user, props: { amount: 10 } }));
    }
    for (let i = 0; i < events.length; i += 200) {
      const res = await collector.ingest({ sent_at: Date.now(), events: events.slice(i, i + 200) }, { key: app.ingest_key });
      assert.equal(res.status, 202, res.text);
    }
    await collector.waitForCount(app.id, '$exposure', 600);
    await page.reload(); // the picker lists the apps known at sign-in
    await page.waitForSelector('#view > h2');
    await page.selectOption('#app-picker', app.id);
    await view('#/flags');
    await page.click('.experiment-link[data-flag="layout"]'); // click 1
    await page.waitForSelector('#experiment-editor');
    assert.equal(await page.inputValue('#metric-event'), 'purchase', 'the first custom event is the metric');
    await page.click('#experiment-stage'); // click 2
    await page.waitForFunction(() => document.querySelector('#view > h2')?.textContent === 'Experiment layout-test');
    await page.waitForSelector('#srm-banner');
    assert.match(await page.textContent('#srm-banner'), /Sample ratio mismatch/);
    assert.match(await page.textContent('#experiment-verdict'), /Not trustworthy/);
    assert.equal(await page.locator('.lift-chart').count(), 1);
    await page.waitForSelector('#exposure-chart canvas');
    await shot('experiment');
    await view('#/experiments');
    assert.match(await page.textContent('#view'), /layout-test/);
    // The flag cannot go while the experiment runs on it; the experiment can.
    await view('#/flags');
    await page.click('text=Delete');
    await page.waitForFunction(() => /experiments: layout-test/.test(document.getElementById('flags-message')?.textContent || ''));
    await view('#/experiments');
    await page.click('#view button.link');
    await page.waitForFunction(() => /Deletion of layout-test staged/.test(document.getElementById('experiments-message')?.textContent || ''));
    await page.selectOption('#app-picker', 'demo');
  });

  test('no console errors on any view', async () => {
    for (const hash of ['#/overview', '#/events', '#/flags', '#/release', '#/history', '#/try', '#/probes', '#/experiments', '#/apps']) await view(hash);
    assert.deepEqual(problems, []);
  });
});
