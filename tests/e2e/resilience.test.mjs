// "The server keeps working even if the database does not": ingest answers 202 while D1
// or the queue fail, and every accepted event is counted once storage is back, also
// across a Worker restart. Faults are injected through the dev-only admin endpoint.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { Collector, makeEvent, waitFor } from './harness.mjs';

let collector;
before(async () => { collector = await Collector.start(); });
after(async () => { await collector?.stop(); });

async function setFaults(faults) {
  const res = await collector.admin('PUT', '/v1/admin/faults', faults);
  assert.equal(res.status, 200, res.text);
}

async function spooled() {
  const res = await collector.admin('GET', '/v1/admin/pipeline');
  assert.equal(res.status, 200, res.text);
  return res.json.spooled_parts;
}

async function pipeline() {
  const res = await collector.admin('GET', '/v1/admin/pipeline');
  assert.equal(res.status, 200, res.text);
  return res.json;
}

async function sendBatches(name, batches, size) {
  for (let b = 0; b < batches; b++) {
    const events = Array.from({ length: size }, (_, i) => makeEvent({ name, anonymous_id: `u${i % 7}` }));
    const res = await collector.ingest({ sent_at: Date.now(), events });
    assert.equal(res.status, 202, res.text);
    assert.equal(res.json.accepted, size);
  }
}

describe('D1 failing', () => {
  test('ingest still answers 202; after recovery every accepted event is counted once', async () => {
    const counted = await pipeline();
    const before = await spooled();
    await setFaults({ d1: true });
    await sendBatches('outage_d1', 4, 25);
    // Queue retries fail, the dead-letter consumer spools to KV.
    await waitFor(async () => (await spooled()) === before + 4, { timeoutMs: 60_000, what: 'all 4 batches spooled' });
    assert.match(collector.output, /D1 write failed for batch [0-9a-f-]+ part 0/, 'failing writes are logged with their batch id');
    const drainWhileDown = await collector.scheduled();
    assert.equal(drainWhileDown.status, 200);
    assert.equal(await spooled(), before + 4, 'the spool keeps everything while D1 is down');

    await setFaults({ d1: false });
    await collector.scheduled();
    await waitFor(async () => (await spooled()) === 0, { what: 'spool drained' });
    assert.equal(await collector.count('demo', 'outage_d1'), 100);
    const agg = await collector.stats({ app: 'demo', event: 'outage_d1' });
    const raw = await collector.stats({ app: 'demo', event: 'outage_d1', source: 'raw' });
    assert.deepEqual(agg.json.series, raw.json.series);
    // Draining again changes nothing.
    await collector.scheduled();
    assert.equal(await collector.count('demo', 'outage_d1'), 100);
    // Every retry, dead letter and spooled message is counted, once.
    const now = await pipeline();
    assert.equal(now.dead_lettered - counted.dead_lettered, 4, 'dead-lettered messages');
    assert.equal(now.spooled - counted.spooled, 4, 'spooled messages');
    // max_retries = 3: each message had 4 deliveries (the first and 3 retries), each failed
    // and was sent back; the queue dead-lettered it after the last.
    assert.equal(now.retries - counted.retries, 16, 'deliveries sent back');
    const incidents = now.recent_incidents.filter((i) => i.app === 'demo' && i.events === 25);
    assert.ok(incidents.filter((i) => i.kind === 'dead_letter').length >= 4, JSON.stringify(now.recent_incidents));
    assert.equal(now.stored.events - counted.stored.events, 100);
  });
});

describe('queue send failing', () => {
  test('accepted events go straight to the spool and are counted after the cron drains it', async () => {
    const counted = await pipeline();
    const before = await spooled();
    await setFaults({ queue: true });
    await sendBatches('outage_queue', 3, 10);
    assert.equal(await spooled(), before + 3);
    await setFaults({ queue: false });
    await collector.scheduled();
    await collector.waitForCount('demo', 'outage_queue', 30);
    const now = await pipeline();
    assert.deepEqual([now.spooled - counted.spooled, now.dead_lettered - counted.dead_lettered], [3, 0]);
  });
});

describe('Worker restart', () => {
  test('spooled events survive a restart of workerd', async () => {
    await sendBatches('stored_before_restart', 2, 10);
    await collector.waitForCount('demo', 'stored_before_restart', 20);
    const before = await spooled();
    await setFaults({ d1: true, queue: true });
    await sendBatches('outage_restart', 2, 15);
    assert.equal(await spooled(), before + 2);
    await collector.restart();
    assert.equal(await spooled(), before + 2, 'the spool is durable');
    await setFaults({ d1: false, queue: false });
    await collector.scheduled();
    await collector.waitForCount('demo', 'outage_restart', 30);
    // Events accepted before the restart, and stored, are still there.
    assert.equal(await collector.count('demo', 'stored_before_restart'), 20);
  });
});

describe('fault injection API', () => {
  test('unknown fault names are refused', async () => {
    const res = await collector.admin('PUT', '/v1/admin/faults', { disk: true });
    assert.equal(res.status, 400);
  });
});
