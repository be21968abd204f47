// `npm start`: install what is missing, build, apply local D1 migrations, and run the
// collector with the demo page and the console on http://127.0.0.1:8787.
import { spawn } from 'node:child_process';
import { seedDemoConfig } from './demo-config.mjs';
import { ensureAll, log, PATHS, readDevVars, toolEnv, wrangler, ROOT } from './toolchain.mjs';

const PORT = Number(process.env.PORT || 8787);

ensureAll();
const vars = readDevVars();
log('applying local D1 migrations');
wrangler(['d1', 'migrations', 'apply', 'DB', '--local'], { stdio: ['ignore', 'ignore', 'inherit'], env: { CI: 'true' } });

const origins = `http://127.0.0.1:${PORT},http://localhost:${PORT}`;
const child = spawn(PATHS.node22, [PATHS.wrangler, 'dev', '--ip', '127.0.0.1', '--port', String(PORT),
  // The demo's probe calls this collector's own demo partner on 127.0.0.1: a local
  // development switch (deployed collectors refuse private probe targets).
  '--test-scheduled', '--var', `DEMO_ALLOWED_ORIGINS:${origins}`, '--var', 'PROBES_ALLOW_PRIVATE:on'], {
  cwd: ROOT, stdio: 'inherit', env: toolEnv(),
});
for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => child.kill(signal));
child.on('exit', (code) => process.exit(code ?? 0));

const base = `http://127.0.0.1:${PORT}`;
for (let i = 0; i < 240; i++) {
  try {
    if ((await fetch(`${base}/healthz`)).ok) break;
  } catch { /* not up yet */ }
  await new Promise((r) => setTimeout(r, 500));
}
if (await seedDemoConfig(base, vars.ADMIN_KEY)) log('seeded the demo flag config (probe partner-api, flags partner-deals, course-badges and enroll-cta, experiment enroll-cta-test)');
// Cron triggers do not fire by themselves under `wrangler dev`: tick them like production does.
const cron = setInterval(() => { fetch(`${base}/__scheduled?cron=*+*+*+*+*`).catch(() => {}); }, 60_000);
child.on('exit', () => clearInterval(cron));
fetch(`${base}/__scheduled?cron=*+*+*+*+*`).catch(() => {});
console.log(`
  Telltale is running (local D1, KV and Queue under .wrangler/state)

  Demo product   ${base}/
  Console        ${base}/console/#key=${vars.ADMIN_KEY}
  Collector      ${base}/v1/events   (POST, Authorization: Bearer <ingest key>)
  Stats API      ${base}/v1/stats?app=demo&event=search

  Admin key      ${vars.ADMIN_KEY}
  Demo app       demo
  Ingest key     ${vars.DEMO_INGEST_KEY}
  (both in .dev.vars; the cron is ticked every minute by this script)

  Simulate a partner outage (the probe turns partner-deals off after ~5 min, back on
  ~15 min after recovery, and the demo page shows a banner meanwhile):
    curl -X PUT ${base}/demo-partner/health -H 'Authorization: Bearer ${vars.ADMIN_KEY}' -d '{"healthy": false}'
  Probe state: curl ${base}/v1/apps/demo/probes -H 'Authorization: Bearer ${vars.ADMIN_KEY}'
  Config API:  ${base}/v1/apps/demo/config/...   (every app has its own)
`);
