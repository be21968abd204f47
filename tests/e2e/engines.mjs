// The three browser engines behind one small interface, so that one test body runs in
// each: Chromium through playwright-core (as the other suites), Gecko (Debian's Firefox
// ESR) through puppeteer-core over WebDriver BiDi, and WebKit (WebKitGTK's MiniBrowser,
// the engine of iOS webviews) through webdriverio over classic WebDriver, on a virtual
// display (Xvfb). A missing engine fails with the Debian package that provides it.
import { spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { PATHS, browserPackagesMissing } from '../../scripts/toolchain.mjs';
import { launchChromium, waitFor } from './harness.mjs';

export const ENGINES = ['chromium', 'firefox', 'webkit'];

/** Each page records its own uncaught errors (classic WebDriver reports none). */
const RECORD_ERRORS = () => {
  window.pageErrors = [];
  addEventListener('error', (e) => window.pageErrors.push(String(e.message)));
  addEventListener('unhandledrejection', (e) => window.pageErrors.push(String(e.reason?.message ?? e.reason)));
};

/** Runs `fn(arg)` in a page through any driver: the function goes as source text, its
 * (awaited) result comes back as JSON, and a throw is rethrown here with the page's message. */
const RUN_IN_PAGE = async (source, arg) => {
  try {
    // Indirect eval: the test's function, in the page's global scope.
    return { value: await (0, eval)(`(${source})`)(arg) };
  } catch (e) {
    return { error: String(e?.stack || e) };
  }
};

function unwrap(result) {
  if (result && 'error' in result) throw new Error(`in the page: ${result.error}`);
  return result?.value;
}

// Xvfb and WebKitWebDriver run in process groups of their own: whatever ends this process
// (a failure, Ctrl-C) ends them too, and the MiniBrowsers under the driver with them.
const helperGroups = new Set();
const killHelpers = () => {
  for (const pid of helperGroups) { try { process.kill(-pid, 'SIGKILL'); } catch { /* gone */ } }
  helperGroups.clear();
};
process.once('exit', killHelpers);
for (const signal of ['SIGINT', 'SIGTERM']) process.once(signal, () => { killHelpers(); process.exit(130); });

/** `promise`, or an error naming `what` after `ms`: no driver call may hang the suite. */
function within(ms, what, promise) {
  let timer;
  const timeout = new Promise((_, reject) => { timer = setTimeout(() => reject(new Error(`${what}: no answer in ${ms} ms`)), ms); });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

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

/** A page of one engine. `open` navigates, then runs the setup scripts (the tests' stand-ins
 * for a network switch or a locked-down webview) before the SDK loads, as init scripts
 * would; `reload` does the same again. */
class Page {
  constructor(driver) { this.driver = driver; this.setups = []; }

  async open(url, setups = [], { sdk = true } = {}) {
    this.setups = setups;
    this.sdk = sdk;
    await this.driver.goto(url);
    await this.prepare();
  }

  async reload() {
    await this.driver.reload();
    await this.prepare();
  }

  /** Goes elsewhere (the page gets `pagehide`), without setting the next page up. */
  async leave(url) {
    await this.driver.goto(url);
  }

  /** Back in history, as the page's own `history.back()` (drivers wait for a load event
   * that a restore from the back/forward cache never fires). The engine may restore the
   * page (its state intact) or load it anew (then nothing is set up); poll to see which. */
  async back() {
    await this.evaluate(() => { setTimeout(() => history.back(), 0); });
    // A script sent while the page is still going back can wait for a load event that a
    // restore never fires (WebKitWebDriver did so once in a CI run, for its whole 2-minute
    // limit): the polls start once the navigation has had time to finish.
    await new Promise((resolve) => setTimeout(resolve, 1500));
  }

  async prepare() {
    await this.evaluate(RECORD_ERRORS);
    for (const setup of this.setups) await this.evaluate(setup);
    if (this.sdk) {
      await this.evaluate(async () => {
        const sdk = await import('/sdk/telltale.js');
        await sdk.default();
        window.sdk = sdk;
        window.Telltale = sdk.Telltale;
      });
    }
  }

  /** `fn(arg)` in the page; its result must survive JSON. At most 2 minutes. */
  async evaluate(fn, arg = null) {
    return unwrap(await within(120_000, 'a script in the page', this.driver.run(RUN_IN_PAGE.toString(), fn.toString(), arg)));
  }

  /** Uncaught errors in the page since it was opened or reloaded. */
  errors() {
    return this.evaluate(() => window.pageErrors);
  }

  close() { return within(30_000, 'closing the page', this.driver.close()); }
}

// --- Chromium: playwright-core -------------------------------------------------------------

async function chromiumEngine() {
  // The back/forward cache on, as in the other engines (Playwright turns it off by default).
  const browser = await launchChromium({ backForwardCache: true });
  return {
    async newPage() {
      const context = await browser.newContext();
      const page = await context.newPage();
      return new Page({
        goto: (url) => page.goto(url),
        reload: () => page.reload(),
        run: (runner, source, arg) => page.evaluate(([runner, source, arg]) => (0, eval)(`(${runner})`)(source, arg), [runner, source, arg]),
        close: () => context.close(),
      });
    },
    close: () => browser.close(),
  };
}

// --- Gecko: puppeteer-core over WebDriver BiDi ----------------------------------------------

async function firefoxEngine() {
  const { default: puppeteer } = await import('puppeteer-core');
  const browser = await puppeteer.launch({
    browser: 'firefox',
    executablePath: PATHS.firefox,
    headless: true,
    // The machine's network is closed: no update, telemetry or safe-browsing traffic.
    extraPrefsFirefox: {
      'network.captive-portal-service.enabled': false,
      'app.update.enabled': false,
      // The tests' pages are the collector's /healthz: shown as a plain document, not in
      // the JSON viewer (whose page is not the collector's to script).
      'devtools.jsonview.enabled': false,
    },
  });
  return {
    async newPage() {
      const context = await browser.createBrowserContext();
      const page = await context.newPage();
      return new Page({
        goto: (url) => page.goto(url),
        reload: () => page.reload(),
        run: (runner, source, arg) => page.evaluate((runner, source, arg) => (0, eval)(`(${runner})`)(source, arg), runner, source, arg),
        close: () => context.close(),
      });
    },
    close: () => browser.close(),
  };
}

// --- WebKit: webdriverio over classic WebDriver, MiniBrowser on Xvfb -----------------------

/** Starts Xvfb on a display it picks itself (`-displayfd`), so runs never collide. */
async function startXvfb() {
  const xvfb = spawn(PATHS.xvfb, ['-displayfd', '3', '-screen', '0', '1280x800x24', '-nolisten', 'tcp'],
    { stdio: ['ignore', 'ignore', 'pipe', 'pipe'], detached: true });
  helperGroups.add(xvfb.pid);
  let stderr = '';
  xvfb.stderr.on('data', (c) => { stderr += c; });
  const display = await within(20_000, 'Xvfb to report its display', new Promise((resolve, reject) => {
    let text = '';
    xvfb.stdio[3].on('data', (c) => {
      text += c;
      if (text.includes('\n')) resolve(`:${text.trim()}`);
    });
    xvfb.once('exit', (code) => reject(new Error(`Xvfb exited (${code}): ${stderr.slice(-500)}`)));
  })).catch((e) => { try { process.kill(-xvfb.pid, 'SIGKILL'); } catch { /* gone */ } throw e; });
  return { display, stop: () => { try { process.kill(-xvfb.pid, 'SIGKILL'); } catch { /* gone */ } helperGroups.delete(xvfb.pid); } };
}

async function webkitEngine() {
  const { remote } = await import('webdriverio');
  const xvfb = await startXvfb();
  const port = await freePort();
  // One session at a time is all WebKitWebDriver runs: a new page replaces the last (a
  // test that failed before closing its page must not block the next).
  const driver = spawn(PATHS.webkitDriver, [`--port=${port}`, '--replace-on-new-session'], {
    env: { ...process.env, DISPLAY: xvfb.display }, stdio: ['ignore', 'ignore', 'pipe'], detached: true,
  });
  helperGroups.add(driver.pid);
  let driverLog = '';
  driver.stderr.on('data', (c) => { driverLog = (driverLog + c).slice(-4000); });
  const stopAll = () => {
    try { process.kill(-driver.pid, 'SIGKILL'); } catch { /* gone */ }
    helperGroups.delete(driver.pid);
    xvfb.stop();
  };
  try {
    await waitFor(async () => {
      if (driver.exitCode !== null) throw new Error(`WebKitWebDriver exited: ${driverLog}`);
      try { return (await fetch(`http://127.0.0.1:${port}/status`)).ok; } catch { return false; }
    }, { timeoutMs: 30_000, intervalMs: 100, what: 'WebKitWebDriver to listen' });
  } catch (e) {
    stopAll();
    throw e;
  }
  // One MiniBrowser per page: a WebDriver session is one browser, and pages must not share
  // storage (as a new browser context gives the other engines). One page at a time.
  const sessions = new Set();
  return {
    async newPage() {
      for (const open of sessions) await within(30_000, 'ending a WebDriver session', open.deleteSession()).catch(() => {});
      sessions.clear();
      const browser = await remote({
        hostname: '127.0.0.1', port, logLevel: 'error',
        connectionRetryCount: 0,
        capabilities: {
          browserName: 'MiniBrowser',
          'wdio:enforceWebDriverClassic': true,
          'webkitgtk:browserOptions': { binary: PATHS.miniBrowser, args: ['--automation'] },
        },
      });
      await browser.setTimeout({ script: 60_000, pageLoad: 30_000 });
      sessions.add(browser);
      return new Page({
        goto: (url) => browser.url(url),
        reload: () => browser.refresh(),
        // executeAsync: the runner's promise settles the script.
        run: (runner, source, arg) => browser.executeAsync((runner, source, arg, done) => {
          (0, eval)(`(${runner})`)(source, arg).then(done);
        }, runner, source, arg),
        close: async () => { sessions.delete(browser); await browser.deleteSession().catch(() => {}); },
      });
    },
    async close() {
      for (const browser of sessions) await within(30_000, 'ending a WebDriver session', browser.deleteSession()).catch(() => {});
      stopAll();
    },
  };
}

/** Starts an engine; fails, naming the Debian packages, when it is not installed. */
export async function launchEngine(name) {
  const missing = browserPackagesMissing(name);
  if (missing.length) throw new Error(`${name} cannot start: install the Debian packages ${missing.join(', ')} (npm test installs them with apt-get)`);
  const start = { chromium: chromiumEngine, firefox: firefoxEngine, webkit: webkitEngine }[name];
  if (!start) throw new Error(`unknown engine ${name}; known: ${ENGINES.join(', ')}`);
  const engine = await start();
  return { name, ...engine };
}

