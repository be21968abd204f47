// `telltale/openfeature`: OpenFeature's own web SDK, unchanged, running over the Telltale
// provider in Chromium, in the client's remote and local modes: every type with reasons,
// variants and metadata, a context change, a flag change (PROVIDER_CONFIGURATION_CHANGED),
// and exposures sent as the client's `$exposure` events.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Collector, launchChromium, loadSdk } from './harness.mjs';
import { PATHS, ROOT } from '../../scripts/toolchain.mjs';

let collector, browser, bundle;
const checkout = (onFor) => ({
  variants: [{ key: 'on', value: true }, { key: 'off', value: false }], default_variant: 'off',
  rules: [{ id: 'teachers', conditions: [{ attribute: 'role', op: 'eq', value: onFor }], serve: { variant: 'on' } }],
});
const flags = (bannerVariant) => [
  ['flags', 'checkout', checkout('teacher')],
  ['flags', 'banner', { variants: [{ key: 'a', value: 'Welcome!' }, { key: 'b', value: 'Hello again!' }], default_variant: bannerVariant }],
  ['flags', 'page-size', { variants: [{ key: 'large', value: 50 }], default_variant: 'large' }],
  ['flags', 'limits', { variants: [{ key: 'x', value: { max: 3 } }], default_variant: 'x' }],
];

before(async () => {
  collector = await Collector.start();
  browser = await launchChromium();
  // What an app's bundler does: OpenFeature's SDK and the provider in one script.
  const dir = mkdtempSync(join(tmpdir(), 'telltale-openfeature-'));
  try {
    const { build } = await import(join(ROOT, 'node_modules/esbuild/lib/main.js'));
    const entry = join(dir, 'entry.js');
    writeFileSync(entry, `export { OpenFeature, ProviderEvents } from '@openfeature/web-sdk';\nexport { TelltaleProvider } from ${JSON.stringify(join(PATHS.sdkPkg, 'openfeature.js'))};\n`);
    await build({ entryPoints: [entry], bundle: true, format: 'iife', globalName: 'OF', outfile: join(dir, 'of.js'), logLevel: 'silent', nodePaths: [join(ROOT, 'node_modules')] });
    bundle = readFileSync(join(dir, 'of.js'), 'utf8');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
after(async () => {
  await browser?.close();
  await collector?.stop();
});

async function openPage() {
  const page = await browser.newPage();
  await page.goto(`${collector.url}/healthz`);
  await loadSdk(page);
  await page.addScriptTag({ content: bundle });
  return page;
}

for (const flagMode of ['remote', 'local']) {
  describe(`OpenFeature over the provider, ${flagMode} mode`, () => {
    test('types, reasons, variants and metadata; a context change; a flag change; exposures', async () => {
      const app = await collector.newApp(`of-${flagMode}`);
      await collector.publishConfig(app.id, flags('a'), 'openfeature flags');
      const page = await openPage();
      const first = await page.evaluate(async ({ endpoint, key, flagMode }) => {
        const tt = new window.Telltale({ endpoint, key, flagMode, flushIntervalMs: 3_600_000, flagRefreshMs: 0 });
        window.tt = tt;
        window.changes = [];
        OF.OpenFeature.addHandler(OF.ProviderEvents.ConfigurationChanged, (e) => window.changes.push(e.flagsChanged));
        await OF.OpenFeature.setContext({ targetingKey: 't1', role: 'teacher' });
        await OF.OpenFeature.setProviderAndWait(new OF.TelltaleProvider(tt));
        const client = OF.OpenFeature.getClient();
        const pick = (d) => ({ value: d.value, variant: d.variant, reason: d.reason, errorCode: d.errorCode, flagMetadata: d.flagMetadata });
        const out = {
          teacher: pick(client.getBooleanDetails('checkout', false)),
          banner: client.getStringValue('banner', 'fallback'),
          size: client.getNumberValue('page-size', 0),
          limits: client.getObjectValue('limits', {}),
          missing: pick(client.getBooleanDetails('no-such-flag', false)),
          mismatch: pick(client.getNumberDetails('banner', 7)),
        };
        await OF.OpenFeature.setContext({ targetingKey: 's1', role: 'student' });
        out.student = pick(client.getBooleanDetails('checkout', true));
        return out;
      }, { endpoint: collector.url, key: app.ingest_key, flagMode });
      assert.deepEqual([first.teacher.value, first.teacher.variant, first.teacher.reason], [true, 'on', 'TARGETING_MATCH']);
      assert.equal(first.teacher.flagMetadata.rule, 'teachers');
      assert.match(String(first.teacher.flagMetadata.version), /\w/);
      assert.equal(first.banner, 'Welcome!');
      assert.equal(first.size, 50);
      assert.deepEqual(first.limits, { max: 3 });
      assert.deepEqual([first.missing.value, first.missing.errorCode, first.missing.reason], [false, 'FLAG_NOT_FOUND', 'ERROR']);
      assert.deepEqual([first.mismatch.value, first.mismatch.errorCode], [7, 'TYPE_MISMATCH']);
      assert.deepEqual([first.student.value, first.student.variant, first.student.reason], [false, 'off', 'DEFAULT']);

      // A flag change: published, then picked up by the client, announced by the provider.
      await collector.publishConfig(app.id, flags('b'), 'a new banner');
      const second = await page.evaluate(async () => {
        await window.tt.refreshFlags();
        const client = OF.OpenFeature.getClient();
        return { banner: client.getStringValue('banner', 'fallback'), changes: window.changes };
      });
      assert.equal(second.banner, 'Hello again!');
      assert.ok(second.changes.some((keys) => keys.includes('banner')), JSON.stringify(second.changes));

      // Exposures went out as the client's own: one per flag and variant read.
      await page.evaluate(() => window.tt.flush());
      // checkout/on, banner/a, page-size/large, limits/x, checkout/off, banner/b
      await collector.waitForCount(app.id, '$exposure', 6);
      const byFlag = await collector.stats({ app: app.id, event: '$exposure', by: 'flag' });
      assert.deepEqual(byFlag.json.top, [
        { value: 'banner', count: 2 }, { value: 'checkout', count: 2 }, { value: 'limits', count: 1 }, { value: 'page-size', count: 1 },
      ]);
      await page.close();
    });
  });
}

describe('the provider when the collector is away', () => {
  test('initialization fails (ERROR) and evaluations serve defaults, never throw', async () => {
    const page = await openPage();
    const result = await page.evaluate(async () => {
      const tt = new window.Telltale({ endpoint: 'http://127.0.0.1:9', key: 'tt_ik_none', flushIntervalMs: 3_600_000, flagRefreshMs: 0, onError: () => {} });
      await OF.OpenFeature.clearProviders();
      const errors = [];
      OF.OpenFeature.addHandler(OF.ProviderEvents.Error, (e) => errors.push(e.message));
      await OF.OpenFeature.setProviderAndWait(new OF.TelltaleProvider(tt)).catch((e) => errors.push(`rejected: ${e.message}`));
      const d = OF.OpenFeature.getClient().getBooleanDetails('checkout', true);
      let thrown;
      try { new OF.TelltaleProvider({}); } catch (e) { thrown = e.message; }
      return { errors, value: d.value, errorCode: d.errorCode, thrown };
    });
    assert.ok(result.errors.length > 0, 'an error is reported');
    assert.equal(result.value, true, 'the default');
    assert.ok(result.errorCode, 'with an error code');
    assert.match(result.thrown, /pass a Telltale client/);
    await page.close();
  });
});
