// The npm package as bundlers take it: `npm pack` of the SDK, installed into scratch apps
// built by Vite 8 and by webpack 5 with their default configs (no plugin, no copying of
// .wasm files), each built app loaded in Chromium: an event arrives at the collector and
// flags are decided, remotely and locally (the engine module and its wasm load on demand).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createServer } from 'node:http';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { extname, join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Collector, launchChromium } from './harness.mjs';
import { PATHS, ROOT, toolEnv } from '../../scripts/toolchain.mjs';

let collector, browser, scratch, tarball, app;
const TYPES = { '.html': 'text/html', '.js': 'text/javascript', '.wasm': 'application/wasm' };

// What an app writes: nothing bundler-specific.
const MAIN = `import init, { Telltale } from 'telltale';
await init();
const { endpoint, key, bundler } = window.TELLTALE_TEST;
const remote = new Telltale({ endpoint, key, flushIntervalMs: 3600000, context: { role: 'teacher', user_id: 't1' } });
remote.track('bundled', { by: bundler });
await remote.refreshFlags();
const local = new Telltale({ endpoint, key, flushIntervalMs: 3600000, flagMode: 'local', context: { role: 'student', user_id: 's1' } });
await local.refreshFlags();
await remote.flush();
window.TELLTALE_RESULT = { remote: remote.details('checkout'), local: local.details('checkout') };
`;

function npm(args, cwd) {
  const r = spawnSync('npm', [...args, '--no-audit', '--no-fund', '--loglevel=error'], { cwd, env: toolEnv(), encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`npm ${args.join(' ')} failed: ${r.stderr}`);
  return r.stdout;
}

/** A scratch app with the packed SDK installed from its tarball, as `npm install` does. */
function scratchApp(name) {
  const dir = join(scratch, name);
  mkdirSync(join(dir, 'src'), { recursive: true });
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: `scratch-${name}`, private: true, type: 'module' }));
  npm(['install', '--no-save', tarball], dir);
  return dir;
}

function files(dir) {
  return readdirSync(dir).flatMap((f) => (statSync(join(dir, f)).isDirectory() ? files(join(dir, f)) : [join(dir, f)]));
}

/** Serves a built app's `dist`, loads it in Chromium, and returns what it reported. */
async function runBuilt(dist, bundler) {
  const server = createServer((req, res) => {
    const path = req.url.split('?')[0];
    const file = join(dist, path === '/' ? 'index.html' : path);
    if (!file.startsWith(dist) || !existsSync(file)) { res.writeHead(404); return res.end(); }
    res.writeHead(200, { 'Content-Type': TYPES[extname(file)] || 'application/octet-stream' });
    res.end(readFileSync(file));
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  const page = await browser.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(e.message));
  try {
    await page.addInitScript((config) => { window.TELLTALE_TEST = config; }, { endpoint: collector.url, key: app.ingest_key, bundler });
    await page.goto(`http://127.0.0.1:${server.address().port}/`);
    await page.waitForFunction(() => window.TELLTALE_RESULT, null, { timeout: 30_000 }).catch(() => {
      throw new Error(`${bundler}: the app did not finish; page errors: ${errors.join('; ')}`);
    });
    return await page.evaluate(() => window.TELLTALE_RESULT);
  } finally {
    await page.close();
    server.close();
  }
}

before(async () => {
  collector = await Collector.start();
  browser = await launchChromium();
  app = await collector.newApp('bundled');
  await collector.publishConfig(app.id, [['flags', 'checkout', {
    variants: [{ key: 'on', value: true }, { key: 'off', value: false }], default_variant: 'off',
    rules: [{ id: 'teachers', conditions: [{ attribute: 'role', op: 'eq', value: 'teacher' }], serve: { variant: 'on' } }],
  }]], 'bundler flags');
  scratch = mkdtempSync(join(tmpdir(), 'telltale-bundlers-'));
  const packed = npm(['pack', '--pack-destination', scratch, PATHS.sdkPkg], scratch).trim().split('\n').pop();
  tarball = join(scratch, packed);
  assert.ok(existsSync(tarball), `npm pack wrote ${tarball}`);
});
after(async () => {
  await browser?.close();
  await collector?.stop();
  if (scratch) rmSync(scratch, { recursive: true, force: true });
});

function checkResult(result, bundler) {
  assert.deepEqual([result.remote.value, result.remote.variant, result.remote.reason], [true, 'on', 'TARGETING_MATCH'], `${bundler} remote`);
  assert.deepEqual([result.local.value, result.local.variant, result.local.reason], [false, 'off', 'DEFAULT'], `${bundler} local`);
}

describe('the packed SDK in bundled apps', () => {
  test('the tarball holds the package and nothing else', () => {
    const listing = spawnSync('tar', ['-tzf', tarball], { encoding: 'utf8' }).stdout.trim().split('\n').sort();
    for (const file of ['package/package.json', 'package/telltale.js', 'package/telltale_wasm_bg.wasm', 'package/engine.js', 'package/telltale_engine_bg.wasm', 'package/openfeature.js', 'package/telltale.d.ts']) {
      assert.ok(listing.includes(file), `${file} in ${listing.join(', ')}`);
    }
    assert.ok(listing.every((f) => !/\.(rs|toml|map)$/.test(f)), listing.join(', '));
  });

  test('Vite 8, default config: an event arrives and flags are decided (remote and local)', async () => {
    const dir = scratchApp('vite');
    writeFileSync(join(dir, 'src/main.js'), MAIN);
    writeFileSync(join(dir, 'index.html'), '<!doctype html><title>vite app</title><script type="module" src="/src/main.js"></script>');
    const { build } = await import(join(ROOT, 'node_modules/vite/dist/node/index.js'));
    await build({ root: dir, logLevel: 'silent', configFile: false });
    const dist = join(dir, 'dist');
    assert.ok(files(dist).some((f) => f.endsWith('.wasm')), 'Vite emitted the wasm itself');
    checkResult(await runBuilt(dist, 'vite'), 'vite');
    await collector.waitForCount(app.id, 'bundled', 1);
    const by = await collector.stats({ app: app.id, event: 'bundled', by: 'by' });
    assert.ok(by.json.top.some((t) => t.value === 'vite'), JSON.stringify(by.json.top));
  });

  test('webpack 5, default config: an event arrives and flags are decided (remote and local)', async () => {
    const dir = scratchApp('webpack');
    writeFileSync(join(dir, 'src/index.js'), MAIN);
    const webpack = (await import(join(ROOT, 'node_modules/webpack/lib/index.js'))).default;
    // The defaults as `npx webpack` in the app's folder has them: entry ./src/index.js,
    // output ./dist/main.js (the API resolves those against `context` and the working
    // directory, so both are given), production mode.
    const config = { context: dir, mode: 'production', output: { path: join(dir, 'dist') } };
    const stats = await new Promise((resolve, reject) => webpack(config, (e, s) => (e ? reject(e) : resolve(s))));
    assert.ok(!stats.hasErrors(), stats.toString({ all: false, errors: true }));
    const dist = join(dir, 'dist');
    writeFileSync(join(dist, 'index.html'), '<!doctype html><title>webpack app</title><script src="main.js"></script>');
    assert.ok(files(dist).some((f) => f.endsWith('.wasm')), 'webpack emitted the wasm itself');
    checkResult(await runBuilt(dist, 'webpack'), 'webpack');
    await collector.waitForCount(app.id, 'bundled', 2);
    const by = await collector.stats({ app: app.id, event: 'bundled', by: 'by' });
    assert.deepEqual(by.json.top.map((t) => t.value).sort(), ['vite', 'webpack']);
  });
});
