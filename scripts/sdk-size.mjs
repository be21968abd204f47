// The SDK's download as a user's bundle sees it, measured the way the issue compares SDKs:
// a minimal app (init + track + flag check) bundled with esbuild --minify, then gzip -9.
// The wasm modules are fetched, not bundled: each is gzipped on its own. The flag engine is
// a dynamic import (local mode only), so esbuild splits it out; it is reported apart.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { PATHS, ROOT } from './toolchain.mjs';

const gzip = (bytes) => gzipSync(bytes, { level: 9 }).length;

export async function measureSdk() {
  const { build } = await import(join(ROOT, 'node_modules/esbuild/lib/main.js'));
  const dir = mkdtempSync(join(tmpdir(), 'telltale-size-'));
  try {
    const entry = join(dir, 'app.js');
    writeFileSync(entry, [
      `import init, { Telltale } from ${JSON.stringify(join(PATHS.sdkPkg, 'telltale.js'))};`,
      'await init();',
      "const tt = new Telltale({ endpoint: 'https://collect.example.com', key: 'tt_ik_x' });",
      "tt.track('signup', { plan: 'pro' });",
      "if (tt.isEnabled('new-checkout', false)) document.body.classList.add('new');",
    ].join('\n'));
    const out = join(dir, 'out');
    const result = await build({
      entryPoints: [entry], bundle: true, minify: true, format: 'esm', splitting: true,
      outdir: out, metafile: true, logLevel: 'silent', target: 'es2022', absWorkingDir: ROOT,
    });
    const outputs = result.metafile.outputs;
    const entryOut = Object.keys(outputs).find((f) => outputs[f].entryPoint);
    // What the page loads up front: the entry chunk and what it imports statically.
    const upFront = new Set([entryOut]);
    for (const file of upFront) {
      for (const imp of outputs[file].imports) if (imp.kind === 'import-statement' && !imp.external) upFront.add(imp.path);
    }
    const jsBytes = (files) => files.reduce((n, f) => n + gzip(readFileSync(join(ROOT, f))), 0);
    const lazyJs = Object.keys(outputs).filter((f) => f.endsWith('.js') && !upFront.has(f));
    const js = jsBytes([...upFront]);
    const wasm = gzip(readFileSync(join(PATHS.sdkPkg, 'telltale_wasm_bg.wasm')));
    const engineJs = jsBytes(lazyJs);
    const engineWasm = gzip(readFileSync(join(PATHS.sdkPkg, 'telltale_engine_bg.wasm')));
    return { js, wasm, total: js + wasm, engineJs, engineWasm, engineTotal: engineJs + engineWasm };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
