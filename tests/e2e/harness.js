// Test helpers for the browser tests: start the real `warroom` binary on a
// temporary data directory and a free port, call its API, and launch
// Debian's Chromium through playwright-core (no browser download).

import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = path.dirname(fileURLToPath(import.meta.url));
export const repo = path.resolve(here, '../..');
export const artifacts = path.join(repo, 'tests', 'artifacts', 'e2e');
export const PASSWORD = 'correct horse battery staple';

/** The server binary: WARROOM_BIN, else the debug build in CARGO_TARGET_DIR or target/. */
export function binary() {
  if (process.env.WARROOM_BIN) return process.env.WARROOM_BIN;
  const target = process.env.CARGO_TARGET_DIR || path.join(repo, 'target');
  return path.join(target, 'debug', 'warroom');
}

/** A running server: `url`, `stop()`, and `api(token, method, path, body)`. */
export async function startServer() {
  const bin = binary();
  if (!existsSync(bin)) throw new Error(`no server binary at ${bin}; build it with cargo build -p warroom`);
  const data = mkdtempSync(path.join(tmpdir(), 'warroom-e2e-'));
  const env = {
    ...process.env,
    WARROOM_STORAGE__DATA_DIR: data,
    WARROOM_SERVER__BIND: '127.0.0.1:0',
    WARROOM_AUTH__LOGIN_PER_IP_PER_MINUTE: '10000',
    WARROOM_AUTH__LOGIN_PER_HANDLE_PER_MINUTE: '1000',
    WARROOM_AGENTS__RUN_IN_PROCESS: 'false',
    // The tests post in bursts; posting limits have their own server tests.
    WARROOM_LIMITS__POSTS_PER_SECOND: '1000',
    WARROOM_LIMITS__POST_BURST: '1000',
    WARROOM_LOG: 'warn',
  };
  const made = spawnSync(bin, ['users', 'create', '--handle', 'admin', '--role', 'admin', '--display-name', 'Ada Admin', '--clearance', 'restricted', '--password-stdin'],
    { env, input: `${PASSWORD}\n`, encoding: 'utf8' });
  if (made.status !== 0) throw new Error(`users create failed: ${made.stderr}`);
  const child = spawn(bin, ['serve'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  const url = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`server did not start:\n${log}`)), 60000);
    const onData = (buf) => {
      log += buf.toString();
      const m = /listening on (http:\/\/[\d.:]+)/.exec(log);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]);
      }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.on('exit', (code) => reject(new Error(`server exited with ${code}:\n${log}`)));
  });
  child.stdout.on('data', (b) => { log += b.toString(); });
  child.stderr.on('data', (b) => { log += b.toString(); });
  const server = {
    url,
    data,
    log: () => log,
    async stop() {
      child.kill('SIGTERM');
      await new Promise((r) => {
        const t = setTimeout(() => { child.kill('SIGKILL'); r(); }, 5000);
        child.on('exit', () => { clearTimeout(t); r(); });
      });
      rmSync(data, { recursive: true, force: true });
    },
    async api(token, method, p, body, { raw, headers = {} } = {}) {
      const h = { ...headers };
      if (token) h.authorization = `Bearer ${token}`;
      let payload;
      if (raw !== undefined) {
        payload = raw;
        h['content-type'] = 'application/octet-stream';
      } else if (body !== undefined) {
        payload = JSON.stringify(body);
        h['content-type'] = 'application/json';
      }
      const r = await fetch(`${url}/api/v1${p}`, { method, headers: h, body: payload });
      const text = await r.text();
      let json = null;
      try { json = text ? JSON.parse(text) : null; } catch { json = text; }
      return { status: r.status, json, headers: r.headers };
    },
    async login(handle, password = PASSWORD) {
      const r = await server.api(null, 'POST', '/auth/login', { handle, password });
      if (r.status !== 200) throw new Error(`login ${handle}: ${r.status} ${JSON.stringify(r.json)}`);
      return r.json.access_token;
    },
    /** Call the API and fail unless the status is 2xx. */
    async ok(token, method, p, body, opts) {
      const r = await server.api(token, method, p, body, opts);
      if (r.status < 200 || r.status > 299) throw new Error(`${method} ${p}: ${r.status} ${JSON.stringify(r.json)}`);
      return r.json;
    },
  };
  return server;
}

/** Launch Debian's Chromium headless. */
export async function launchBrowser() {
  const executablePath = process.env.CHROMIUM || '/usr/bin/chromium';
  return chromium.launch({
    executablePath,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-quic',
      '--no-first-run', '--disable-component-update', '--disable-sync'],
  });
}

/** A new browser context and page, with every request and console error recorded. */
export async function newPage(browser, opts = {}) {
  const context = await browser.newContext({ viewport: { width: 1360, height: 860 }, ...opts });
  const page = await context.newPage();
  page.requests = [];
  page.errors = [];
  page.on('request', (r) => page.requests.push(r.url()));
  page.on('pageerror', (e) => page.errors.push(String(e)));
  page.on('console', (m) => { if (m.type() === 'error') page.errors.push(m.text()); });
  return page;
}

/** Log in through the login form and wait for the shell. */
export async function uiLogin(page, url, handle, password = PASSWORD, hash = '') {
  await page.goto(`${url}/${hash}`);
  await page.fill('#login-handle', handle);
  await page.fill('#login-password', password);
  await page.click('button[type=submit]');
  await page.waitForSelector('.sidebar');
  await page.waitForSelector('html[data-live="live"]');
}

/** Save a screenshot into tests/artifacts/e2e/. */
export async function shot(page, name) {
  mkdirSync(artifacts, { recursive: true });
  await page.screenshot({ path: path.join(artifacts, `${name}.png`) });
}
