// Feature flags end to end through `wrangler dev`: the versioned config of each app (stage,
// commit, publish, roll back, diff, log, audit, segments in use, export/import between
// apps with a three-way merge), serving (decisions, ETag/304 across schedule boundaries,
// the shared vectors over HTTP), and isolation between apps. Each test owns its app.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { Collector, waitFor } from './harness.mjs';

let collector;
before(async () => { collector = await Collector.start(); });
after(async () => { await collector?.stop(); });

const BOOL = [{ key: 'on', value: true }, { key: 'off', value: false }];

// Every test works in an app of its own: its config, history and decisions are its own,
// so no test depends on another or on their order.
async function freshApp(prefix = 'flags') {
  const app = await collector.newApp(prefix);
  const cfg = (method, path, body, actor) => collector.config(app.id, method, path, body, actor);
  const evaluate = (body, headers = {}) => collector.request('POST', '/v1/flags/evaluate', { body, headers: { Authorization: `Bearer ${app.ingest_key}`, ...headers } });
  return { app, cfg, evaluate };
}

const checkoutForTeachers = {
  description: 'new checkout', variants: BOOL, default_variant: 'off',
  rules: [{ id: 'teachers', segments: ['teachers'], serve: { variant: 'on' } }],
};
const teachers = { conditions: [{ attribute: 'role', op: 'eq', value: 'teacher' }] };

describe('versioned config', () => {
  test('staging validates and names the failing field', async () => {
    const { cfg } = await freshApp();
    const bad = await cfg('PUT', '/stage/flags/checkout', {
      variants: BOOL, default_variant: 'off', rules: [{ conditions: [{ attribute: 'age', op: 'gt', value: 'old' }], serve: { variant: 'on' } }],
    });
    assert.deepEqual([bad.status, bad.json.error.field], [422, 'rules[0].conditions[0].value']);
    const typo = await cfg('PUT', '/stage/flags/checkout', { variants: BOOL, default_variant: 'off', enabeld: true });
    assert.equal(typo.status, 422);
    assert.match(typo.json.error.message, /enabeld/);
    const ghost = await cfg('PUT', '/stage/flags/checkout', { variants: BOOL, default_variant: 'off', rules: [{ segments: ['ghosts'], serve: { variant: 'on' } }] });
    assert.deepEqual([ghost.status, ghost.json.error.code, ghost.json.error.field], [422, 'unknown_segment', 'rules[0].segments[0]']);
    const mismatch = await cfg('PUT', '/stage/flags/checkout', { key: 'other', variants: BOOL, default_variant: 'off' });
    assert.deepEqual([mismatch.status, mismatch.json.error.code], [422, 'key_mismatch']);
    const kind = await cfg('PUT', '/stage/widgets/x', {});
    assert.deepEqual([kind.status, kind.json.error.code], [404, 'unknown_kind']);
    const notObject = await cfg('PUT', '/stage/flags/checkout', [BOOL]);
    assert.deepEqual([notObject.status, notObject.json.error.code], [400, 'invalid_type']);
    assert.equal((await cfg('POST', '/commits', { message: 'empty' })).json.error.code, 'nothing_to_commit');
  });

  test('stage, commit, publish, evaluate', async () => {
    const { cfg, evaluate } = await freshApp();
    assert.equal((await cfg('PUT', '/stage/segments/teachers', teachers)).status, 200);
    const put = await cfg('PUT', '/stage/flags/checkout', checkoutForTeachers);
    assert.equal(put.status, 200, put.text);
    assert.match(put.json.revision, /^[0-9a-f]{64}$/);
    const stage = await cfg('GET', '/stage');
    assert.deepEqual(stage.json.changes.map((c) => [c.kind, c.key, c.change]), [['flags', 'checkout', 'added'], ['segments', 'teachers', 'added']]);
    const commit = await cfg('POST', '/commits', { message: 'checkout for teachers' });
    assert.equal(commit.status, 201, commit.text);
    const first = commit.json.id;
    assert.equal(commit.json.author, 'ada@example.com');
    assert.match(commit.json.created_at, /Z$/);
    // Not published yet: readers see nothing.
    assert.deepEqual((await evaluate({ context: { role: 'teacher' } })).json.flags, {});
    const pub = await cfg('POST', '/publish', {});
    assert.equal(pub.status, 200, pub.text);
    assert.equal(pub.json.revisions_written, 2);
    const teacher = await evaluate({ context: { role: 'teacher' } });
    assert.equal(teacher.status, 200, teacher.text);
    assert.equal(teacher.json.version, first);
    assert.deepEqual(teacher.json.flags.checkout, { key: 'checkout', value: true, variant: 'on', reason: 'TARGETING_MATCH', rule: 'teachers', version: first });
    const student = await evaluate({ context: { role: 'student' } });
    assert.equal(student.json.flags.checkout.reason, 'DEFAULT');
  });

  test('ETag and If-None-Match', async () => {
    const { app, cfg, evaluate } = await freshApp();
    await collector.publishConfig(app.id, [['segments', 'teachers', teachers], ['flags', 'checkout', checkoutForTeachers]]);
    const one = await evaluate({ context: { role: 'teacher' } });
    const etag = one.headers.get('etag');
    assert.ok(etag);
    const again = await evaluate({ context: { role: 'teacher' } }, { 'If-None-Match': etag });
    assert.equal(again.status, 304);
    const other = await evaluate({ context: { role: 'student' } }, { 'If-None-Match': etag });
    assert.equal(other.status, 200);
    const keyHeader = { Authorization: `Bearer ${app.ingest_key}` };
    const ruleset = await collector.request('GET', '/v1/flags/ruleset', { headers: keyHeader });
    assert.equal(ruleset.json.version, (await cfg('GET', '/commits/published')).json.id);
    assert.deepEqual(ruleset.json.flags.map((f) => f.key), ['checkout']);
    const cached = await collector.request('GET', '/v1/flags/ruleset', { headers: { ...keyHeader, 'If-None-Match': ruleset.headers.get('etag') } });
    assert.equal(cached.status, 304);
    const getForm = await collector.request('GET', '/v1/flags/evaluate?role=teacher', { headers: keyHeader });
    assert.equal(getForm.json.flags.checkout.value, true);
    // The compiled form has its own route and validator: SDKs from before it refuse unknown
    // fields, so the plain ruleset carries none, and a cached plain answer is never
    // revalidated as the compiled one.
    assert.equal(ruleset.json.compiled, undefined);
    const compiled = await collector.request('GET', '/v1/flags/compiled', { headers: keyHeader });
    assert.equal(compiled.status, 200);
    assert.match(compiled.json.compiled, /^[A-Za-z0-9+/]+=*$/);
    assert.deepEqual({ ...compiled.json, compiled: undefined }, { ...ruleset.json, compiled: undefined });
    assert.notEqual(compiled.headers.get('etag'), ruleset.headers.get('etag'));
    const crossed = await collector.request('GET', '/v1/flags/compiled', { headers: { ...keyHeader, 'If-None-Match': ruleset.headers.get('etag') } });
    assert.equal(crossed.status, 200);
  });

  test('compiling a ruleset of one\'s own: admin only, shape errors name the field, its own answer goes back in', async () => {
    const ruleset = { version: 'mine', flags: [{ key: 'f', variants: BOOL, default_variant: 'on' }], segments: [] };
    const { app } = await freshApp();
    assert.equal((await collector.request('POST', '/v1/flags/compile', { body: ruleset })).status, 401);
    assert.equal((await collector.request('POST', '/v1/flags/compile', { body: ruleset, headers: { Authorization: `Bearer ${app.ingest_key}` } })).status, 401);
    const ok = await collector.admin('POST', '/v1/flags/compile', ruleset);
    assert.equal(ok.status, 200, ok.text);
    assert.deepEqual(ok.json.warnings, []);
    const again = await collector.admin('POST', '/v1/flags/compile', ok.json);
    assert.equal(again.status, 200, again.text);
    assert.equal(again.json.compiled, ok.json.compiled, 'the same ruleset compiles to the same bytes');
    for (const [body, field] of [[{ ...ruleset, flagz: [] }, 'flagz'], [{ ...ruleset, flags: {} }, 'flags'], [[1], 'body']]) {
      const bad = await collector.admin('POST', '/v1/flags/compile', body);
      assert.ok(bad.status === 422 || bad.status === 400, `${JSON.stringify(body)}: ${bad.text}`);
      assert.equal(bad.json.error.field, field, bad.text);
    }
    const broken = await collector.admin('POST', '/v1/flags/compile', { ...ruleset, flags: [{ key: 'g', variants: BOOL, default_variant: 'nope' }] });
    assert.equal(broken.status, 200, 'a broken flag compiles to one that serves an error, with a warning');
    assert.equal(broken.json.warnings.length, 1);
    const many = { ...ruleset, flags: Array.from({ length: 2_001 }, (_, i) => ({ key: `f${i}`, variants: BOOL, default_variant: 'on' })) };
    const tooMany = await collector.admin('POST', '/v1/flags/compile', many);
    assert.equal(tooMany.status, 413, tooMany.text);
    assert.equal(tooMany.json.error.field, 'flags');
  });

  test('a validator changes when a schedule starts, so a cached decision is never served stale', async () => {
    const { app, evaluate } = await freshApp();
    const startsAt = Date.now() + 4000;
    await collector.publishConfig(app.id, [['flags', 'launch', {
      variants: BOOL, default_variant: 'on', off_variant: 'off', schedule: { from: new Date(startsAt).toISOString() },
    }]]);
    const before = await evaluate({ context: {} });
    assert.equal(before.json.flags.launch.value, false);
    const etag = before.headers.get('etag');
    assert.equal((await evaluate({ context: {} }, { 'If-None-Match': etag })).status, 304);
    await waitFor(() => Date.now() > startsAt + 50, { what: 'the schedule to start', intervalMs: 100 });
    const after = await evaluate({ context: {} }, { 'If-None-Match': etag });
    assert.equal(after.status, 200, 'the old validator no longer matches once the schedule started');
    assert.equal(after.json.flags.launch.value, true);
  });

  test('an ingest key in the query is a credential, not an attribute of the context', async () => {
    const { app } = await freshApp();
    // A rule on an attribute named `key`: only a context that really carries it matches.
    await collector.publishConfig(app.id, [['flags', 'keyed', {
      variants: BOOL, default_variant: 'off', rules: [{ conditions: [{ attribute: 'key', op: 'eq', value: app.ingest_key }], serve: { variant: 'on' } }],
    }]]);
    const viaQuery = await collector.request('GET', `/v1/flags/evaluate?key=${app.ingest_key}&role=teacher`);
    assert.equal(viaQuery.status, 200, viaQuery.text);
    assert.equal(viaQuery.json.flags.keyed.value, false, 'the key did not become the attribute `key`');
  });

  test('change, publish, roll back, and the history', async () => {
    const { app, cfg, evaluate } = await freshApp();
    const first = await collector.publishConfig(app.id, [['segments', 'teachers', teachers], ['flags', 'checkout', checkoutForTeachers]]);
    await cfg('PUT', '/stage/flags/checkout', { ...checkoutForTeachers, enabled: false }, 'grace@example.com');
    const second = (await cfg('POST', '/commits', { message: 'kill checkout' }, 'grace@example.com')).json.id;
    await cfg('POST', '/publish', { commit: second });
    assert.equal((await evaluate({ context: { role: 'teacher' } })).json.flags.checkout.reason, 'DISABLED');
    const back = await cfg('POST', '/rollback', { commit: first.slice(0, 10) });
    // Only what differs from the current publication is rewritten in KV.
    assert.deepEqual([back.status, back.json.published, back.json.action, back.json.changed], [200, first, 'rollback', ['flags/checkout']]);
    assert.equal((await evaluate({ context: { role: 'teacher' } })).json.flags.checkout.value, true);
    const log = await cfg('GET', '/commits');
    assert.deepEqual(log.json.commits.map((c) => [c.id, c.parent, c.published]), [[second, first, false], [first, null, true]]);
    const diff = await cfg('GET', `/diff?from=${first}&to=${second}`);
    assert.deepEqual(diff.json.changes, [{ kind: 'flags', key: 'checkout', change: 'modified', fields: [{ path: '/enabled', before: null, after: false }] }]);
    const audit = await cfg('GET', '/audit');
    const actions = audit.json.entries.map((e) => `${e.action} ${e.target} ${e.actor}`);
    assert.deepEqual(actions.slice(0, 4), [
      'rollback refs/published ada@example.com',
      'publish refs/published ada@example.com',
      `commit commits/${second} grace@example.com`,
      'stage.put flags/checkout grace@example.com',
    ]);
    const stagePut = audit.json.entries[3];
    assert.equal(stagePut.before.enabled, undefined);
    assert.equal(stagePut.after.enabled, false);
    assert.match(stagePut.at, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{3})?Z$/);
    assert.deepEqual([audit.json.entries[0].before, audit.json.entries[0].after], [second, first]);
    // The audit log filters by actor, action and target, and refuses what it does not know.
    const grace = await cfg('GET', '/audit?actor=grace@example.com');
    assert.deepEqual(grace.json.entries.map((e) => e.action), ['commit', 'stage.put']);
    const flagsOnly = await cfg('GET', '/audit?target=flags/');
    assert.ok(flagsOnly.json.entries.length >= 2 && flagsOnly.json.entries.every((e) => e.target.startsWith('flags/')));
    assert.deepEqual([(await cfg('GET', '/audit?actr=x')).status, (await cfg('GET', '/audit?limit=1&limit=2')).json.error.code], [400, 'repeated_parameter']);
  });

  test('a publish that only removes entries says so', async () => {
    const { app, cfg } = await freshApp();
    await collector.publishConfig(app.id, [['flags', 'old', { variants: BOOL, default_variant: 'on' }], ['flags', 'kept', { variants: BOOL, default_variant: 'on' }]]);
    assert.equal((await cfg('DELETE', '/stage/flags/old')).status, 200);
    await cfg('POST', '/commits', { message: 'remove old' });
    const pub = await cfg('POST', '/publish', {});
    assert.deepEqual([pub.json.changed, pub.json.removed], [['flags/old'], ['flags/old']]);
  });

  test('a prerequisite cycle is refused at staging', async () => {
    const { cfg } = await freshApp();
    await cfg('PUT', '/stage/flags/parent', { variants: BOOL, default_variant: 'on' });
    assert.equal((await cfg('PUT', '/stage/flags/child', { variants: BOOL, default_variant: 'on', prerequisites: [{ flag: 'parent', variants: ['on'] }] })).status, 200);
    const cycle = await cfg('PUT', '/stage/flags/parent', { variants: BOOL, default_variant: 'on', prerequisites: [{ flag: 'child', variants: ['on'] }] });
    assert.deepEqual([cycle.status, cycle.json.error.code], [422, 'prerequisite_cycle']);
    const inUse = await cfg('DELETE', '/stage/flags/parent');
    assert.deepEqual([inUse.status, inUse.json.error.code, inUse.json.error.details.flags], [409, 'flag_in_use', ['child']]);
    assert.equal((await cfg('DELETE', '/stage/flags/child')).status, 200);
    assert.equal((await cfg('DELETE', '/stage/flags/parent')).status, 200);
    assert.deepEqual((await cfg('GET', '/stage')).json.changes, [], 'staged adds that are deleted leave nothing');
  });

  test('unknown names are 404s that name them', async () => {
    const { app, cfg, evaluate } = await freshApp();
    await collector.publishConfig(app.id, [['flags', 'checkout', { variants: BOOL, default_variant: 'off' }]]);
    const commit = await cfg('GET', '/commits/deadbeefdeadbeef');
    assert.deepEqual([commit.status, commit.json.error.code], [404, 'unknown_commit']);
    const longPrefix = await cfg('GET', `/commits/${'a'.repeat(60)}`);
    assert.deepEqual([longPrefix.status, longPrefix.json.error.code], [404, 'unknown_commit'], 'a long prefix is a 404, not a storage error');
    const pub = await cfg('POST', '/publish', { commit: 'feedface00' });
    assert.deepEqual([pub.status, pub.json.error.field], [404, 'commit']);
    const del = await cfg('DELETE', '/stage/segments/nobody');
    assert.deepEqual([del.status, del.json.error.code], [404, 'unknown_segment']);
    const flag = await evaluate({ context: {}, flags: ['checkout', 'chekout'] });
    assert.deepEqual([flag.status, flag.json.error.code], [404, 'unknown_flag']);
    assert.match(flag.json.error.message, /chekout/);
    const param = await cfg('GET', '/diff?form=head');
    assert.deepEqual([param.status, param.json.error.code], [400, 'unknown_parameter']);
    const noApp = await collector.config('no-such-app', 'GET', '/stage');
    assert.deepEqual([noApp.status, noApp.json.error.code, noApp.json.error.field], [404, 'unknown_app', 'app']);
    const oldPath = await collector.admin('GET', '/v1/config/stage');
    assert.equal(oldPath.status, 404);
    assert.match(oldPath.json.error.message, /\/v1\/apps\/\{app\}\/config/);
  });

  test('one rule for wrong methods: 405 with the allowed ones', async () => {
    const { app } = await freshApp();
    const res = await collector.admin('DELETE', `/v1/apps/${app.id}/config/commits`);
    assert.deepEqual([res.status, res.json.error.code, res.headers.get('allow')], [405, 'method_not_allowed', 'GET, POST']);
    const events = await collector.request('GET', '/v1/events');
    assert.deepEqual([events.status, events.headers.get('allow')], [405, 'POST, OPTIONS']);
  });

  test('a referenced segment cannot be deleted; removing the reference keeps the segment', async () => {
    const { app, cfg } = await freshApp();
    await collector.publishConfig(app.id, [['segments', 'teachers', teachers], ['flags', 'checkout', checkoutForTeachers]]);
    const refused = await cfg('DELETE', '/stage/segments/teachers');
    assert.deepEqual([refused.status, refused.json.error.code], [409, 'segment_in_use']);
    assert.match(refused.json.error.message, /checkout/);
    await cfg('PUT', '/stage/flags/checkout', { variants: BOOL, default_variant: 'off' });
    await cfg('POST', '/commits', { message: 'checkout for all' });
    const head = await cfg('GET', '/commits/head');
    assert.ok(head.json.snapshot.segments.teachers, 'the segment is still there');
    assert.equal((await cfg('DELETE', '/stage/segments/teachers')).status, 200);
  });

  test('expected_head: a commit reviewed against an old head is refused, and nothing changes', async () => {
    const { app, cfg } = await freshApp();
    await collector.publishConfig(app.id, [['flags', 'base', { variants: BOOL, default_variant: 'on' }]]);
    const head = (await cfg('GET', '/commits/head')).json.id;
    await cfg('PUT', '/stage/flags/concurrency', { variants: BOOL, default_variant: 'on' });
    // Grace reviewed the stage; Ada commits first.
    const ada = await cfg('POST', '/commits', { message: 'ada first', expected_head: head });
    assert.equal(ada.status, 201, JSON.stringify(ada.json));
    assert.deepEqual((await cfg('GET', '/stage')).json.changes, [], 'the committed rows left the stage');
    await cfg('PUT', '/stage/flags/concurrency', { variants: BOOL, default_variant: 'off' });
    const stageBefore = (await cfg('GET', '/stage')).json;
    const grace = await cfg('POST', '/commits', { message: 'grace, stale', expected_head: head }, 'grace@example.com');
    assert.deepEqual([grace.status, grace.json.error.code, grace.json.error.field], [409, 'head_moved', 'expected_head']);
    assert.deepEqual(grace.json.error.details, { expected_head: head, head: ada.json.id });
    const none = await cfg('POST', '/commits', { message: 'as if empty', expected_head: null });
    assert.deepEqual([none.status, none.json.error.code], [409, 'head_moved']);
    assert.equal((await cfg('GET', '/commits/head')).json.id, ada.json.id, 'head did not move');
    assert.deepEqual((await cfg('GET', '/stage')).json, stageBefore, 'the stage is as it was');
    const audit = (await cfg('GET', '/audit')).json;
    assert.ok(!JSON.stringify(audit).includes('grace, stale'), 'a refused commit leaves no audit line');
    const retry = await cfg('POST', '/commits', { message: 'grace, reviewed again', expected_head: ada.json.id });
    assert.equal(retry.status, 201);
  });
});

describe('apps are isolated', () => {
  test('a key reaches only its own app\'s decisions, ruleset, probes and OFREP answers', async () => {
    const a = await freshApp('iso-a');
    const b = await freshApp('iso-b');
    await collector.publishConfig(a.app.id, [
      ['probes', 'a-partner', { url: 'http://127.0.0.1:9/health' }],
      ['segments', 'vips', { conditions: [{ attribute: 'user_id', op: 'in', values: ['ceo@a.example'] }] }],
      ['flags', 'a-only', { variants: BOOL, default_variant: 'on', requires_probe: 'a-partner', rules: [{ segments: ['vips'], serve: { variant: 'off' } }] }],
    ]);
    await collector.publishConfig(b.app.id, [['flags', 'b-only', { variants: BOOL, default_variant: 'on' }]]);
    const keyB = { Authorization: `Bearer ${b.app.ingest_key}` };
    const decisions = await b.evaluate({ context: {} });
    assert.deepEqual(Object.keys(decisions.json.flags), ['b-only']);
    assert.deepEqual(decisions.json.probes, {});
    const ruleset = await collector.request('GET', '/v1/flags/ruleset', { headers: keyB });
    assert.deepEqual([ruleset.json.flags.map((f) => f.key), ruleset.json.segments, ruleset.json.probes], [['b-only'], [], {}]);
    assert.ok(!ruleset.text.includes('ceo@a.example'), 'another app\'s segment never reaches this key');
    const ofrep = await collector.request('POST', '/ofrep/v1/evaluate/flags/a-only', { body: { context: {} }, headers: keyB });
    assert.deepEqual([ofrep.status, ofrep.json.errorCode], [404, 'FLAG_NOT_FOUND']);
    const aRuleset = await collector.request('GET', '/v1/flags/ruleset', { headers: { Authorization: `Bearer ${a.app.ingest_key}` } });
    assert.deepEqual([aRuleset.json.flags.map((f) => f.key), aRuleset.json.probes], [['a-only'], { 'a-partner': 'unknown' }]);
    // The same commit id is unknown in the other app.
    const aHead = (await a.cfg('GET', '/commits/head')).json.id;
    assert.equal((await b.cfg('GET', `/commits/${aHead}`)).status, 404);
    assert.equal((await b.cfg('POST', '/publish', { commit: aHead })).status, 404);
  });

  test('a removed probe leaves the served probe states', async () => {
    const { app, cfg } = await freshApp();
    await collector.publishConfig(app.id, [['probes', 'gone', { url: 'http://127.0.0.1:9/health' }], ['flags', 'f', { variants: BOOL, default_variant: 'on' }]]);
    const keyHeader = { Authorization: `Bearer ${app.ingest_key}` };
    assert.deepEqual((await collector.request('GET', '/v1/flags/ruleset', { headers: keyHeader })).json.probes, { gone: 'unknown' });
    await cfg('DELETE', '/stage/probes/gone');
    await cfg('POST', '/commits', { message: 'drop the probe' });
    await cfg('POST', '/publish', {});
    assert.deepEqual((await collector.request('GET', '/v1/flags/ruleset', { headers: keyHeader })).json.probes, {});
  });
});

describe('export and import between apps (environments)', () => {
  test('import copies history, merges three ways, and reports conflicts', async () => {
    const prod = await freshApp('shop');
    const staging = await freshApp('shop-staging');
    await collector.publishConfig(prod.app.id, [['segments', 'teachers', teachers], ['flags', 'checkout', checkoutForTeachers]]);
    const exported = await prod.cfg('GET', '/export');
    assert.equal(exported.status, 200);
    const first = await staging.cfg('POST', '/import', exported.json);
    assert.equal(first.status, 201, first.text);
    const stagingHead = (await staging.cfg('GET', '/commits/head')).json;
    const prodHead = (await prod.cfg('GET', '/commits/head')).json;
    assert.deepEqual(stagingHead.snapshot, prodHead.snapshot);

    // Both sides change the same field differently, and different fields too.
    await prod.cfg('PUT', '/stage/flags/checkout', { description: 'prod says', variants: BOOL, default_variant: 'off' });
    await prod.cfg('PUT', '/stage/flags/banner', { variants: [{ key: 'a', value: 'hello' }], default_variant: 'a' });
    await prod.cfg('POST', '/commits', { message: 'prod edits' });
    await staging.cfg('PUT', '/stage/flags/checkout', { description: 'staging says', variants: BOOL, default_variant: 'off' });
    await staging.cfg('POST', '/commits', { message: 'staging edits' });
    const before = (await staging.cfg('GET', '/commits/head')).json.id;
    const conflict = await staging.cfg('POST', '/import', (await prod.cfg('GET', '/export')).json);
    assert.equal(conflict.status, 409, conflict.text);
    assert.equal(conflict.json.error.code, 'merge_conflict');
    assert.deepEqual(conflict.json.error.details.conflicts.map((c) => [c.key, c.path, c.ours, c.theirs]), [['checkout', '/description', 'staging says', 'prod says']]);
    assert.equal((await staging.cfg('GET', '/commits/head')).json.id, before, 'nothing written on conflict');

    // Resolve on staging by taking prod's description, then the import merges cleanly.
    await staging.cfg('PUT', '/stage/flags/checkout', { description: 'prod says', variants: BOOL, default_variant: 'off' });
    await staging.cfg('POST', '/commits', { message: 'resolve' });
    const merged = await staging.cfg('POST', '/import', (await prod.cfg('GET', '/export')).json);
    assert.equal(merged.status, 201, merged.text);
    assert.ok(merged.json.commit.snapshot.flags.banner, 'their new flag arrived');

    const tampered = (await prod.cfg('GET', '/export')).json;
    const someRev = Object.keys(tampered.revisions)[0];
    tampered.revisions[someRev].body.description = 'tampered';
    const refused = await staging.cfg('POST', '/import', tampered);
    assert.deepEqual([refused.status, refused.json.error.code], [422, 'revision_mismatch']);
  });
});

describe('shared flag vectors over HTTP', () => {
  test('the Worker decides every publishable case exactly as core does', async () => {
    const { app, cfg, evaluate } = await freshApp('vectors');
    const doc = JSON.parse(readFileSync(new URL('../spec/flags/cases.json', import.meta.url), 'utf8'));
    // The vectors' `partner-widget` requires a probe; it must exist to be staged. Its
    // state comes from each case's `probes` (a development override), not from runs.
    const probe = await cfg('PUT', '/stage/probes/partner-api', { url: 'http://127.0.0.1:9/never-called' });
    assert.equal(probe.status, 200, probe.text);
    for (const segment of doc.ruleset.segments) {
      const res = await cfg('PUT', `/stage/segments/${segment.key}`, segment);
      assert.equal(res.status, 200, res.text);
    }
    // Flags in dependency order; the deliberately broken ones must be refused at staging.
    const refused = [];
    const pending = [...doc.ruleset.flags];
    for (let round = 0; round < 5 && pending.length; round++) {
      for (const flag of [...pending]) {
        const res = await cfg('PUT', `/stage/flags/${flag.key}`, flag);
        if (res.status === 200) pending.splice(pending.indexOf(flag), 1);
        else if (round === 4 || res.json.error.code !== 'unknown_flag') {
          refused.push(flag.key);
          pending.splice(pending.indexOf(flag), 1);
        }
      }
    }
    // cycle-a and cycle-b each need the other to exist first, so neither can be staged.
    assert.deepEqual(refused.sort(), ['broken-op', 'broken-split', 'cycle-a', 'cycle-b']);
    await cfg('POST', '/commits', { message: 'vectors' });
    await cfg('POST', '/publish', {});
    let checked = 0;
    for (const c of doc.cases) {
      const expectsParseError = c.expect.error_code === 'PARSE_ERROR';
      if (expectsParseError) continue; // refused at staging instead
      const res = await evaluate({ context: c.context, now: c.now || doc.now, probes: c.probes || {} });
      assert.equal(res.status, 200, res.text);
      const got = res.json.flags[c.flag] || { value: null, reason: 'ERROR', error_code: 'FLAG_NOT_FOUND' };
      for (const key of ['value', 'variant', 'reason', 'rule', 'bucket', 'error_code', 'probe']) {
        assert.deepEqual(got[key] ?? null, c.expect[key] ?? null, `${c.name}: ${key}`);
      }
      checked++;
    }
    assert.ok(checked >= 120, `checked ${checked}`);
  });
});
