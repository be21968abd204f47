// Feature flags end to end through `wrangler dev`: the versioned config (stage, commit,
// publish, roll back, diff, log, audit, segments in use, export/import with a three-way
// merge) and serving (decisions, ETag/304, the shared vectors over HTTP).
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { Collector } from './harness.mjs';

let collector;
before(async () => { collector = await Collector.start(); });
after(async () => { await collector?.stop(); });

const BOOL = [{ key: 'on', value: true }, { key: 'off', value: false }];

function cfg(c, method, path, body, actor = 'ada@example.com') {
  return c.request(method, `/v1/config${path}`, { body, headers: { Authorization: `Bearer ${c.adminKey}`, 'X-Telltale-Actor': actor } });
}

function evaluate(c, body, headers = {}) {
  return c.request('POST', '/v1/flags/evaluate', { body, headers: { Authorization: `Bearer ${c.ingestKey}`, ...headers } });
}

describe('versioned config', () => {
  let first;
  let second;

  test('staging validates and names the failing field', async () => {
    const bad = await cfg(collector, 'PUT', '/stage/flags/checkout', {
      variants: BOOL, default_variant: 'off', rules: [{ conditions: [{ attribute: 'age', op: 'gt', value: 'old' }], serve: { variant: 'on' } }],
    });
    assert.deepEqual([bad.status, bad.json.error.field], [422, 'rules[0].conditions[0].value']);
    const typo = await cfg(collector, 'PUT', '/stage/flags/checkout', { variants: BOOL, default_variant: 'off', enabeld: true });
    assert.equal(typo.status, 422);
    assert.match(typo.json.error.message, /enabeld/);
    const ghost = await cfg(collector, 'PUT', '/stage/flags/checkout', { variants: BOOL, default_variant: 'off', rules: [{ segments: ['ghosts'], serve: { variant: 'on' } }] });
    assert.deepEqual([ghost.status, ghost.json.error.code, ghost.json.error.field], [422, 'unknown_segment', 'rules[0].segments[0]']);
    const mismatch = await cfg(collector, 'PUT', '/stage/flags/checkout', { key: 'other', variants: BOOL, default_variant: 'off' });
    assert.deepEqual([mismatch.status, mismatch.json.error.code], [422, 'key_mismatch']);
    const kind = await cfg(collector, 'PUT', '/stage/widgets/x', {});
    assert.deepEqual([kind.status, kind.json.error.code], [404, 'unknown_kind']);
    assert.equal((await cfg(collector, 'POST', '/commits', { message: 'empty' })).json.error.code, 'nothing_to_commit');
  });

  test('stage, commit, publish, evaluate', async () => {
    assert.equal((await cfg(collector, 'PUT', '/stage/segments/teachers', { conditions: [{ attribute: 'role', op: 'eq', value: 'teacher' }] })).status, 200);
    const put = await cfg(collector, 'PUT', '/stage/flags/checkout', {
      description: 'new checkout', variants: BOOL, default_variant: 'off',
      rules: [{ id: 'teachers', segments: ['teachers'], serve: { variant: 'on' } }],
    });
    assert.equal(put.status, 200, put.text);
    assert.match(put.json.revision, /^[0-9a-f]{64}$/);
    const stage = await cfg(collector, 'GET', '/stage');
    assert.deepEqual(stage.json.changes.map((c) => [c.kind, c.key, c.change]), [['flags', 'checkout', 'added'], ['segments', 'teachers', 'added']]);
    const commit = await cfg(collector, 'POST', '/commits', { message: 'checkout for teachers' });
    assert.equal(commit.status, 201, commit.text);
    first = commit.json.id;
    assert.equal(commit.json.author, 'ada@example.com');
    assert.match(commit.json.created_at, /Z$/);
    // Not published yet: readers see nothing.
    assert.deepEqual((await evaluate(collector, { context: { role: 'teacher' } })).json.flags, {});
    const pub = await cfg(collector, 'POST', '/publish', {});
    assert.equal(pub.status, 200, pub.text);
    assert.equal(pub.json.revisions_written, 2);
    const teacher = await evaluate(collector, { context: { role: 'teacher' } });
    assert.equal(teacher.status, 200, teacher.text);
    assert.equal(teacher.json.version, first);
    assert.deepEqual(teacher.json.flags.checkout, { key: 'checkout', value: true, variant: 'on', reason: 'TARGETING_MATCH', rule: 'teachers', version: first });
    const student = await evaluate(collector, { context: { role: 'student' } });
    assert.equal(student.json.flags.checkout.reason, 'DEFAULT');
  });

  test('ETag and If-None-Match', async () => {
    const one = await evaluate(collector, { context: { role: 'teacher' } });
    const etag = one.headers.get('etag');
    assert.ok(etag);
    const again = await evaluate(collector, { context: { role: 'teacher' } }, { 'If-None-Match': etag });
    assert.equal(again.status, 304);
    const other = await evaluate(collector, { context: { role: 'student' } }, { 'If-None-Match': etag });
    assert.equal(other.status, 200);
    const ruleset = await collector.request('GET', '/v1/flags/ruleset', { headers: { Authorization: `Bearer ${collector.ingestKey}` } });
    assert.equal(ruleset.json.version, first);
    assert.deepEqual(ruleset.json.flags.map((f) => f.key), ['checkout']);
    const cached = await collector.request('GET', '/v1/flags/ruleset', { headers: { Authorization: `Bearer ${collector.ingestKey}`, 'If-None-Match': ruleset.headers.get('etag') } });
    assert.equal(cached.status, 304);
    const getForm = await collector.request('GET', '/v1/flags/evaluate?role=teacher', { headers: { Authorization: `Bearer ${collector.ingestKey}` } });
    assert.equal(getForm.json.flags.checkout.value, true);
  });

  test('change, publish, roll back, and the history', async () => {
    await cfg(collector, 'PUT', '/stage/flags/checkout', { description: 'new checkout', enabled: false, variants: BOOL, default_variant: 'off', rules: [{ id: 'teachers', segments: ['teachers'], serve: { variant: 'on' } }] }, 'grace@example.com');
    second = (await cfg(collector, 'POST', '/commits', { message: 'kill checkout' }, 'grace@example.com')).json.id;
    await cfg(collector, 'POST', '/publish', { commit: second });
    assert.equal((await evaluate(collector, { context: { role: 'teacher' } })).json.flags.checkout.reason, 'DISABLED');
    const back = await cfg(collector, 'POST', '/rollback', { commit: first.slice(0, 10) });
    // Only what differs from the current publication is rewritten in KV.
    assert.deepEqual([back.status, back.json.published, back.json.action, back.json.changed], [200, first, 'rollback', ['flags/checkout']]);
    assert.equal((await evaluate(collector, { context: { role: 'teacher' } })).json.flags.checkout.value, true);
    const log = await cfg(collector, 'GET', '/commits');
    assert.deepEqual(log.json.commits.map((c) => [c.id, c.parent, c.published]), [[second, first, false], [first, null, true]]);
    const diff = await cfg(collector, 'GET', `/diff?from=${first}&to=${second}`);
    assert.deepEqual(diff.json.changes, [{ kind: 'flags', key: 'checkout', change: 'modified', fields: [{ path: '/enabled', before: null, after: false }] }]);
    const audit = await cfg(collector, 'GET', '/audit');
    const actions = audit.json.entries.map((e) => `${e.action} ${e.target} ${e.actor}`);
    assert.deepEqual(actions.slice(0, 4), [
      `rollback refs/published ada@example.com`,
      `publish refs/published ada@example.com`,
      `commit commits/${second} grace@example.com`,
      'stage.put flags/checkout grace@example.com',
    ]);
    const stagePut = audit.json.entries[3];
    assert.equal(stagePut.before.enabled, undefined);
    assert.equal(stagePut.after.enabled, false);
    assert.match(stagePut.at, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{3})?Z$/);
    assert.deepEqual([audit.json.entries[0].before, audit.json.entries[0].after], [second, first]);
  });

  test('a prerequisite cycle is refused at staging', async () => {
    await cfg(collector, 'PUT', '/stage/flags/parent', { variants: BOOL, default_variant: 'on' });
    assert.equal((await cfg(collector, 'PUT', '/stage/flags/child', { variants: BOOL, default_variant: 'on', prerequisites: [{ flag: 'parent', variants: ['on'] }] })).status, 200);
    const cycle = await cfg(collector, 'PUT', '/stage/flags/parent', { variants: BOOL, default_variant: 'on', prerequisites: [{ flag: 'child', variants: ['on'] }] });
    assert.deepEqual([cycle.status, cycle.json.error.code], [422, 'prerequisite_cycle']);
    const inUse = await cfg(collector, 'DELETE', '/stage/flags/parent');
    assert.deepEqual([inUse.status, inUse.json.error.code], [409, 'flag_in_use']);
    assert.equal((await cfg(collector, 'DELETE', '/stage/flags/child')).status, 200);
    assert.equal((await cfg(collector, 'DELETE', '/stage/flags/parent')).status, 200);
    assert.deepEqual((await cfg(collector, 'GET', '/stage')).json.changes, [], 'staged adds that are deleted leave nothing');
  });

  test('unknown names are 404s that name them', async () => {
    const commit = await cfg(collector, 'GET', '/commits/deadbeefdeadbeef');
    assert.deepEqual([commit.status, commit.json.error.code], [404, 'unknown_commit']);
    const pub = await cfg(collector, 'POST', '/publish', { commit: 'feedface00' });
    assert.deepEqual([pub.status, pub.json.error.field], [404, 'commit']);
    const del = await cfg(collector, 'DELETE', '/stage/segments/nobody');
    assert.deepEqual([del.status, del.json.error.code], [404, 'unknown_segment']);
    const flag = await evaluate(collector, { context: {}, flags: ['checkout', 'chekout'] });
    assert.deepEqual([flag.status, flag.json.error.code], [404, 'unknown_flag']);
    assert.match(flag.json.error.message, /chekout/);
    const overrides = await cfg(collector, 'GET', '/diff?form=head');
    assert.deepEqual([overrides.status, overrides.json.error.code], [400, 'unknown_parameter']);
  });

  test('a referenced segment cannot be deleted; removing the reference keeps the segment', async () => {
    const refused = await cfg(collector, 'DELETE', '/stage/segments/teachers');
    assert.deepEqual([refused.status, refused.json.error.code], [409, 'segment_in_use']);
    assert.match(refused.json.error.message, /checkout/);
    await cfg(collector, 'PUT', '/stage/flags/checkout', { variants: BOOL, default_variant: 'off' });
    await cfg(collector, 'POST', '/commits', { message: 'checkout for all' });
    const head = await cfg(collector, 'GET', '/commits/head');
    assert.ok(head.json.snapshot.segments.teachers, 'the segment is still there');
    assert.equal((await cfg(collector, 'DELETE', '/stage/segments/teachers')).status, 200);
  });

  test('expected_head: a commit reviewed against an old head is refused, and nothing changes', async () => {
    const head = (await cfg(collector, 'GET', '/commits/head')).json.id;
    await cfg(collector, 'PUT', '/stage/flags/concurrency', { variants: BOOL, default_variant: 'on' });
    // Grace reviewed the stage; Ada commits first.
    const ada = await cfg(collector, 'POST', '/commits', { message: 'ada first', expected_head: head });
    assert.equal(ada.status, 201, JSON.stringify(ada.json));
    assert.deepEqual((await cfg(collector, 'GET', '/stage')).json.changes, [], 'the committed rows left the stage');
    await cfg(collector, 'PUT', '/stage/flags/concurrency', { variants: BOOL, default_variant: 'off' });
    const stageBefore = (await cfg(collector, 'GET', '/stage')).json;
    const grace = await cfg(collector, 'POST', '/commits', { message: 'grace, stale', expected_head: head }, 'grace@example.com');
    assert.deepEqual([grace.status, grace.json.error.code, grace.json.error.field], [409, 'head_moved', 'expected_head']);
    assert.deepEqual(grace.json.error.details, { expected_head: head, head: ada.json.id });
    const none = await cfg(collector, 'POST', '/commits', { message: 'as if empty', expected_head: null });
    assert.deepEqual([none.status, none.json.error.code], [409, 'head_moved']);
    assert.equal((await cfg(collector, 'GET', '/commits/head')).json.id, ada.json.id, 'head did not move');
    assert.deepEqual((await cfg(collector, 'GET', '/stage')).json, stageBefore, 'the stage is as it was');
    const audit = (await cfg(collector, 'GET', '/audit')).json;
    assert.ok(!JSON.stringify(audit).includes('grace, stale'), 'a refused commit leaves no audit line');
    const retry = await cfg(collector, 'POST', '/commits', { message: 'grace, reviewed again', expected_head: ada.json.id });
    assert.equal(retry.status, 201);
  });
});

describe('export and import between environments', () => {
  let staging;
  before(async () => { staging = await Collector.start(); });
  after(async () => { await staging?.stop(); });

  test('import copies history, merges three ways, and reports conflicts', async () => {
    await cfg(collector, 'POST', '/commits', { message: 'drop teachers segment' });
    const exported = await cfg(collector, 'GET', '/export');
    assert.equal(exported.status, 200);
    const first = await cfg(staging, 'POST', '/import', exported.json);
    assert.equal(first.status, 201, first.text);
    const stagingHead = (await cfg(staging, 'GET', '/commits/head')).json;
    const prodHead = (await cfg(collector, 'GET', '/commits/head')).json;
    assert.deepEqual(stagingHead.snapshot, prodHead.snapshot);

    // Both sides change the same field differently, and different fields too.
    await cfg(collector, 'PUT', '/stage/flags/checkout', { description: 'prod says', variants: BOOL, default_variant: 'off' });
    await cfg(collector, 'PUT', '/stage/flags/banner', { variants: [{ key: 'a', value: 'hello' }], default_variant: 'a' });
    await cfg(collector, 'POST', '/commits', { message: 'prod edits' });
    await cfg(staging, 'PUT', '/stage/flags/checkout', { description: 'staging says', variants: BOOL, default_variant: 'off' });
    await cfg(staging, 'POST', '/commits', { message: 'staging edits' });
    const before = (await cfg(staging, 'GET', '/commits/head')).json.id;
    const conflict = await cfg(staging, 'POST', '/import', (await cfg(collector, 'GET', '/export')).json);
    assert.equal(conflict.status, 409, conflict.text);
    assert.equal(conflict.json.error.code, 'merge_conflict');
    assert.deepEqual(conflict.json.error.details.conflicts.map((c) => [c.key, c.path, c.ours, c.theirs]), [['checkout', '/description', 'staging says', 'prod says']]);
    assert.equal((await cfg(staging, 'GET', '/commits/head')).json.id, before, 'nothing written on conflict');

    // Resolve on staging by taking prod's description, then the import merges cleanly.
    await cfg(staging, 'PUT', '/stage/flags/checkout', { description: 'prod says', variants: BOOL, default_variant: 'off' });
    await cfg(staging, 'POST', '/commits', { message: 'resolve' });
    const merged = await cfg(staging, 'POST', '/import', (await cfg(collector, 'GET', '/export')).json);
    assert.equal(merged.status, 201, merged.text);
    assert.ok(merged.json.commit.snapshot.flags.banner, 'their new flag arrived');

    const tampered = (await cfg(collector, 'GET', '/export')).json;
    const someRev = Object.keys(tampered.revisions)[0];
    tampered.revisions[someRev].body.description = 'tampered';
    const refused = await cfg(staging, 'POST', '/import', tampered);
    assert.deepEqual([refused.status, refused.json.error.code], [422, 'revision_mismatch']);
  });
});

describe('shared flag vectors over HTTP', () => {
  test('the Worker decides every publishable case exactly as core does', async () => {
    const vectors = await Collector.start();
    try {
      const doc = JSON.parse(readFileSync(new URL('../spec/flags/cases.json', import.meta.url), 'utf8'));
      // The vectors' `partner-widget` requires a probe; it must exist to be staged. Its
      // state comes from each case's `probes` (a development override), not from runs.
      const probe = await cfg(vectors, 'PUT', '/stage/probes/partner-api', { url: 'http://127.0.0.1:9/never-called' });
      assert.equal(probe.status, 200, probe.text);
      for (const segment of doc.ruleset.segments) {
        const res = await cfg(vectors, 'PUT', `/stage/segments/${segment.key}`, segment);
        assert.equal(res.status, 200, res.text);
      }
      // Flags in dependency order; the deliberately broken ones must be refused at staging.
      const refused = [];
      const pending = [...doc.ruleset.flags];
      for (let round = 0; round < 5 && pending.length; round++) {
        for (const flag of [...pending]) {
          const res = await cfg(vectors, 'PUT', `/stage/flags/${flag.key}`, flag);
          if (res.status === 200) pending.splice(pending.indexOf(flag), 1);
          else if (round === 4 || res.json.error.code !== 'unknown_flag') {
            refused.push(flag.key);
            pending.splice(pending.indexOf(flag), 1);
          }
        }
      }
      // cycle-a and cycle-b each need the other to exist first, so neither can be staged.
      assert.deepEqual(refused.sort(), ['broken-op', 'broken-split', 'cycle-a', 'cycle-b']);
      await cfg(vectors, 'POST', '/commits', { message: 'vectors' });
      await cfg(vectors, 'POST', '/publish', {});
      let checked = 0;
      for (const c of doc.cases) {
        const expectsParseError = c.expect.error_code === 'PARSE_ERROR';
        if (expectsParseError) continue; // refused at staging instead
        const res = await evaluate(vectors, { context: c.context, now: c.now || doc.now, probes: c.probes || {} });
        assert.equal(res.status, 200, res.text);
        const got = res.json.flags[c.flag] || { value: null, reason: 'ERROR', error_code: 'FLAG_NOT_FOUND' };
        for (const key of ['value', 'variant', 'reason', 'rule', 'bucket', 'error_code', 'probe']) {
          assert.deepEqual(got[key] ?? null, c.expect[key] ?? null, `${c.name}: ${key}`);
        }
        checked++;
      }
      assert.ok(checked >= 120, `checked ${checked}`);
    } finally {
      await vectors.stop();
    }
  });
});
