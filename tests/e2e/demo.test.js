// The README's demo as a newcomer sees it: `warroom demo` on the sample
// company, its agents talking in #war-room for the first minutes, then
// #war-room in the browser (screenshot in tests/artifacts/e2e/demo-war-room.png).
// The talk must read like colleagues comparing notes: no table rows or
// checklist items as content, and no quote the room already carries.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { binary, launchBrowser, newPage, uiLogin, shot } from './harness.js';

/** How long the agents talk before we look (seconds). */
const TALK_SECONDS = Number(process.env.WARROOM_DEMO_SECONDS || 90);

/** The quoted spans of a message body, as the extractive brain writes them. */
function quotes(body) {
  return body.split('"').filter((_, i) => i % 2 === 1).map((s) => s.trim()).filter((s) => s.length >= 12);
}

test('the demo\'s #war-room reads like colleagues comparing notes', { timeout: (TALK_SECONDS + 240) * 1000 }, async () => {
  const data = mkdtempSync(path.join(tmpdir(), 'warroom-demo-'));
  const child = spawn(binary(), ['demo'], {
    env: { ...process.env, WARROOM_STORAGE__DATA_DIR: data, WARROOM_SERVER__BIND: '127.0.0.1:0', WARROOM_LOG: 'warn' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let log = '';
  child.stdout.on('data', (b) => { log += b.toString(); });
  child.stderr.on('data', (b) => { log += b.toString(); });
  let browser;
  try {
    const url = await new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`demo did not start:\n${log}`)), 180000);
      const poll = setInterval(() => {
        const m = /Warroom is running at (http:\/\/[\d.:]+)/.exec(log);
        if (m && log.includes('Stop with Ctrl-C')) {
          clearTimeout(timer);
          clearInterval(poll);
          resolve(m[1]);
        }
      }, 200);
      child.on('exit', (code) => reject(new Error(`demo exited with ${code}:\n${log}`)));
    });
    const password = /password (\S+)/.exec(readFileSync(path.join(data, 'demo-logins.txt'), 'utf8'))[1];
    await new Promise((r) => setTimeout(r, TALK_SECONDS * 1000));

    const api = async (token, p) => {
      const r = await fetch(`${url}/api/v1${p}`, { headers: token ? { authorization: `Bearer ${token}` } : {} });
      return r.json();
    };
    const login = await fetch(`${url}/api/v1/auth/login`, {
      method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ handle: 'lena', password }),
    }).then((r) => r.json());
    const token = login.access_token;
    const war = (await api(token, '/channels')).find((c) => c.name === 'war-room');
    assert.ok(war, 'lena sees #war-room');
    const messages = await api(token, `/channels/${war.id}/messages?limit=200`);
    const agentMessages = messages.filter((m) => m.author && m.author.kind === 'agent');
    assert.ok(agentMessages.length >= 5, `agents talk in #war-room: ${agentMessages.length} messages\n${log}`);

    const seen = new Map();
    for (const m of agentMessages) {
      for (const q of quotes(m.body)) {
        assert.ok(!/^\||^\[[ xX]\]| \| /.test(q), `a table row or checklist item as content: ${m.body}`);
        const key = q.toLowerCase().replace(/[^a-z0-9]+/g, ' ').trim();
        assert.ok(!seen.has(key), `quoted twice in #war-room:\n  ${seen.get(key)}\n  ${m.body}`);
        seen.set(key, m.body);
      }
    }

    browser = await launchBrowser();
    const page = await newPage(browser);
    await uiLogin(page, url, 'lena', password, `#/c/${war.id}`);
    await page.waitForSelector('.messages .msg');
    await shot(page, 'demo-war-room');
    assert.deepEqual(page.errors, []);
  } finally {
    if (browser) await browser.close();
    child.kill('SIGTERM');
    await new Promise((r) => {
      const t = setTimeout(() => { child.kill('SIGKILL'); r(); }, 5000);
      child.on('exit', () => { clearTimeout(t); r(); });
    });
    rmSync(data, { recursive: true, force: true });
  }
});
