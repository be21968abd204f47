// Starts a real collector (`wrangler dev`: workerd with local D1, KV, Queues and rate
// limiting) on a free port with fresh, non-persistent state in a temp dir, and gives the
// tests small helpers. Stopped by process group, so npm, workerd and esbuild go together.
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PATHS, readDevVars, ROOT, toolEnv } from '../../scripts/toolchain.mjs';

/** Debian's Chromium, headless, as root, with its background networking off (the
 * machine's network is closed), through playwright-core. */
/** Debian's Chromium, headless. `backForwardCache` keeps the back/forward cache on
 * (Playwright turns it off by default). */
export async function launchChromium({ backForwardCache = false } = {}) {
  const { chromium } = await import('playwright-core');
  return chromium.launch({
    executablePath: PATHS.chromium,
    headless: true,
    ignoreDefaultArgs: backForwardCache ? ['--disable-back-forward-cache'] : [],
    args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--disable-background-networking',
      '--disable-component-update', '--no-first-run', '--disable-sync', '--disable-quic'],
  });
}

/** Loads the built SDK into a page: the module as `window.sdk`, and `window.Telltale`. */
export async function loadSdk(page) {
  await page.evaluate(async () => {
    const sdk = await import('/sdk/telltale.js');
    await sdk.default();
    window.sdk = sdk;
    window.Telltale = sdk.Telltale;
  });
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
    server.on('error', reject);
  });
}

/** Polls `check` until it returns a truthy value, or fails after `timeoutMs`. */
export async function waitFor(check, { timeoutMs = 30_000, intervalMs = 250, what = 'condition' } = {}) {
  const deadline = Date.now() + timeoutMs;
  let last;
  while (Date.now() < deadline) {
    last = await check();
    if (last) return last;
    await sleep(intervalMs);
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}; last value: ${JSON.stringify(last)}`);
}

/** Checks that `check` keeps holding for `forMs` (polled, failing at the first miss): an
 * invariant over time, such as "nothing more arrives", instead of a blind sleep. */
export async function holdsFor(check, { forMs = 1000, intervalMs = 250, what = 'condition' } = {}) {
  const until = Date.now() + forMs;
  do {
    const value = await check();
    if (!value) throw new Error(`${what} stopped holding (last value: ${JSON.stringify(value)})`);
    await sleep(intervalMs);
  } while (Date.now() < until);
}

export function uuidv7() {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  const ts = BigInt(Date.now());
  for (let i = 0; i < 6; i++) bytes[i] = Number((ts >> BigInt(8 * (5 - i))) & 0xffn);
  bytes[6] = 0x70 | (bytes[6] & 0x0f);
  bytes[8] = 0x80 | (bytes[8] & 0x3f);
  const hex = [...bytes].map((b) => b.toString(16).padStart(2, '0')).join('');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

export function makeEvent(overrides = {}) {
  return { id: uuidv7(), type: 'track', name: 'search', ts: Date.now(), anonymous_id: 'anon-1', props: {}, ...overrides };
}

/** `--config` arguments for a copy of wrangler.toml whose ingest rate limit is `limit` per
 * 10 s: a test of the limiter that must send more than 1,000 requests within one window
 * fails on a busy 2-core VM, where the local collector answers about 100 a second. */
function ingestLimitConfig(limit) {
  const text = readFileSync(join(ROOT, 'wrangler.toml'), 'utf8');
  const production = 'simple = { limit = 1000, period = 10 }';
  if (!text.includes(production)) throw new Error(`wrangler.toml no longer says \`${production}\`: update the harness`);
  const file = join(ROOT, `wrangler.ingest-limit-${limit}.toml`);
  writeFileSync(file, text.replace(production, `simple = { limit = ${limit}, period = 10 }`));
  return ['--config', file];
}

export class Collector {
  /** `devHooks: false` runs without fault injection and evaluation overrides (benchmarks).
   * `ingestLimit`: the ingest rate limit per 10 s (wrangler.toml's 1,000 otherwise), from a
   * copy of wrangler.toml beside it (relative paths stay valid). */
  static async start({ persistDir, vars = {}, devHooks = true, ingestLimit } = {}) {
    const c = new Collector();
    c.extraVars = vars;
    c.devHooks = devHooks;
    c.configArgs = ingestLimit ? ingestLimitConfig(ingestLimit) : [];
    c.ownsDir = !persistDir;
    c.dir = persistDir || mkdtempSync(join(tmpdir(), 'telltale-e2e-'));
    await c.boot();
    return c;
  }

  async boot() {
    const vars = readDevVars();
    this.adminKey = vars.ADMIN_KEY;
    this.ingestKey = vars.DEMO_INGEST_KEY;
    this.port = await freePort();
    this.url = `http://127.0.0.1:${this.port}`;
    const env = toolEnv({ CI: 'true' });
    const migrate = spawnSync(PATHS.node22, [PATHS.wrangler, 'd1', 'migrations', 'apply', 'DB', '--local', '--persist-to', this.dir, ...this.configArgs],
      { cwd: ROOT, env, encoding: 'utf8' });
    if (migrate.status !== 0) throw new Error(`migrations failed: ${migrate.stderr}`);
    this.output = '';
    this.child = spawn(PATHS.node22, [PATHS.wrangler, 'dev', ...this.configArgs, '--ip', '127.0.0.1', '--port', String(this.port),
      '--persist-to', this.dir, '--test-scheduled', '--inspector-port', String(await freePort()),
      ...(this.devHooks ? ['--var', 'FAULT_INJECTION:on', '--var', 'EVAL_OVERRIDES:on', '--var', 'PROBES_ALLOW_PRIVATE:on'] : []),
      '--var', `DEMO_ALLOWED_ORIGINS:${this.url}`,
      ...Object.entries(this.extraVars || {}).flatMap(([k, v]) => ['--var', `${k}:${v}`])],
    { cwd: ROOT, env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    const keep = (chunk) => { this.output = (this.output + chunk).slice(-200_000); };
    this.child.stdout.on('data', keep);
    this.child.stderr.on('data', keep);
    await waitFor(async () => {
      if (this.child.exitCode !== null) throw new Error(`wrangler dev exited: ${this.output.slice(-3000)}`);
      try { return (await fetch(`${this.url}/healthz`)).ok; } catch { return false; }
    }, { timeoutMs: 180_000, intervalMs: 300, what: 'wrangler dev to answer /healthz' });
  }

  async stop({ keepState = false } = {}) {
    if (this.child && this.child.exitCode === null) {
      const exited = new Promise((r) => this.child.once('exit', r));
      try { process.kill(-this.child.pid, 'SIGTERM'); } catch { /* already gone */ }
      await Promise.race([exited, sleep(5000)]);
      try { process.kill(-this.child.pid, 'SIGKILL'); } catch { /* already gone */ }
    }
    if (!keepState && this.ownsDir) rmSync(this.dir, { recursive: true, force: true });
  }

  /** Restarts workerd on the same persisted state (a Worker restart). */
  async restart() {
    await this.stop({ keepState: true });
    await this.boot();
  }

  async request(method, path, { body, headers = {}, raw = false } = {}) {
    const init = { method, headers: { ...headers } };
    if (body !== undefined) {
      init.body = typeof body === 'string' || body instanceof Uint8Array ? body : JSON.stringify(body);
      if (!init.headers['Content-Type']) init.headers['Content-Type'] = 'application/json';
    }
    const res = await fetch(`${this.url}${path}`, init);
    if (raw) return res;
    const text = await res.text();
    let json;
    try { json = JSON.parse(text); } catch { json = undefined; }
    return { status: res.status, headers: res.headers, json, text };
  }

  admin(method, path, body) {
    return this.request(method, path, { body, headers: { Authorization: `Bearer ${this.adminKey}` } });
  }

  ingest(body, { key = this.ingestKey, headers = {} } = {}) {
    return this.request('POST', '/v1/events', { body, headers: { Authorization: `Bearer ${key}`, ...headers } });
  }

  async stats(query) {
    return this.admin('GET', `/v1/stats?${new URLSearchParams(query)}`);
  }

  /** Total count of an event over the last day, or null while the event is unknown. */
  async count(app, event, extra = {}) {
    const res = await this.stats({ app, event, ...extra });
    if (res.status === 404) return null;
    if (res.status !== 200) throw new Error(`stats answered ${res.status}: ${res.text}`);
    return res.json.series.reduce((sum, p) => sum + p.count, 0);
  }

  async waitForCount(app, event, expected, opts = {}) {
    let last;
    try {
      return await waitFor(async () => { last = await this.count(app, event, opts.query); return last === expected; },
        { timeoutMs: 30_000, what: `${expected} ${event} events`, ...opts });
    } catch (e) {
      throw new Error(`${e.message} (last count ${last})`);
    }
  }

  scheduled() {
    return this.request('GET', '/__scheduled?cron=*+*+*+*+*');
  }

  async createApp(id, allowedOrigins = []) {
    const res = await this.admin('POST', '/v1/admin/apps', { id, allowed_origins: allowedOrigins });
    if (res.status !== 201) throw new Error(`create app ${id}: ${res.status} ${res.text}`);
    return res.json;
  }

  /** A fresh app with a unique id (`prefix-N`), so that a test owns its config and data. */
  async newApp(prefix = 'app', allowedOrigins = ['*']) {
    Collector.appCount = (Collector.appCount || 0) + 1;
    return this.createApp(`${prefix}-${Collector.appCount}-${Date.now().toString(36)}`, allowedOrigins);
  }

  /** A request to an app's config API (`/v1/apps/{app}/config{path}`) with the admin key. */
  config(app, method, path, body, actor = 'ada@example.com') {
    return this.request(method, `/v1/apps/${app}/config${path}`,
      { body, headers: { Authorization: `Bearer ${this.adminKey}`, 'X-Telltale-Actor': actor } });
  }

  /** Stages entries (`[kind, key, body]`), commits and publishes them in an app; throws on any failure. */
  async publishConfig(app, entries, message = 'test config') {
    for (const [kind, key, body] of entries) {
      const res = await this.config(app, 'PUT', `/stage/${kind}/${key}`, body);
      if (res.status !== 200) throw new Error(`stage ${kind}/${key}: ${res.status} ${res.text}`);
    }
    const commit = await this.config(app, 'POST', '/commits', { message });
    if (commit.status !== 201) throw new Error(`commit: ${commit.status} ${commit.text}`);
    const pub = await this.config(app, 'POST', '/publish', {});
    if (pub.status !== 200) throw new Error(`publish: ${pub.status} ${pub.text}`);
    return commit.json.id;
  }
}
