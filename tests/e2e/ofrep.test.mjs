// OpenFeature's own web SDK with its OFREP provider, unchanged, against Telltale's OFREP
// endpoints; plus the protocol's error shapes checked directly.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { OpenFeature } from '@openfeature/web-sdk';
import { OFREPWebProvider } from '@openfeature/ofrep-web-provider';
import { Collector } from './harness.mjs';

let collector;
let key; // the ingest key of this suite's app: its config is read, never changed, by the tests
before(async () => {
  collector = await Collector.start();
  const app = await collector.newApp('ofrep');
  key = app.ingest_key;
  await collector.publishConfig(app.id, [
    ['flags', 'new-checkout', {
      variants: [{ key: 'on', value: true }, { key: 'off', value: false }], default_variant: 'off',
      rules: [{ id: 'teachers', conditions: [{ attribute: 'role', op: 'eq', value: 'teacher' }], serve: { variant: 'on' } },
        { id: 'canary', serve: { variant: 'on', rollout_percent: 50 } }],
    }],
    ['flags', 'banner-text', { variants: [{ key: 'a', value: 'Welcome!' }, { key: 'b', value: 'Hello!' }], default_variant: 'a' }],
    ['flags', 'page-size', { variants: [{ key: 'small', value: 10 }, { key: 'large', value: 50 }], default_variant: 'large' }],
    ['flags', 'theme', { variants: [{ key: 'x', value: { color: 'teal', dense: true } }], default_variant: 'x' }],
  ], 'ofrep flags');
});
after(async () => {
  await OpenFeature.close();
  await collector?.stop();
});

describe('OpenFeature web SDK + OFREP provider', () => {
  test('evaluates every type, with reasons and variants, and follows context changes', async () => {
    const provider = new OFREPWebProvider({
      baseUrl: collector.url,
      headers: [['Authorization', `Bearer ${key}`]],
      cacheMode: 'disabled',
      changeDetection: 'none',
    });
    await OpenFeature.setContext({ targetingKey: 'teacher-1', role: 'teacher' });
    await OpenFeature.setProviderAndWait(provider);
    const client = OpenFeature.getClient();
    const details = client.getBooleanDetails('new-checkout', false);
    assert.deepEqual([details.value, details.variant, details.reason], [true, 'on', 'TARGETING_MATCH']);
    assert.equal(details.flagMetadata.rule, 'teachers');
    assert.equal(client.getStringValue('banner-text', 'fallback'), 'Welcome!');
    assert.equal(client.getNumberValue('page-size', 0), 50);
    assert.deepEqual(client.getObjectValue('theme', {}), { color: 'teal', dense: true });
    const missing = client.getBooleanDetails('no-such-flag', false);
    assert.deepEqual([missing.value, missing.errorCode], [false, 'FLAG_NOT_FOUND']);
    const mismatch = client.getNumberDetails('banner-text', 7);
    assert.deepEqual([mismatch.value, mismatch.errorCode], [7, 'TYPE_MISMATCH']);

    // A student is not targeted: the 50% canary decides, by targetingKey (as user_id).
    const students = [];
    for (let i = 0; i < 12; i++) {
      await OpenFeature.setContext({ targetingKey: `student-${i}`, role: 'student' });
      const d = client.getBooleanDetails('new-checkout', false);
      students.push(d.reason === 'SPLIT' ? 'in' : d.reason);
      if (d.reason === 'SPLIT') assert.equal(d.value, true);
    }
    assert.ok(students.includes('in') && students.includes('DEFAULT'), JSON.stringify(students));
    // The same decisions as Telltale's own endpoint.
    const own = await collector.request('POST', '/v1/flags/evaluate',
      { body: { context: { user_id: 'student-0', role: 'student' } }, headers: { Authorization: `Bearer ${key}` } });
    assert.equal(own.json.flags['new-checkout'].reason === 'SPLIT' ? 'in' : 'DEFAULT', students[0]);
  });
});

describe('OFREP wire shapes', () => {
  const post = (path, body, headers = {}) => collector.request('POST', path, { body, headers: { Authorization: `Bearer ${key}`, ...headers } });

  test('single flag success, not found and bad context', async () => {
    const ok = await post('/ofrep/v1/evaluate/flags/page-size', { context: { targetingKey: 'u1' } });
    assert.equal(ok.status, 200);
    assert.deepEqual({ ...ok.json, metadata: undefined }, { key: 'page-size', value: 50, reason: 'STATIC', variant: 'large', metadata: undefined });
    const missing = await post('/ofrep/v1/evaluate/flags/nope', { context: {} });
    assert.deepEqual([missing.status, missing.json.key, missing.json.errorCode], [404, 'nope', 'FLAG_NOT_FOUND']);
    const bad = await post('/ofrep/v1/evaluate/flags/page-size', { context: 'teacher' });
    assert.deepEqual([bad.status, bad.json.errorCode], [400, 'INVALID_CONTEXT']);
    // A body of the wrong shape is a 400, never an evaluation with an empty context.
    for (const wrong of ['null', '42', '"x"', '[]']) {
      const res = await post('/ofrep/v1/evaluate/flags/page-size', wrong);
      assert.deepEqual([res.status, res.json.errorCode], [400, 'INVALID_CONTEXT'], wrong);
      const bulk = await post('/ofrep/v1/evaluate/flags', wrong);
      assert.equal(bulk.status, 400, wrong);
    }
    const unauth = await collector.request('POST', '/ofrep/v1/evaluate/flags/page-size', { body: {} });
    assert.equal(unauth.status, 401);
    const apiKey = await collector.request('POST', '/ofrep/v1/evaluate/flags/page-size', { body: {}, headers: { 'X-API-Key': key } });
    assert.equal(apiKey.status, 200);
  });

  test('bulk evaluation with ETag and 304', async () => {
    const first = await post('/ofrep/v1/evaluate/flags', { context: { targetingKey: 'u1' } });
    assert.equal(first.status, 200);
    assert.deepEqual(first.json.flags.map((f) => f.key), ['banner-text', 'new-checkout', 'page-size', 'theme']);
    const etag = first.headers.get('etag');
    const again = await post('/ofrep/v1/evaluate/flags', { context: { targetingKey: 'u1' } }, { 'If-None-Match': etag });
    assert.equal(again.status, 304);
    const config = await collector.request('GET', '/ofrep/v1/configuration', { headers: { Authorization: `Bearer ${key}` } });
    assert.equal(config.json.name, 'telltale');
  });
});
