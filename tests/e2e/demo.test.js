// The demo as a newcomer sees it: `warroom demo` on the embedded defaults
// (sample company, local brain, no key, no service), its #war-room after the
// first minutes, read in the browser as lena and kept as a screenshot
// (tests/artifacts/e2e/20-demo-war-room.png, and 21- with lena's
// question open in its thread). The talk must read like
// colleagues comparing notes: agents do not repeat on their own a quote the
// channel already carries, and quote prose, not table rows or checklist lines.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { binary, repo, launchBrowser, newPage, uiLogin, shot } from './harness.js';

let demo;
let data;
let url;
let log = '';
let browser;

/** Agent messages the test waits for, and how long at most. */
const WANT_MESSAGES = 6;
const WAIT_MS = 180_000;

before(async () => {
  data = mkdtempSync(path.join(tmpdir(), 'warroom-demo-'));
  demo = spawn(binary(), ['demo'], {
    cwd: repo,
    env: { ...process.env, WARROOM_STORAGE__DATA_DIR: data, WARROOM_SERVER__BIND: '127.0.0.1:0', WARROOM_LOG: 'warn' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  url = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`the demo did not start:\n${log}`)), 240_000);
    const onData = (buf) => {
      log += buf.toString();
      const m = /Warroom is running at (http:\/\/[\d.:]+)/.exec(log);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]);
      }
    };
    demo.stdout.on('data', onData);
    demo.stderr.on('data', onData);
    demo.on('exit', (code) => reject(new Error(`the demo exited with ${code}:\n${log}`)));
  });
  browser = await launchBrowser();
});

after(async () => {
  if (browser) await browser.close();
  if (demo) {
    demo.kill('SIGTERM');
    await new Promise((r) => {
      const t = setTimeout(() => { demo.kill('SIGKILL'); r(); }, 10_000);
      demo.on('exit', () => { clearTimeout(t); r(); });
    });
  }
  if (data) rmSync(data, { recursive: true, force: true });
});

async function api(token, method, p, body) {
  const headers = { 'content-type': 'application/json' };
  if (token) headers.authorization = `Bearer ${token}`;
  const r = await fetch(`${url}/api/v1${p}`, { method, headers, body: body && JSON.stringify(body) });
  const json = await r.json();
  if (!r.ok) throw new Error(`${method} ${p}: ${r.status} ${JSON.stringify(json)}`);
  return json;
}

/** The quoted spans of a body, normalised as the runtime keys them. */
function quotes(body) {
  return body.split('"').filter((_, i) => i % 2 === 1).map((q) => q.trim()).filter((q) => q.length >= 12);
}
const key = (s) => s.toLowerCase().split(/[^\p{L}\p{N}]+/u).filter(Boolean).join(' ');

test('the demo\'s war room after its first minutes reads like colleagues comparing notes', async () => {
  const password = readFileSync(path.join(data, 'first-admin-password.txt'), 'utf8').trim();
  const admin = (await api(null, 'POST', '/auth/login', { handle: 'admin', password })).access_token;
  const channels = await api(admin, 'GET', '/channels');
  const war = (channels.channels || channels).find((c) => c.name === 'war-room');
  assert.ok(war, 'the demo has a #war-room');
  let messages = [];
  const deadline = Date.now() + WAIT_MS;
  while (Date.now() < deadline) {
    const page = await api(admin, 'GET', `/channels/${war.id}/messages?limit=200`);
    messages = page.messages || page;
    if (messages.filter((m) => m.author.kind === 'agent').length >= WANT_MESSAGES) break;
    await new Promise((r) => setTimeout(r, 5000));
  }
  const agents = messages.filter((m) => m.author.kind === 'agent');
  assert.ok(agents.length >= 3, `the agents talk within ${WAIT_MS / 1000} s: ${agents.length} messages\n${log}`);

  // Look at it as lena does, and keep the picture.
  const logins = readFileSync(path.join(data, 'demo-logins.txt'), 'utf8');
  const lenaPassword = /password (\S+)/.exec(logins)[1];
  const page = await newPage(browser);
  await uiLogin(page, url, 'lena', lenaPassword);
  await page.goto(`${url}/#/c/${war.id}`);
  await page.waitForSelector('.messages .msg');
  await shot(page, '20-demo-war-room');
  // lena's question and the answers in its thread.
  const asked = page.locator('.messages .msg', { hasText: 'What risks and opportunities' });
  if (await asked.locator('.replies').count()) {
    await asked.locator('.replies').click();
    await page.waitForSelector('.pane .msg');
    await shot(page, '21-demo-war-room-thread');
  }
  assert.deepEqual(page.errors, [], 'the page logs no errors');
  await page.context().close();

  // Answers to a person may repeat what the channel heard; nothing else does.
  const byId = new Map(messages.map((m) => [m.id, m]));
  const heard = new Map();
  for (const m of [...messages].sort((a, b) => a.seq - b.seq)) {
    const root = m.thread_root && byId.get(m.thread_root);
    const answersPerson = root && root.author.kind !== 'agent';
    for (const q of quotes(m.body)) {
      assert.doesNotMatch(q, /^\s*(\||\[[ xX]\])/, `a table row or checklist line quoted as content: ${m.body}`);
      const k = key(q);
      if (m.author.kind === 'agent' && !answersPerson) {
        assert.ok(!heard.has(k), `${m.author.handle} repeats a quote #war-room carries (first by ${heard.get(k)}): ${q}`);
      }
      if (!heard.has(k)) heard.set(k, m.author.handle);
    }
  }
});
