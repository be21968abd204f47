// `telltale/react` with react and react-dom 19: rendered on the server with bootstrap
// decisions, hydrated in Chromium without a mismatch or a flicker, a component flipping
// when a flag is published, and only the components whose flags changed re-rendering.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { createElement } from 'react';
import { renderToString } from 'react-dom/server';
import { Collector, launchChromium, loadSdk } from './harness.mjs';
import { ROOT } from '../../scripts/toolchain.mjs';

const FIXTURE = join(ROOT, 'tests/e2e/fixtures/react-app.mjs');
let collector, browser, bundle;

const flags = (checkoutDefault) => [
  ['flags', 'banner', { variants: [{ key: 'a', value: 'Welcome!' }], default_variant: 'a' }],
  ['flags', 'checkout', { variants: [{ key: 'on', value: true }, { key: 'off', value: false }], default_variant: checkoutDefault }],
];

before(async () => {
  collector = await Collector.start();
  browser = await launchChromium();
  // The app's client bundle, as its bundler would make it (a development build: React
  // reports hydration mismatches there).
  const dir = mkdtempSync(join(tmpdir(), 'telltale-react-'));
  try {
    const { build } = await import(join(ROOT, 'node_modules/esbuild/lib/main.js'));
    const entry = join(dir, 'entry.js');
    writeFileSync(entry, `import { createElement } from 'react';
import { hydrateRoot } from 'react-dom/client';
import { App, renders } from ${JSON.stringify(FIXTURE)};
window.ReactTest = {
  renders,
  hydrate: (container, client, bootstrap, errors) =>
    hydrateRoot(container, createElement(App, { client, bootstrap }), { onRecoverableError: (e) => errors.push(String(e)) }),
};
`);
    await build({ entryPoints: [entry], bundle: true, format: 'iife', outfile: join(dir, 'app.js'), logLevel: 'silent',
      nodePaths: [join(ROOT, 'node_modules')], define: { 'process.env.NODE_ENV': '"development"' } });
    bundle = readFileSync(join(dir, 'app.js'), 'utf8');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
after(async () => {
  await browser?.close();
  await collector?.stop();
});

describe('React bindings', () => {
  test('server render, hydration without mismatch or flicker, a published flip, and re-renders only where flags changed', async () => {
    const app = await collector.newApp('react');
    await collector.publishConfig(app.id, flags('off'), 'react flags');
    const bootstrap = { banner: 'Welcome!', checkout: false };
    const html = renderToString(createElement((await import(FIXTURE)).App, { client: null, bootstrap }));
    assert.match(html, /Welcome!/);
    assert.match(html, /old checkout/);
    assert.match(html, /BOOTSTRAP\/-/);

    const context = await browser.newContext();
    const page = await context.newPage();
    const consoleErrors = [];
    // React reports hydration problems with console.error; the page's favicon 404 is not one.
    page.on('console', (m) => { if (m.type() === 'error' && !m.text().startsWith('Failed to load resource')) consoleErrors.push(m.text()); });
    page.on('pageerror', (e) => consoleErrors.push(e.message));
    await page.goto(`${collector.url}/healthz`);
    await loadSdk(page);
    await page.addScriptTag({ content: bundle });
    const first = await page.evaluate(async ({ html, endpoint, key, bootstrap }) => {
      document.body.innerHTML = `<div id="root">${html}</div>`;
      const root = document.getElementById('root');
      // Every change of the server-rendered text is a flicker.
      const changes = [];
      new MutationObserver((records) => records.forEach((r) => changes.push(r.target.textContent ?? r.target.nodeValue)))
        .observe(root, { subtree: true, childList: true, characterData: true });
      const errors = [];
      const tt = new window.Telltale({ endpoint, key, bootstrap, context: { user_id: 'u1' }, flushIntervalMs: 3_600_000, flagRefreshMs: 0 });
      window.tt = tt;
      window.ReactTest.hydrate(root, tt, bootstrap, errors);
      await tt.refreshFlags();
      await new Promise((r) => setTimeout(r, 300));
      const text = (id) => document.getElementById(id).textContent;
      return { errors, changes, banner: text('banner'), checkout: text('checkout'), details: text('details'), renders: { ...window.ReactTest.renders } };
    }, { html, endpoint: collector.url, key: app.ingest_key, bootstrap });
    assert.deepEqual(first.errors, [], 'no recoverable (hydration) errors');
    assert.deepEqual(consoleErrors, [], 'no console errors');
    assert.deepEqual([first.banner, first.checkout], ['Welcome!', 'old checkout']);
    assert.equal(first.details, 'STATIC/off', 'details follow the collector once it answers');
    assert.deepEqual(first.changes.filter((t) => /Welcome|checkout$/.test(t)), [], `no flicker of the values: ${JSON.stringify(first.changes)}`);

    // A flag is published: its component flips; the banner's does not render again.
    await collector.publishConfig(app.id, flags('on'), 'checkout on for everyone');
    const second = await page.evaluate(async () => {
      await window.tt.refreshFlags();
      await new Promise((r) => setTimeout(r, 300));
      document.getElementById('buy').click();
      await window.tt.flush();
      return { checkout: document.getElementById('checkout').textContent, renders: { ...window.ReactTest.renders } };
    });
    assert.equal(second.checkout, 'new checkout');
    assert.equal(second.renders.banner, first.renders.banner, 'the banner did not re-render');
    assert.equal(second.renders.probe, first.renders.probe, 'the probe reader did not re-render');
    assert.ok(second.renders.checkout > first.renders.checkout, 'the checkout re-rendered');
    await collector.waitForCount(app.id, 'bought', 1);

    // The next page load: the server still renders the bootstrap, while this browser's
    // cache already holds the newer decision. Hydration starts from the bootstrap (no
    // mismatch), then the component shows the newer value.
    const next = await context.newPage();
    next.on('console', (m) => { if (m.type() === 'error' && !m.text().startsWith('Failed to load resource')) consoleErrors.push(m.text()); });
    await next.goto(`${collector.url}/healthz`);
    await loadSdk(next);
    await next.addScriptTag({ content: bundle });
    const third = await next.evaluate(async ({ html, endpoint, key, bootstrap }) => {
      document.body.innerHTML = `<div id="root">${html}</div>`;
      const errors = [];
      const tt = new window.Telltale({ endpoint, key, bootstrap, context: { user_id: 'u1' }, flushIntervalMs: 3_600_000, flagRefreshMs: 0 });
      window.ReactTest.hydrate(document.getElementById('root'), tt, bootstrap, errors);
      await tt.refreshFlags();
      await new Promise((r) => setTimeout(r, 300));
      return { errors, checkout: document.getElementById('checkout').textContent };
    }, { html, endpoint: collector.url, key: app.ingest_key, bootstrap });
    assert.deepEqual(third.errors, []);
    assert.deepEqual(consoleErrors, []);
    assert.equal(third.checkout, 'new checkout');
    await context.close();
  });

  test('hooks outside the provider say what is wrong', async () => {
    const { useFlag } = await import(join(ROOT, 'sdk/pkg/react.js'));
    const Lonely = () => useFlag('x', false);
    assert.throws(() => renderToString(createElement(Lonely)), /wrap the app in <TelltaleProvider>/);
  });
});
