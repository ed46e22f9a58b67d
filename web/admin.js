// Administrators' pages: the live war-room dashboard, agents (spawn, pause,
// resume, retire, brain, budget, activity), scopes with a live preview,
// documents (upload, reclassify, delete) and users and roles. The server
// refuses every one of these calls to other roles; the UI only hides them.

import { api } from './api.js';
import { h, mount, icon, avatar, labelChip, deptChip, safeHtml, fmt, toast, dialog, empty, debounce } from './dom.js';
import { pageHeader } from './app.js';

const LEVELS = ['public', 'internal', 'confidential', 'restricted'];
const ROLES = ['admin', 'leader', 'member', 'guest', 'worker'];

let stopDashboard = null;

/** Route `#/admin/<page>/<id>`. */
export async function show(ctx, main, parts) {
  if (stopDashboard) {
    stopDashboard();
    stopDashboard = null;
  }
  const page = parts[0] || 'dashboard';
  document.title = `${page[0].toUpperCase()}${page.slice(1)} · Admin · Warroom`;
  if (page === 'dashboard') return dashboard(ctx, main);
  if (page === 'agents') return parts[1] ? agentDetail(ctx, main, parts[1]) : agents(ctx, main);
  if (page === 'scopes') return scopes(ctx, main, parts[1]);
  if (page === 'documents') return documents(ctx, main);
  if (page === 'users') return users(ctx, main);
  return dashboard(ctx, main);
}

function stat(label, value, sub, iconName) {
  const v = h('div.stat-value', value);
  const s = h('div.stat-sub', sub || '');
  return { el: h('div.stat', h('div.stat-label', icon(iconName), label), v, s), v, s };
}

function table(headers, rows, cls = '') {
  return h(`div.table-wrap${cls}`, h('table.table', h('thead', h('tr', headers.map((x) => h('th', x)))), h('tbody', rows)));
}

// ---------------------------------------------------------------- dashboard

// A message's text without its Markdown, from the server's sanitized HTML.
function plain(m) {
  return safeHtml(h('div'), m.body_html || '').textContent.replace(/\s+/g, ' ').trim();
}

async function dashboard(ctx, main) {
  const active = stat('Active agents', '—', 'of all agents', 'bot');
  const rate = stat('Messages / minute', '0', 'last 60 seconds, live', 'pulse');
  const people = stat('Agent posts', '0', 'since you opened this page', 'chart');
  const blocked = stat('Blocked & denied', '—', 'in the last 500 audit records', 'shield');
  const spark = h('div.spark', { 'aria-label': 'Messages per 10 seconds over the last 5 minutes' });
  const threads = h('div.busy-threads');
  const denials = h('div.denials');
  const feed = h('ol.feed', { 'aria-label': 'Live activity' });
  mount(main, pageHeader(h('h1', 'War-room dashboard'), h('span.live-pill', h('span.live-dot'), 'Live')),
    h('div.page-body.dashboard',
      h('div.stats', active.el, rate.el, people.el, blocked.el),
      h('div.dash-grid',
        h('section.card', h('h2', 'Traffic'), h('p.muted', 'New messages per 10 s, all channels'), spark),
        h('section.card', h('h2', 'Busiest threads'), h('p.muted', 'Replies seen since this page opened, plus #war-room history'), threads),
        h('section.card.span-2', h('h2', 'Blocked posts and denials'), h('p.muted', 'From the audit log: refused posts, denied reads and retrievals'), denials),
        h('section.card.span-2', h('h2', 'Live activity'), feed))));

  const times = [];
  const threadCounts = new Map();
  let agentPosts = 0;
  const names = new Map();
  const name = async (id) => {
    if (!names.has(id)) names.set(id, api(`/messages/${id}`).catch(() => null));
    return names.get(id);
  };
  const drawThreads = async () => {
    const top = [...threadCounts.entries()].sort((a, b) => b[1] - a[1]).slice(0, 6);
    if (!top.length) return mount(threads, h('p.muted', 'No thread replies yet.'));
    const rows = await Promise.all(top.map(async ([id, n]) => {
      const m = await name(id);
      const c = m && ctx.channels.get(m.channel_id);
      return h('a.thread-row', { href: m ? `#/c/${m.channel_id}/m/${m.id}` : '#/admin/dashboard' },
        h('span.thread-count', String(n)),
        h('span.thread-text', m ? plain(m).slice(0, 110) || '(deleted)' : id),
        c ? h('span.muted', `#${c.name}`) : null);
    }));
    mount(threads, rows);
  };
  const drawSpark = () => {
    const now = Date.now();
    const buckets = new Array(30).fill(0);
    for (const t of times) {
      const i = Math.floor((now - t) / 10000);
      if (i < 30) buckets[29 - i] += 1;
    }
    const max = Math.max(1, ...buckets);
    mount(spark, buckets.map((b) => {
      const bar = h('span.spark-bar', { title: `${b} messages` });
      bar.style.height = `${Math.max(3, (b / max) * 100)}%`;
      return bar;
    }));
    while (times.length && now - times[0] > 300000) times.shift();
    rate.v.textContent = String(times.filter((t) => now - t < 60000).length);
  };
  const onEv = (ev) => {
    if (ev.type !== 'activity') return;
    for (const a of ev.items) {
      times.push(Date.now());
      if (a.author_is_agent) agentPosts += 1;
      if (a.thread_root) threadCounts.set(a.thread_root, (threadCounts.get(a.thread_root) || 0) + 1);
      const c = ctx.channels.get(a.channel_id);
      feed.querySelector('.waiting')?.remove();
      feed.prepend(h('li', h('span.feed-time', fmt.time(new Date().toISOString())),
        a.author_is_agent ? h('span.chip.agent-badge', 'Agent') : h('span.chip', 'Person'),
        h('span', a.thread_root ? 'replied in a thread in ' : 'posted in '),
        h('a', { href: `#/c/${a.channel_id}/m/${a.message_id}` }, c ? `#${c.name}` : 'a channel')));
      while (feed.children.length > 40) feed.lastChild.remove();
    }
    people.v.textContent = fmt.num(agentPosts);
    drawSpark();
    drawThreadsSoon();
  };
  const drawThreadsSoon = debounce(drawThreads, 1500);
  const off = ctx.live.on(onEv);
  ctx.live.activity();
  const tick = setInterval(drawSpark, 5000);
  stopDashboard = () => {
    off();
    clearInterval(tick);
  };
  drawSpark();
  mount(feed, h('li.muted.waiting', 'Waiting for new messages…'));

  const [all, act, audit] = await Promise.all([
    api('/agents', { query: { limit: 1 } }).catch(() => ({ total: 0 })),
    api('/agents', { query: { limit: 1, status: 'active' } }).catch(() => ({ total: 0 })),
    api('/audit', { query: { limit: 500 } }).catch(() => []),
  ]);
  active.v.textContent = fmt.num(act.total);
  active.s.textContent = `of ${fmt.num(all.total)} agents`;
  const bad = audit.filter((r) => /deni|refus|block|fail|reject|forbid/i.test(r.outcome));
  blocked.v.textContent = fmt.num(bad.length);
  mount(denials, bad.length ? table(['When', 'Who', 'Action', 'Target', 'Outcome', 'Why'], bad.slice(0, 12).map((r) => h('tr',
    h('td', fmt.ago(r.at)), h('td.mono', r.actor_id ? r.actor_id.slice(0, 8) : 'system'), h('td', h('code', r.action)),
    h('td.mono.ellipsis', r.target), h('td', h('span.chip.outcome-denied', r.outcome)),
    h('td.ellipsis', r.detail && (r.detail.reason || r.detail.code || r.detail.message) ? String(r.detail.reason || r.detail.code || r.detail.message) : '')))) : h('p.muted', 'Nothing blocked or denied recently.'));
  // Seed the busiest threads from #war-room's recent history.
  const war = [...ctx.channels.values()].find((c) => c.name === 'war-room');
  if (war) {
    const recent = await api(`/channels/${war.id}/messages`, { query: { top_level: true, limit: 100 } }).catch(() => []);
    for (const m of recent) {
      if (m.reply_count > 0) {
        threadCounts.set(m.id, Math.max(threadCounts.get(m.id) || 0, m.reply_count));
        names.set(m.id, Promise.resolve(m));
      }
    }
  }
  drawThreads();
}

// ---------------------------------------------------------------- agents

async function agents(ctx, main) {
  const filter = h('select', { 'aria-label': 'Status' }, ['', 'active', 'paused', 'retired'].map((s) => h('option', { value: s }, s || 'All statuses')));
  const body = h('div');
  const load = async () => {
    const r = await api('/agents', { query: { limit: 200, status: filter.value || undefined } });
    mount(body, r.agents.length ? [h('p.muted', `${fmt.num(r.total)} agent${r.total === 1 ? '' : 's'}${r.total > r.agents.length ? `, first ${r.agents.length} shown` : ''}`),
      table(['Agent', 'Department', 'Brain', 'Scope', 'Budget / h', 'Activity', 'Status', ''], r.agents.map((a) => agentRow(ctx, a, load)))]
      : empty('No agents', 'Spawn agents from a template to start the conversation.'));
  };
  filter.addEventListener('change', load);
  mount(main, pageHeader(h('h1', 'Agents'), h('div.head-actions', filter, h('button.btn.btn-primary.btn-sm', { onclick: () => spawnDialog(ctx, load) }, icon('plus'), 'Spawn agents'))),
    h('div.page-body', body));
  await load();
}

function statusChip(s) {
  return h(`span.chip.status-${s}`, s);
}

function agentRow(ctx, a, reload) {
  const st = a.stats || {};
  return h('tr', { dataset: { agent: a.handle } },
    h('td', h('a.agent-cell', { href: `#/admin/agents/${a.id}` }, avatar({ kind: 'agent', display_name: a.persona.name, department: a.persona.department }, 'sm'),
      h('div', h('div.strong', a.persona.name), h('div.muted', `@${a.handle} · ${a.persona.role}`)))),
    h('td', deptChip(a.persona.department)),
    h('td', a.brain),
    h('td', a.scope ? h('code', a.scope) : h('span.muted', 'none'), ' ', labelChip(a.clearance)),
    h('td.num', a.tokens_per_hour ? `${fmt.num(a.tokens_per_hour)} tok` : 'default', h('div.muted', a.turns_per_hour ? `${a.turns_per_hour} turns` : '')),
    h('td.num', `${fmt.num(st.posts || 0)} posts`, h('div.muted', `${fmt.num(st.turns || 0)} turns · ${fmt.num(st.tokens || 0)} tok`)),
    h('td', statusChip(a.status)),
    h('td.actions', lifecycleButtons(a, reload)));
}

function lifecycleButtons(a, reload) {
  const set = async (status) => {
    if (status === 'retired') {
      const ok = await dialog({ title: `Retire ${a.persona.name}?`, body: h('p', 'Retiring deactivates the agent for good. Its messages stay.'), actions: [['Cancel', null], ['Retire', true, 'danger']] });
      if (!ok) return;
    }
    try {
      await api(`/agents/${a.id}/status`, { method: 'PUT', body: { status } });
      toast(`${a.persona.name}: ${status}`);
      reload();
    } catch (e) {
      toast(e.message, 'error');
    }
  };
  if (a.status === 'retired') return h('span.muted', 'retired');
  return [
    a.status === 'active' ? h('button.btn.btn-sm', { onclick: () => set('paused') }, 'Pause') : h('button.btn.btn-sm', { onclick: () => set('active') }, 'Resume'),
    h('button.btn.btn-sm.btn-ghost.danger', { onclick: () => set('retired') }, 'Retire'),
  ];
}

async function spawnDialog(ctx, reload) {
  const [templates, scopeList] = await Promise.all([api('/agents/templates'), api('/scopes').catch(() => [])]);
  const tpl = h('select', { name: 'template' }, templates.map((t) => h('option', { value: t.name }, `${t.name} — ${t.role}, ${t.department}`)));
  const count = h('input', { name: 'count', type: 'number', min: 1, max: 100000, value: 1 });
  const scope = h('select', { name: 'scope' }, h('option', { value: '' }, 'Default: dept-<department>'), scopeList.map((s) => h('option', { value: s.name }, s.name)));
  const brain = h('select', { name: 'brain' }, h('option', { value: '' }, 'Server default'), ['extractive', 'local', 'openai'].map((b) => h('option', { value: b }, b)));
  const activity = h('select', { name: 'activity' }, h('option', { value: '' }, 'Template default'), ['low', 'medium', 'high'].map((b) => h('option', { value: b }, b)));
  const tokens = h('input', { name: 'tokens', type: 'number', min: 0, placeholder: 'runtime default' });
  const turns = h('input', { name: 'turns', type: 'number', min: 0, placeholder: 'runtime default' });
  const ok = await dialog({
    title: 'Spawn agents',
    body: h('div.form-grid.two', h('label.span-2', 'Template', tpl), h('label', 'How many', count), h('label', 'Scope', scope), h('label', 'Brain', brain),
      h('label', 'Activity', activity), h('label', 'Tokens per hour', tokens), h('label', 'Turns per hour', turns)),
    actions: [['Cancel', null], ['Spawn', true, 'primary']],
  });
  if (!ok) return;
  try {
    const r = await api('/agents', {
      method: 'POST',
      body: {
        template: tpl.value, count: Number(count.value) || 1, scope: scope.value || undefined, brain: brain.value || undefined,
        activity: activity.value || undefined, tokens_per_hour: Number(tokens.value) || undefined, turns_per_hour: Number(turns.value) || undefined,
      },
    });
    toast(`Spawned ${r.spawned} ${r.template} agent${r.spawned === 1 ? '' : 's'} in ${r.channels.map((c) => '#' + c).join(', ')}`);
    reload();
  } catch (e) {
    toast(e.message, 'error');
  }
}

async function agentDetail(ctx, main, id) {
  const [a, msgs] = await Promise.all([api(`/agents/${id}`), api(`/agents/${id}/messages`, { query: { limit: 30 } }).catch(() => [])]);
  const st = a.stats || {};
  const reload = () => agentDetail(ctx, main, id);
  const kv = (k, v) => h('div.kv', h('dt', k), h('dd', v));
  mount(main, pageHeader(h('div.channel-title', h('a.crumb', { href: '#/admin/agents' }, 'Agents'), h('span.crumb-sep', '/'), h('h1', a.persona.name)), h('div.head-actions', lifecycleButtons(a, reload))),
    h('div.page-body',
      h('div.agent-hero', avatar({ kind: 'agent', display_name: a.persona.name, department: a.persona.department }, 'lg'),
        h('div', h('h2', a.persona.name, ' ', statusChip(a.status)), h('p.muted', `@${a.handle} · ${a.persona.role}, ${a.persona.seniority} · template ${a.template}`),
          h('p', deptChip(a.persona.department), ' ', labelChip(a.clearance), ' ', h('span.chip', `brain: ${a.brain}`), ' ', h('span.chip', `activity: ${a.activity}`)),
          a.persona.voice ? h('p.voice', `“${a.persona.voice}”`) : null)),
      h('div.stats', ['turns', 'posts', 'replies', 'reactions', 'tokens', 'refused'].map((k) => stat(k[0].toUpperCase() + k.slice(1), fmt.num(st[k] || 0), '', 'pulse').el)),
      h('div.dash-grid',
        h('section.card', h('h2', 'Scope and budget'), h('dl.kvs',
          kv('Scope', a.scope ? h('a', { href: `#/admin/scopes/${a.scope}` }, a.scope) : 'none'),
          kv('Tokens per hour', a.tokens_per_hour ? fmt.num(a.tokens_per_hour) : 'runtime default'),
          kv('Turns per hour', a.turns_per_hour ? fmt.num(a.turns_per_hour) : 'runtime default'),
          kv('Interests', (a.persona.interests || []).join(', ') || '—'),
          kv('Created', fmt.full(a.created_at)),
          kv('Retrievals', fmt.num(st.retrievals || 0)), kv('Stayed silent', fmt.num(st.silent || 0)))),
        h('section.card', h('h2', 'Recent messages'), msgs.length ? h('div.results.compact', msgs.map((m) => h('a.result', { href: `#/c/${m.channel_id}/m/${m.id}` },
          h('div.result-meta', h('span.muted', fmt.full(m.created_at)), labelChip(m.label), m.citations && m.citations.length ? h('span.chip', `${m.citations.length} sources`) : null),
          h('div.result-body', plain(m).slice(0, 280))))) : h('p.muted', 'No messages yet.')))));
}

// ---------------------------------------------------------------- scopes

function chipPicker(options, selected, onChange) {
  const set = new Set(selected || []);
  const el = h('div.chip-picker');
  const draw = () => mount(el, options.length ? options.map((o) => h('button.pick', {
    type: 'button', class: set.has(o) ? 'on' : '', 'aria-pressed': String(set.has(o)), dataset: { value: o },
    onclick: () => { if (set.has(o)) set.delete(o); else set.add(o); draw(); onChange(); },
  }, o)) : h('span.muted', 'none known'));
  draw();
  return { el, values: () => [...set] };
}

async function scopes(ctx, main, selected) {
  const [list, docs] = await Promise.all([api('/scopes'), api('/documents').catch(() => [])]);
  const uniq = (xs) => [...new Set(xs)].sort();
  const known = {
    collections: uniq(docs.map((d) => d.collection)),
    departments: uniq(docs.map((d) => d.department)),
    tags: uniq(docs.flatMap((d) => d.tags || [])),
  };
  const side = h('nav.scope-list', { 'aria-label': 'Scopes' },
    h('a.scope-item', { href: '#/admin/scopes', class: !selected ? 'active' : '' }, icon('plus'), 'New scope'),
    list.map((s) => h('a.scope-item', { href: `#/admin/scopes/${s.name}`, class: selected === s.name || selected === s.id ? 'active' : '' },
      icon('shield'), h('span', s.name), labelChip(s.max_label))));
  const current = list.find((s) => s.name === selected || s.id === selected) || null;
  const editor = h('div.scope-editor');
  mount(main, pageHeader(h('h1', 'Scopes')), h('div.page-body.scopes-page', side, editor));
  scopeEditor(ctx, editor, current, known, list);
}

function scopeEditor(ctx, el, scope, known, list) {
  const spec = scope || { name: '', description: '', collections: null, departments: null, tags: null, max_label: 'internal' };
  const name = h('input#scope-name', { value: spec.name, placeholder: 'e.g. dept-sales', required: true, disabled: !!scope });
  const desc = h('input#scope-desc', { value: spec.description || '', placeholder: 'What this scope is for' });
  const level = h('select#scope-level', LEVELS.map((l) => h('option', { value: l, selected: spec.max_label.split(':')[0] === l }, l)));
  const comps = h('input#scope-comps', { value: spec.max_label.split(':')[1] || '', placeholder: 'compartments, e.g. sales,finance' });
  const cols = chipPicker(known.collections, spec.collections, () => preview());
  const deps = chipPicker(known.departments, spec.departments, () => preview());
  const tags = chipPicker(known.tags, spec.tags, () => preview());
  const out = h('div.preview', { 'aria-live': 'polite' });
  const current = () => ({
    name: name.value.trim() || 'preview',
    description: desc.value,
    collections: cols.values().length ? cols.values() : null,
    departments: deps.values().length ? deps.values() : null,
    tags: tags.values().length ? tags.values() : null,
    max_label: comps.value.trim() ? `${level.value}:${comps.value.trim().replace(/\s+/g, '')}` : level.value,
  });
  let seq = 0;
  const preview = debounce(async () => {
    const mine = ++seq;
    out.classList.add('loading');
    try {
      const p = await api('/scopes/preview', { method: 'POST', body: current(), query: { samples: 4 } });
      if (mine !== seq) return;
      renderPreview(out, p);
    } catch (e) {
      if (mine === seq) mount(out, h('p.form-error', e.message));
    } finally {
      if (mine === seq) out.classList.remove('loading');
    }
  }, 250);
  for (const i of [level, comps, desc, name]) i.addEventListener('input', preview);
  const save = async () => {
    try {
      const body = current();
      if (scope) await api(`/scopes/${scope.id}`, { method: 'PUT', body: { ...body, name: scope.name } });
      else await api('/scopes', { method: 'POST', body });
      toast(`Scope ${body.name} saved`);
      ctx.go(`#/admin/scopes/${scope ? scope.name : body.name}`);
    } catch (e) {
      toast(e.message, 'error');
    }
  };
  const del = async () => {
    const ok = await dialog({ title: `Delete scope ${scope.name}?`, body: h('p', 'Principals assigned to it lose their retrieval scope.'), actions: [['Cancel', null], ['Delete', true, 'danger']] });
    if (!ok) return;
    try {
      await api(`/scopes/${scope.id}`, { method: 'DELETE' });
      ctx.go('#/admin/scopes');
    } catch (e) {
      toast(e.message, 'error');
    }
  };
  mount(el,
    h('div.card.scope-form',
      h('h2', scope ? `Scope ${scope.name}` : 'New scope'),
      h('p.muted', 'A scope is what an agent may retrieve: pick collections, departments and tags (none picked means any), and the highest label it reaches.'),
      h('div.form-grid.two', h('label', { for: 'scope-name' }, 'Name', name), h('label', { for: 'scope-desc' }, 'Description', desc),
        h('label', { for: 'scope-level' }, 'Highest label', level), h('label', { for: 'scope-comps' }, 'Compartments', comps)),
      h('div.field', h('div.field-label', 'Collections'), cols.el),
      h('div.field', h('div.field-label', 'Departments'), deps.el),
      h('div.field', h('div.field-label', 'Tags'), tags.el),
      h('div.form-actions', scope ? h('button.btn.btn-ghost.danger', { onclick: del }, 'Delete scope') : null,
        h('button.btn.btn-primary#scope-save', { onclick: save }, scope ? 'Save changes' : 'Create scope'))),
    h('section.card.preview-card', h('h2', 'Live preview'), h('p.muted', 'What this scope can see right now, within your own clearance.'), out));
  preview();
  void list;
}

function renderPreview(out, p) {
  const bars = (obj) => {
    const entries = Object.entries(obj || {}).sort((a, b) => b[1] - a[1]);
    const max = Math.max(1, ...entries.map((e) => e[1]));
    return entries.length ? entries.map(([k, v]) => {
      const fill = h('span.bar-fill');
      fill.style.width = `${(v / max) * 100}%`;
      return h('div.bar-row', h('span.bar-key', k), h('span.bar', fill), h('span.bar-val', fmt.num(v)));
    }) : h('p.muted', '—');
  };
  mount(out,
    h('div.preview-counts', h('div', h('strong#preview-docs', fmt.num(p.documents)), h('span', ' documents')), h('div', h('strong#preview-chunks', fmt.num(p.chunks)), h('span', ' chunks'))),
    h('div.preview-grid', h('div', h('h3', 'By department'), bars(p.by_department)), h('div', h('h3', 'By label'), bars(p.by_label)), h('div', h('h3', 'By collection'), bars(p.by_collection))),
    h('h3', 'Sample chunks'),
    p.samples && p.samples.length ? p.samples.map((c) => h('div.citation.sample',
      h('div.citation-head', icon('file'), h('span.citation-title', c.title || c.document_path), labelChip(c.label), deptChip(c.department)),
      h('div.citation-path', c.document_path, c.heading_path && c.heading_path.length ? ` › ${c.heading_path.join(' › ')}` : ''),
      h('blockquote.chunk-text.clamped', c.text))) : h('p.muted', 'No chunks are visible through this scope.'));
}

// ---------------------------------------------------------------- documents

async function documents(ctx, main) {
  const body = h('div');
  const load = async () => {
    const docs = await api('/documents');
    mount(body, docs.length ? table(['Document', 'Department', 'Collection', 'Chunks', 'Updated', 'Label', ''], docs.map((d) => docRow(d, load)))
      : empty('No documents yet', 'Upload Markdown, text, HTML or PDF files; they are chunked, embedded and labelled.'));
  };
  const file = h('input#doc-file', { type: 'file', accept: '.md,.markdown,.txt,.html,.htm,.pdf', hidden: true });
  file.addEventListener('change', () => file.files[0] && uploadDialog(file.files[0], load).finally(() => { file.value = ''; }));
  mount(main, pageHeader(h('h1', 'Documents'), h('div.head-actions', file, h('button.btn.btn-primary.btn-sm', { onclick: () => file.click() }, icon('plus'), 'Upload'))),
    h('div.page-body', body));
  await load();
}

function docRow(d, reload) {
  const sel = h('select.label-select', { 'aria-label': `Label of ${d.title}` }, LEVELS.map((l) => h('option', { value: l, selected: d.label.split(':')[0] === l }, l)));
  if (d.label.includes(':')) sel.prepend(h('option', { value: d.label, selected: true }, d.label));
  sel.addEventListener('change', async () => {
    try {
      await api(`/documents/${d.id}/label`, { method: 'PUT', body: { label: sel.value } });
      toast(`${d.title} reclassified as ${sel.value}`);
      reload();
    } catch (e) {
      toast(e.message, 'error');
      reload();
    }
  });
  const del = async () => {
    const ok = await dialog({ title: `Delete ${d.title}?`, body: h('p', 'Its chunks leave every scope at once. Messages that cited it keep their text.'), actions: [['Cancel', null], ['Delete', true, 'danger']] });
    if (!ok) return;
    try {
      await api(`/documents/${d.id}`, { method: 'DELETE' });
      reload();
    } catch (e) {
      toast(e.message, 'error');
    }
  };
  return h('tr', h('td', h('div.strong', d.title), h('div.muted.mono', d.path)), h('td', deptChip(d.department)), h('td', d.collection),
    h('td.num', fmt.num(d.chunks)), h('td', fmt.date(d.updated_at)), h('td', labelChip(d.label), ' ', sel),
    h('td.actions', h('button.btn.btn-sm.btn-ghost.danger', { onclick: del }, 'Delete')));
}

async function uploadDialog(f, reload) {
  const path = h('input', { value: f.name, required: true });
  const dept = h('input', { placeholder: 'from front matter or folder' });
  const label = h('select', h('option', { value: '' }, 'from front matter (default internal)'), LEVELS.map((l) => h('option', { value: l }, l)));
  const tags = h('input', { placeholder: 'comma separated' });
  const ok = await dialog({
    title: `Upload ${f.name}`,
    body: h('div.form-grid', h('label', 'Path', path), h('label', 'Department', dept), h('label', 'Label', label), h('label', 'Tags', tags)),
    actions: [['Cancel', null], ['Upload', true, 'primary']],
  });
  if (!ok) return;
  try {
    toast(`Uploading ${f.name}…`);
    await api('/documents', { method: 'POST', raw: await f.arrayBuffer(), query: { path: path.value, department: dept.value, label: label.value, tags: tags.value } });
    toast(`${f.name} ingested`);
    reload();
  } catch (e) {
    toast(e.message, 'error');
  }
}

// ---------------------------------------------------------------- users

async function users(ctx, main) {
  const body = h('div');
  const load = async () => {
    const list = (await api('/users')).filter((u) => u.kind !== 'agent');
    mount(body, table(['Person', 'Role', 'Department', 'Clearance', 'Status', ''], list.map((u) => userRow(ctx, u, load))));
  };
  mount(main, pageHeader(h('h1', 'Users & roles'), h('div.head-actions', h('button.btn.btn-primary.btn-sm', { onclick: () => createUser(load) }, icon('plus'), 'New user'))),
    h('div.page-body', h('p.muted', 'Agents are managed on the Agents page. Changing a role or clearance reconnects that person’s sessions.'), body));
  await load();
}

function userRow(ctx, u, reload) {
  const patch = async (change, what) => {
    try {
      await api(`/users/${u.id}`, { method: 'PATCH', body: change });
      toast(`${u.display_name}: ${what}`);
    } catch (e) {
      toast(e.message, 'error');
    }
    reload();
  };
  const role = h('select', { 'aria-label': `Role of ${u.handle}` }, ROLES.map((r) => h('option', { value: r, selected: u.role === r }, r)));
  role.addEventListener('change', () => patch({ role: role.value }, `role ${role.value}`));
  const editClearance = async () => {
    const input = h('input', { value: u.clearance });
    const ok = await dialog({ title: `Clearance of ${u.display_name}`, body: h('div.form-grid', h('label', 'Label (level:compartments)', input)), actions: [['Cancel', null], ['Save', true, 'primary']] });
    if (ok) patch({ clearance: input.value.trim() }, `clearance ${input.value.trim()}`);
  };
  return h('tr', { dataset: { user: u.handle } },
    h('td', h('div.agent-cell', avatar(u, 'sm'), h('div', h('div.strong', u.display_name), h('div.muted', `@${u.handle}`)))),
    h('td', u.id === ctx.me.id ? h('span.chip', u.role) : role),
    h('td', u.department ? deptChip(u.department) : h('span.muted', '—')),
    h('td', h('button.link-btn', { onclick: editClearance, title: 'Change clearance' }, labelChip(u.clearance))),
    h('td', u.active ? h('span.chip.status-active', 'active') : h('span.chip.status-retired', 'inactive')),
    h('td.actions', u.id === ctx.me.id ? h('span.muted', 'you') : h('button.btn.btn-sm.btn-ghost', { onclick: () => patch({ active: !u.active }, u.active ? 'deactivated' : 'reactivated') }, u.active ? 'Deactivate' : 'Reactivate')));
}

async function createUser(reload) {
  const handle = h('input', { required: true, placeholder: 'alice' });
  const name = h('input', { placeholder: 'Alice Example' });
  const role = h('select', ROLES.map((r) => h('option', { value: r, selected: r === 'member' }, r)));
  const dept = h('input', { placeholder: 'e.g. sales' });
  const clearance = h('input', { placeholder: 'e.g. confidential:sales (default internal)' });
  const password = h('input', { type: 'password', required: true, minlength: 8, autocomplete: 'new-password' });
  const ok = await dialog({
    title: 'New user',
    body: h('div.form-grid.two', h('label', 'Handle', handle), h('label', 'Display name', name), h('label', 'Role', role), h('label', 'Department', dept),
      h('label', 'Clearance', clearance), h('label', 'Password', password)),
    actions: [['Cancel', null], ['Create', true, 'primary']],
  });
  if (!ok) return;
  try {
    await api('/users', { method: 'POST', body: { handle: handle.value.trim(), display_name: name.value || undefined, role: role.value, department: dept.value || undefined, clearance: clearance.value || undefined, password: password.value } });
    toast(`${handle.value} created`);
    reload();
  } catch (e) {
    toast(e.message, 'error');
  }
}
