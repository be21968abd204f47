// The SDK's flags client in headless Chromium against the real collector: the shared
// vectors evaluated by the wasm engine, remote and local modes agreeing, bootstrap,
// the localStorage cache, change listeners and exposure events.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { Collector, launchChromium, loadSdk } from './harness.mjs';

const BOOL = [{ key: 'on', value: true }, { key: 'off', value: false }];

// The config the tests read (never change): published into each app a test uses.
const FLAGS = [
  ['flags', 'checkout', { variants: BOOL, default_variant: 'off', rules: [{ id: 'teachers', conditions: [{ attribute: 'role', op: 'eq', value: 'teacher' }], serve: { variant: 'on' } }] }],
  ['flags', 'layout', { variants: [{ key: 'grid', value: 'grid' }, { key: 'list', value: 'list' }], default_variant: 'grid',
    rules: [{ id: 'ab', serve: { split: [{ variant: 'grid', weight: 50 }, { variant: 'list', weight: 50 }] } }] }],
  ['flags', 'limits', { variants: [{ key: 'v', value: { max: 3 } }], default_variant: 'v' }],
];

let collector;
let browser;
let app;
before(async () => {
  collector = await Collector.start();
  browser = await launchChromium();
  app = await collector.newApp('sdk-flags', [collector.url]);
  await collector.publishConfig(app.id, FLAGS, 'sdk flags');
});
after(async () => {
  await browser?.close();
  await collector?.stop();
});

async function sdkPage(context) {
  const page = await (context || await browser.newContext()).newPage();
  await page.goto(`${collector.url}/healthz`);
  await loadSdk(page);
  return page;
}

describe('shared vectors in the browser', () => {
  test('the wasm engine decides every case exactly as core does, through JSON and through packed decisions', async () => {
    const doc = JSON.parse(readFileSync(new URL('../spec/flags/cases.json', import.meta.url), 'utf8'));
    // Compiled by the collector, as a published ruleset is: the module only decides.
    const compiled = await collector.admin('POST', '/v1/flags/compile', doc.ruleset);
    assert.equal(compiled.status, 200, compiled.text);
    assert.deepEqual(compiled.json.warnings.map((w) => w.field).sort(), [...doc.expected_warnings].sort());
    const page = await sdkPage();
    const results = await page.evaluate(async ({ doc, ruleset }) => {
      // The engine is a second module, loaded on demand (as local mode does).
      const engine = await window.sdk.loadFlagEngine();
      // What is not a compiled ruleset is refused with a reason (a ruleset without `compiled`,
      // text that is not base64, bytes that are not an engine, cut bytes, not JSON).
      const served = JSON.parse(ruleset);
      const refusals = ['{"flags": []}', '{"compiled": "!!"}', '{"compiled": "AAAA"}', '{"compiled": 5}',
        JSON.stringify({ ...served, compiled: served.compiled.slice(0, -8) }), 'not json'].map((text) => {
        try { new engine.FlagEngine(text); return 'accepted'; } catch (e) { return e.message; }
      });
      if (refusals.some((m) => m === 'accepted' || !m)) throw new Error(`accepted: ${JSON.stringify(refusals)}`);
      if (!/POST \/v1\/flags\/compile/.test(refusals[0])) throw new Error(`no advice: ${refusals[0]}`);
      // The fast path: the context set once, a packed number per decision, decoded in JS.
      const fast = new engine.FlagEngine(ruleset);
      const tables = engine.readTables(fast);
      // An index that names no flag is "not found", whatever its type.
      const nowhere = [-1, tables.keys.length, 1.5, NaN, undefined, 2 ** 32]
        .map((i) => engine.decodeDecision(tables, tables.keys.length, fast.decide(i, 0)).error_code);
      if (nowhere.some((code) => code !== 'FLAG_NOT_FOUND')) throw new Error(`bad indexes decided: ${nowhere}`);
      // evaluate's values are the caller's: changing one changes no later decision.
      const objectCase = doc.cases.find((c) => c.expect.value && typeof c.expect.value === 'object');
      if (objectCase) {
        const first = fast.evaluate(objectCase.flag, objectCase.context, objectCase.probes || {}, Date.parse(objectCase.now || doc.now));
        first.value.changed = true;
        const again = fast.evaluate(objectCase.flag, objectCase.context, objectCase.probes || {}, Date.parse(objectCase.now || doc.now));
        if (again.value.changed) throw new Error('a decision value was shared with the caller');
      }
      return doc.cases.map((c) => {
        const now = Date.parse(c.now || doc.now);
        fast.setContext(c.context, c.probes || {});
        const index = tables.keys.indexOf(c.flag);
        return {
          json: engine.evaluateRuleset(ruleset, c.flag, c.context, c.probes || {}, now),
          packed: engine.decodeDecision(tables, index < 0 ? tables.keys.length : index, fast.decide(index < 0 ? tables.keys.length : index, now)),
          all: engine.decodeAll(tables, fast.decideAll(now))[c.flag],
        };
      });
    }, { doc, ruleset: compiled.text });
    assert.equal(results.length, doc.cases.length);
    doc.cases.forEach((c, i) => {
      const { json, packed, all } = results[i];
      for (const key of ['value', 'variant', 'reason', 'rule', 'bucket', 'error_code', 'probe']) {
        assert.deepEqual(json[key] ?? null, c.expect[key] ?? null, `${c.name}: ${key}`);
      }
      if (json.error_code === 'FLAG_NOT_FOUND') {
        // By index there is no key to name: the rest of the decision is the same.
        assert.deepEqual({ ...packed, key: json.key, error_message: json.error_message }, json, c.name);
        assert.equal(all, undefined);
      } else {
        assert.deepEqual(packed, json, `${c.name}: decide`);
        assert.deepEqual(all, json, `${c.name}: decideAll`);
      }
    });
    await page.close();
  });
});

describe('contexts cross into wasm as JSON would carry them', () => {
  test('the encoded attributes decide as the collector decides the context JSON, for every kind of value, odd ones included', async () => {
    const on = { key: 'on', value: true }, off = { key: 'off', value: false };
    const flag = (key, conditions, serve = { variant: 'on' }) => ({ key, variants: [on, off], default_variant: 'off', rules: [{ conditions, serve }] });
    const flags = [
        flag('zero', [{ attribute: 'n', op: 'eq', value: 0 }]),
        flag('big', [{ attribute: 'n', op: 'eq', value: 18446744073709551616 }]),
        flag('huge', [{ attribute: 'n', op: 'gte', value: 1e21 }]),
        flag('tenth', [{ attribute: 'n', op: 'lt', value: 0.30000000000000004 }]),
        flag('minus', [{ attribute: 'n', op: 'eq', value: -9223372036854775808 }]),
        flag('listed', [{ attribute: 'tags', op: 'eq', value: ['a', { b: [1, null] }] }]),
        flag('text', [{ attribute: 's', op: 'contains', value: 'é😀' }]),
        flag('truth', [{ attribute: 'b', op: 'eq', value: true }]),
        flag('falsity', [{ attribute: 'b', op: 'neq', value: true }]),
        flag('dated', [{ attribute: 'at', op: 'after', value: '2026-01-01T00:00:00Z' }]),
        flag('version', [{ attribute: 'v', op: 'semver_gte', value: '2.0.0-beta.2' }]),
        flag('sticky', [], { variant: 'on', rollout_percent: 50, stickiness: 'n' }),
        flag('sticky-text', [], { variant: 'on', rollout_percent: 50, stickiness: 's' }),
        flag('inherited', [{ attribute: 'toString', op: 'neq', value: 'x' }]),
    ];
    // The reference: the same flags published, and each context sent to the collector as
    // JSON (what `JSON.stringify` makes of it), decided there.
    const contextApp = await collector.newApp('contexts', [collector.url]);
    await collector.publishConfig(contextApp.id, flags.map((f) => ['flags', f.key, (({ key, ...rest }) => rest)(f)]), 'contexts');
    const ruleset = (await collector.request('GET', '/v1/flags/compiled', { headers: { Authorization: `Bearer ${contextApp.ingest_key}` } })).text;
    const page = await sdkPage();
    const result = await page.evaluate(async ({ ruleset, key }) => {
      const engine = await window.sdk.loadFlagEngine();
      const ours = new engine.FlagEngine(ruleset);
      const hidden = Object.defineProperty({ n: 0 }, 'b', { value: true, enumerable: false });
      const contexts = [
        { n: 0 }, { n: -0 }, { n: 2 ** 64 }, { n: 1e21 }, { n: 1e300 }, { n: 0.1 }, { n: 0.2 + 0.1 }, { n: -(2 ** 63) },
        { n: NaN }, { n: Infinity }, { n: -Infinity }, { n: 12345.678 }, { n: 7, s: 'é😀 and more' },
        { tags: ['a', { b: [1, null] }] }, { tags: ['a', { b: [1, undefined] }] }, { tags: { 0: 'a' } },
        { s: 'x'.repeat(5000) + 'é😀' }, { s: '\u0000"\\' }, { s: '\ud800' }, { s: '' }, { s: 42 },
        { b: true }, { b: false }, { b: null }, { b: 'true' }, { b: undefined }, { b: () => true }, { b: Symbol('b') },
        { at: new Date('2026-06-01T00:00:00Z') }, { at: '2025-06-01T00:00:00Z' }, { at: 1780000000000 }, { at: { toJSON: () => '2027-01-01T00:00:00Z' } },
        { v: '2.0.0' }, { v: '2.0.0-beta.10' }, { v: '2.0.0-alpha' }, { v: 'v3' }, { v: 3 },
        { toString: 'y' }, Object.create({ n: 0, b: true }), hidden,
        null, [], ['n'], 'n', 5, {},
      ];
      const tables = ours.tables();
      const fields = (d) => [d.value, d.variant, d.reason, d.rule, d.bucket].map((v) => JSON.stringify(v ?? null)).join(' ');
      const decodedAll = (packed) => tables.keys.map((k, i) => fields(engine.decodeDecision(tables, i, packed[i])));
      const packedAll = (setter) => contexts.map((ctx) => { setter(ctx); return Array.from(ours.decideAll(0)); });
      const encoded = packedAll((ctx) => ours.setContext(ctx, undefined)).map(decodedAll);
      const viaJson = [];
      // JSON text cannot hold a lone surrogate (the collector refuses the body): an
      // attribute holding one is absent, as the engine module treats it.
      const wellFormedDeep = (v) => (typeof v === 'string' ? v.isWellFormed()
        : v && typeof v === 'object' ? Object.entries(v).every(([k, x]) => k.isWellFormed() && wellFormedDeep(x)) : true);
      for (const ctx of contexts) {
        const plainObject = typeof ctx === 'object' && ctx !== null && !Array.isArray(ctx);
        const sent = plainObject ? JSON.parse(JSON.stringify(ctx)) : {};
        for (const [k, v] of Object.entries(sent)) if (!wellFormedDeep(v)) delete sent[k];
        const body = `{"now": 0, "context": ${JSON.stringify(sent)}}`;
        const res = await fetch('/v1/flags/evaluate', { method: 'POST', headers: { Authorization: `Bearer ${key}`, 'Content-Type': 'application/json' }, body });
        const answer = await res.json();
        viaJson.push(tables.keys.map((k) => fields(answer.flags[k])));
      }
      // Found in review: a surrogate pair split across two attributes, lone surrogates, a
      // context with its own toJSON, throwing getters and Proxies, and a getter that sets
      // another context on the same engine while this one is read.
      const odd = [
        [{ s: 'x\uD83D', n: 0 }, { n: 0 }],
        [{ s: '\uDE00', n: 0, b: true }, { n: 0, b: true }],
        [{ toJSON: () => ({ n: 0, b: true }) }, { n: 0, b: true }],
        [{ get n() { throw new Error('no'); }, b: true }, {}],
        [new Proxy({ n: 0 }, { getOwnPropertyDescriptor() { throw new Error('no'); } }), {}],
        [{ n: 0, get b() { ours.setContext({ n: 5, s: 'é😀 inner', tags: ['x'] }, undefined); return true; } }, { n: 0, b: true }],
      ];
      const oddResults = odd.map(([ctx, same]) => {
        let threw = false;
        try { ours.setContext(ctx, undefined); } catch { threw = true; }
        const got = Array.from(ours.decideAll(0));
        ours.setContext(same, undefined);
        return { threw, same: JSON.stringify(got) === JSON.stringify(Array.from(ours.decideAll(0))) };
      });
      // A BigInt: JSON cannot hold it, so it is absent (and nothing throws).
      ours.setContext({ n: 10n, b: true }, undefined);
      const bigint = Array.from(ours.decideAll(0));
      ours.setContext({ b: true }, undefined);
      const withoutBigint = Array.from(ours.decideAll(0));
      const onKeys = (decoded) => tables.keys.filter((key, i) => decoded[i].startsWith('true '));
      return { encoded, viaJson, bigint, withoutBigint, oddResults, onFor: encoded.map(onKeys), keys: tables.keys };
    }, { ruleset, key: contextApp.ingest_key });
    result.encoded.forEach((packed, i) => assert.deepEqual(packed, result.viaJson[i], `context #${i}`));
    assert.deepEqual(result.bigint, result.withoutBigint);
    result.oddResults.forEach((r, i) => assert.deepEqual(r, { threw: false, same: true }, `odd context #${i}`));
    // The vectors are not vacuous: each flag is on for some context and off for another.
    for (const key of result.keys.filter((k) => !k.startsWith('sticky'))) {
      assert.ok(result.onFor.some((keys) => keys.includes(key)), `${key} is on somewhere`);
      assert.ok(result.onFor.some((keys) => !keys.includes(key)), `${key} is off somewhere`);
    }
    await page.close();
  });
});

describe('flags client', () => {
  const options = () => ({ endpoint: collector.url, key: app.ingest_key, flushIntervalMs: 3_600_000 });

  test('remote mode: decisions, details, context changes and onChange', async () => {
    const page = await sdkPage();
    const result = await page.evaluate(async (opts) => {
      const tt = new window.sdk.Telltale({ ...opts, context: { role: 'teacher', user_id: 't1' } });
      const changes = [];
      tt.onChange((keys) => changes.push([...keys]));
      await tt.refreshFlags();
      const teacher = [tt.isEnabled('checkout', false), tt.details('checkout'), tt.value('limits', {}), tt.value('limits', 5), tt.variant('nope')];
      await tt.setContext({ role: 'student', user_id: 't1' });
      return { teacher, student: tt.isEnabled('checkout', true), changes };
    }, options());
    assert.equal(result.teacher[0], true);
    assert.deepEqual([result.teacher[1].reason, result.teacher[1].variant, result.teacher[1].key], ['TARGETING_MATCH', 'on', 'checkout']);
    assert.deepEqual(result.teacher[2], { max: 3 });
    assert.equal(result.teacher[3], 5, 'a default of another type wins (type mismatch)');
    assert.equal(result.teacher[4], undefined);
    assert.equal(result.student, false);
    assert.deepEqual(result.changes[0].sort(), ['checkout', 'layout', 'limits']);
    assert.deepEqual(result.changes.at(-1), ['checkout']);
    await page.close();
  });

  test('local mode decides like the collector for many contexts', async () => {
    const page = await sdkPage();
    const contexts = Array.from({ length: 40 }, (_, i) => ({ user_id: `u${i}`, role: i % 3 ? 'student' : 'teacher' }));
    const local = await page.evaluate(async ({ opts, contexts }) => {
      const tt = new window.sdk.Telltale({ ...opts, flagMode: 'local' });
      await tt.refreshFlags();
      const out = [];
      for (const ctx of contexts) {
        await tt.setContext(ctx);
        out.push([tt.details('checkout'), tt.details('layout')].map((d) => [d.value, d.variant, d.reason]));
      }
      return out;
    }, { opts: options(), contexts });
    for (const [i, ctx] of contexts.entries()) {
      const remote = await collector.request('POST', '/v1/flags/evaluate', { body: { context: ctx }, headers: { Authorization: `Bearer ${app.ingest_key}` } });
      const want = ['checkout', 'layout'].map((k) => [remote.json.flags[k].value, remote.json.flags[k].variant, remote.json.flags[k].reason]);
      assert.deepEqual(local[i], want, JSON.stringify(ctx));
    }
    assert.ok(local.some((l) => l[1][1] === 'grid') && local.some((l) => l[1][1] === 'list'));
    await page.close();
  });

  test('bootstrap values show before the first answer; the cache serves the next page load', async () => {
    const context = await browser.newContext();
    const page = await sdkPage(context);
    const first = await page.evaluate(async (opts) => {
      const tt = new window.sdk.Telltale({ ...opts, context: { role: 'teacher' }, bootstrap: { checkout: false, banner: 'hi' } });
      const before = [tt.isEnabled('checkout', true), tt.details('banner').reason];
      await tt.refreshFlags();
      return { before, after: tt.isEnabled('checkout', false) };
    }, options());
    assert.deepEqual(first, { before: [false, 'BOOTSTRAP'], after: true });
    await page.reload();
    await loadSdk(page);
    const cached = await page.evaluate((opts) => {
      // Synchronously after construction: no network answer yet, the cache decides.
      const tt = new window.sdk.Telltale({ ...opts, context: { role: 'teacher' } });
      return tt.details('checkout');
    }, options());
    assert.deepEqual([cached.value, cached.reason], [true, 'TARGETING_MATCH']);
    await context.close();
  });

  test('exposure events go out once per flag, variant and session', async () => {
    // An app of its own, so other tests' exposures do not count here.
    const expo = await collector.newApp('expo', [collector.url]);
    await collector.publishConfig(expo.id, FLAGS);
    const page = await sdkPage();
    await page.evaluate(async (opts) => {
      const tt = new window.sdk.Telltale({ ...opts, context: { role: 'teacher', user_id: 'expo' } });
      await tt.refreshFlags();
      for (let i = 0; i < 5; i++) tt.isEnabled('checkout', false);
      tt.variant('checkout');
      await tt.setContext({ role: 'student', user_id: 'expo' });
      tt.isEnabled('checkout', false); // another variant: one more exposure
      await tt.flush();
    }, { ...options(), key: expo.ingest_key });
    await collector.waitForCount(expo.id, '$exposure', 2);
    const top = await collector.stats({ app: expo.id, event: '$exposure', by: 'variant' });
    assert.deepEqual(top.json.top, [{ value: 'off', count: 1 }, { value: 'on', count: 1 }]);
    await page.close();
  });

  test('an unreachable collector backs off and reports, never throws', async () => {
    const page = await sdkPage();
    const result = await page.evaluate(async () => {
      const errors = [];
      const tt = new window.sdk.Telltale({ endpoint: 'http://127.0.0.1:9', key: 'k', onError: (e) => errors.push(e.message), flushIntervalMs: 3_600_000 });
      const ok = await tt.refreshFlags();
      return { ok, errors, value: tt.isEnabled('checkout', true) };
    });
    assert.equal(result.ok, false);
    assert.equal(result.value, true);
    assert.ok(result.errors.some((e) => /flag refresh failed/.test(e)), JSON.stringify(result.errors));
    await page.close();
  });
});
