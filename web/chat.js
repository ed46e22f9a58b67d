// Employees' views: the sidebar of channels and direct messages with unread
// counts, the channel view (live messages, scroll back, jump to a message,
// reactions, edit and delete, typing), the thread pane, agent messages with
// expandable citations, search, mentions and the channel browser.

import { api } from './api.js';
import { h, mount, icon, avatar, labelChip, deptChip, safeHtml, fmt, toast, dialog, empty, debounce } from './dom.js';
import { pageHeader } from './app.js';

const PAGE = 50;
const QUICK = ['👍', '❤️', '😄', '🎉', '👀', '🚀', '✅', '⚠️'];

let view = null; // the open channel
let thread = null; // the open thread pane

// ---------------------------------------------------------------- channels

/** Load the channel list, follow every channel the user belongs to, and listen to events. */
export async function loadChannels(ctx) {
  const list = await api('/channels');
  ctx.channels.clear();
  for (const c of list) ctx.channels.set(c.id, c);
  for (const c of list) if (c.is_member && !c.archived) ctx.live.subscribe(c.id, c.last_seq);
  if (!ctx.chatListening) {
    ctx.chatListening = true;
    ctx.live.on((ev) => onEvent(ctx, ev));
  }
  ctx.refreshSidebar();
}

/** The channel to open first: #war-room, else the first one the user belongs to. */
export function defaultChannel(ctx) {
  const mine = [...ctx.channels.values()].filter((c) => c.is_member && !c.archived);
  return mine.find((c) => c.name === 'war-room') || mine.find((c) => c.visibility !== 'direct') || mine[0] || null;
}

/** The name shown for a channel (the other people, for direct messages). */
export function channelName(ctx, c) {
  if (c.visibility !== 'direct') return c.name;
  const handles = c.name.replace(/^dm:/, '').split(',').filter((x) => x !== ctx.me.handle);
  return handles.join(', ') || ctx.me.handle;
}

function channelIcon(c) {
  if (c.visibility === 'private') return icon('lock');
  if (c.visibility === 'direct') return h('span.dm-dot');
  return icon('hash');
}

/** Draw the sidebar's channel and DM lists. */
export function renderSidebar(ctx, channelList, dmList) {
  const mine = [...ctx.channels.values()].filter((c) => c.is_member && !c.archived);
  const item = (c) => {
    const unread = view && view.cid === c.id ? 0 : c.unread;
    return h('a.nav-item.channel-item', {
      href: `#/c/${c.id}`,
      dataset: { nav: `#/c/${c.id}`, channel: c.name },
      class: unread > 0 ? 'unread' : '',
    }, channelIcon(c), h('span.nav-text', channelName(ctx, c)),
    unread > 0 ? h('span.badge', { 'aria-label': `${unread} unread` }, unread > 99 ? '99+' : String(unread)) : null);
  };
  const byName = (a, b) => channelName(ctx, a).localeCompare(channelName(ctx, b));
  mount(channelList, mine.filter((c) => c.visibility !== 'direct').sort(byName).map(item));
  const dms = mine.filter((c) => c.visibility === 'direct').sort(byName).map(item);
  mount(dmList, dms.length ? dms : h('p.nav-note', 'No conversations yet'));
  const hash = location.hash;
  for (const a of [...channelList.children, ...dmList.children]) {
    if (a.dataset && a.dataset.nav) a.classList.toggle('active', hash === a.dataset.nav || hash.startsWith(a.dataset.nav + '/'));
  }
}

// ---------------------------------------------------------------- events

function onEvent(ctx, ev) {
  const c = ev.channel_id ? ctx.channels.get(ev.channel_id) : null;
  switch (ev.type) {
    case 'channel.added':
    case 'channel.created': {
      const ch = ev.channel;
      if (!ch) return;
      const known = ctx.channels.get(ch.id);
      ctx.channels.set(ch.id, { ...known, ...ch, is_member: ch.is_member || known?.is_member || ev.type === 'channel.added' });
      if (ev.type === 'channel.added') ctx.live.subscribe(ch.id, ch.last_seq);
      ctx.refreshSidebar();
      return;
    }
    case 'message.created': {
      const m = ev.message;
      if (c) c.last_seq = Math.max(c.last_seq, ev.seq);
      if (view && view.cid === ev.channel_id) {
        receiveInView(ctx, m);
      } else if (c && m.author.id !== ctx.me.id) {
        c.unread = (c.unread || 0) + 1;
        ctx.refreshSidebar();
      }
      if (thread && (m.thread_root === thread.root || m.id === thread.root)) addToThread(ctx, m);
      return;
    }
    case 'message.edited':
      if (ev.message) updateMessage(ctx, edited(ev.message));
      return;
    case 'message.deleted':
      updateMessage(ctx, { id: ev.message_id, deleted: true, body: '', body_html: '' });
      return;
    case 'reaction.added':
    case 'reaction.removed':
      react(ctx, ev.message_id, ev.emoji, ev.user_id, ev.type === 'reaction.added');
      return;
    case 'typing':
      if (view && view.cid === ev.channel_id && ev.user_id !== ctx.me.id) showTyping(ev.handle);
      return;
    case 'member.joined':
    case 'member.left':
      if (ev.user_id === ctx.me.id) loadChannels(ctx).catch(() => {});
      return;
    case 'channel.updated':
      if (c) c.topic = ev.topic;
      if (view && view.cid === ev.channel_id) view.topicEl.textContent = ev.topic || '';
      return;
    case 'resync':
      if (view && view.cid === ev.channel_id) reloadView(ctx);
      return;
    default:
  }
}

// ---------------------------------------------------------------- messages

function isMine(ctx, m) {
  return m.author && m.author.id === ctx.me.id;
}

function authorLine(m) {
  const a = m.author;
  const agent = a.kind === 'agent';
  return h('div.msg-head',
    h('span.msg-author', { title: `@${a.handle}` }, a.display_name || a.handle),
    agent ? h('span.chip.agent-badge', { title: 'AI agent' }, icon('bot'), 'Agent') : null,
    agent ? deptChip(a.department) : null,
    agent && m.brain ? h('span.brain', { title: 'Which brain wrote this message' }, m.brain === 'extractive' ? 'quotes evidence' : `${m.brain} model`) : null,
    h('a.msg-time', { href: `#/c/${m.channel_id}/m/${m.id}`, title: fmt.full(m.created_at) }, fmt.time(m.created_at)),
    m.edited_at && !m.deleted ? h('span.msg-edited', { title: fmt.full(m.edited_at) }, '(edited)') : null);
}

function bodyEl(ctx, m) {
  if (m.deleted) return h('div.msg-body.deleted', 'This message was deleted.');
  return markMentions(ctx, safeHtml(h('div.msg-body.prose'), m.body_html || ''));
}

// Wrap @handles in the rendered text (outside code) so mentions stand out, one's own most.
function markMentions(ctx, el) {
  const walker = document.createTreeWalker(el, NodeFilter.SHOW_TEXT);
  const hits = [];
  for (let n = walker.nextNode(); n; n = walker.nextNode()) {
    if (/@[a-z0-9_.-]/i.test(n.textContent) && !n.parentElement.closest('code, pre, a')) hits.push(n);
  }
  for (const n of hits) {
    const parts = n.textContent.split(/(@[a-z0-9_.-]+)/gi);
    n.replaceWith(...parts.map((p) => (/^@[a-z0-9_.-]+$/i.test(p)
      ? h('span.mention', { class: p.slice(1).toLowerCase() === ctx.me.handle ? 'me' : '' }, p)
      : document.createTextNode(p))));
  }
  return el;
}

function reactionBar(ctx, m) {
  const bar = h('div.reactions');
  for (const r of m.reactions || []) {
    if (!r.count) continue;
    const mine = r.user_ids.includes(ctx.me.id);
    bar.append(h('button.reaction', {
      class: mine ? 'mine' : '',
      'aria-pressed': String(mine),
      title: mine ? 'Remove your reaction' : 'React',
      dataset: { emoji: r.emoji },
      onclick: () => toggleReaction(ctx, m, r.emoji),
    }, h('span.reaction-emoji', r.emoji), h('span.reaction-count', String(r.count))));
  }
  return bar;
}

async function toggleReaction(ctx, m, emoji) {
  const r = (m.reactions || []).find((x) => x.emoji === emoji);
  const on = !(r && r.user_ids.includes(ctx.me.id));
  try {
    await api(`/messages/${m.id}/reactions/${encodeURIComponent(emoji)}`, { method: on ? 'PUT' : 'DELETE' });
    react(ctx, m.id, emoji, ctx.me.id, on);
  } catch (e) {
    toast(e.message, 'error');
  }
}

function picker(ctx, m, anchor) {
  document.querySelectorAll('.emoji-picker').forEach((p) => p.remove());
  const pop = h('div.emoji-picker', { role: 'menu' }, QUICK.map((e) =>
    h('button', { role: 'menuitem', title: `React ${e}`, onclick: () => { pop.remove(); toggleReaction(ctx, m, e); } }, e)));
  anchor.closest('.msg').append(pop);
  const away = (ev) => {
    if (!pop.contains(ev.target)) {
      pop.remove();
      document.removeEventListener('mousedown', away);
    }
  };
  setTimeout(() => document.addEventListener('mousedown', away), 0);
  pop.querySelector('button').focus();
}

function citationsEl(m) {
  if (!m.citations || !m.citations.length) return null;
  const list = h('div.citations-list', { hidden: true });
  const n = m.citations.length;
  const toggle = h('button.citations-toggle', {
    'aria-expanded': 'false',
    onclick: async () => {
      const open = list.hidden;
      list.hidden = !open;
      toggle.setAttribute('aria-expanded', String(open));
      toggle.classList.toggle('open', open);
      if (open && !list.dataset.loaded) {
        list.dataset.loaded = '1';
        mount(list, h('p.muted', 'Loading sources…'));
        try {
          const cited = await api(`/messages/${m.id}/citations`);
          mount(list, cited.map(citationCard));
        } catch (e) {
          mount(list, h('p.muted', `Sources could not be loaded: ${e.message}`));
        }
      }
    },
  }, icon('book'), `${n} source${n === 1 ? '' : 's'}`, icon('chevron', 'chev'));
  return h('div.citations', toggle, list);
}

function citationCard(c) {
  const text = h('blockquote.chunk-text', c.redacted ? h('em', 'Withheld: you are not cleared for this document’s label.') : c.text);
  const long = !c.redacted && c.text && c.text.length > 360;
  if (long) text.classList.add('clamped');
  return h('div.citation', { dataset: { chunk: c.chunk_id } },
    h('div.citation-head', icon('file'), h('span.citation-title', c.title || c.document_path), labelChip(c.label), deptChip(c.department)),
    h('div.citation-path', c.document_path, c.heading_path && c.heading_path.length ? ` › ${c.heading_path.join(' › ')}` : ''),
    text,
    long ? h('button.link-btn', { onclick: (e) => { text.classList.toggle('clamped'); e.target.textContent = text.classList.contains('clamped') ? 'Show the whole chunk' : 'Show less'; } }, 'Show the whole chunk') : null);
}

/** One message. `where` is 'channel' or 'thread'. */
function messageEl(ctx, m, where = 'channel') {
  const el = h('article.msg', {
    dataset: { id: m.id, author: m.author.id, time: m.created_at, seq: String(m.seq) },
    class: `${m.author.kind === 'agent' ? 'from-agent' : ''} ${m.deleted ? 'is-deleted' : ''}`,
    tabindex: '-1',
  });
  fillMessage(ctx, el, m, where);
  return el;
}

function fillMessage(ctx, el, m, where) {
  el._m = m;
  const channel = ctx.channels.get(m.channel_id);
  const showLabel = m.label && channel && m.label !== channel.label;
  const actions = m.deleted ? null : h('div.msg-actions', { role: 'toolbar', 'aria-label': 'Message actions' },
    h('button.icon-btn', { title: 'Add reaction', 'aria-label': 'Add reaction', onclick: (e) => picker(ctx, m, e.currentTarget) }, icon('smile')),
    where === 'channel' ? h('button.icon-btn', { title: 'Reply in thread', 'aria-label': 'Reply in thread', onclick: () => openThread(ctx, m.id) }, icon('thread')) : null,
    isMine(ctx, m) ? h('button.icon-btn', { title: 'Edit', 'aria-label': 'Edit message', onclick: () => startEdit(ctx, el) }, icon('edit')) : null,
    isMine(ctx, m) || ctx.isAdmin ? h('button.icon-btn.danger', { title: 'Delete', 'aria-label': 'Delete message', onclick: () => confirmDelete(m) }, icon('trash')) : null);
  const replies = where === 'channel' && m.reply_count > 0
    ? h('button.replies', { onclick: () => openThread(ctx, m.id) }, icon('thread'), `${m.reply_count} ${m.reply_count === 1 ? 'reply' : 'replies'}`)
    : null;
  el.classList.toggle('is-deleted', !!m.deleted);
  mount(el,
    avatar(m.author),
    h('div.msg-main',
      authorLine(m),
      showLabel ? h('div.msg-label', labelChip(m.label)) : null,
      bodyEl(ctx, m),
      m.edited_at && !m.deleted ? h('span.msg-edited.inline', { title: fmt.full(m.edited_at) }, '(edited)') : null,
      m.deleted ? null : citationsEl(m),
      reactionBar(ctx, m),
      replies),
    actions);
}

function allMessageEls(id) {
  return document.querySelectorAll(`.msg[data-id="${CSS.escape(id)}"]`);
}

// What an edit changes: events and edit responses carry the message without its
// reactions, replies or citations, which must not be reset.
function edited(m) {
  const { id, body, body_html, edited_at, deleted, label } = m;
  return { id, body, body_html, edited_at, deleted, label };
}

function updateMessage(ctx, patch) {
  for (const el of allMessageEls(patch.id)) {
    const m = { ...el._m, ...patch };
    if (patch.deleted) m.reactions = [];
    if (!patch.citations && el._m) m.citations = el._m.citations;
    if (patch.reply_count === undefined && el._m) m.reply_count = el._m.reply_count;
    if (patch.reactions === undefined && el._m && !patch.deleted) m.reactions = el._m.reactions;
    fillMessage(ctx, el, m, el.closest('.pane') ? 'thread' : 'channel');
  }
}

function react(ctx, id, emoji, userId, on) {
  for (const el of allMessageEls(id)) {
    const m = el._m;
    const rs = (m.reactions || []).map((r) => ({ ...r, user_ids: [...r.user_ids] }));
    let r = rs.find((x) => x.emoji === emoji);
    if (!r) {
      r = { emoji, count: 0, user_ids: [] };
      rs.push(r);
    }
    const has = r.user_ids.includes(userId);
    if (on && !has) r.user_ids.push(userId);
    if (!on && has) r.user_ids = r.user_ids.filter((u) => u !== userId);
    r.count = r.user_ids.length;
    m.reactions = rs.filter((x) => x.count > 0);
    el.querySelector('.reactions').replaceWith(reactionBar(ctx, m));
  }
}

function startEdit(ctx, el) {
  const m = el._m;
  const body = el.querySelector('.msg-body');
  const ta = h('textarea.edit-box', { 'aria-label': 'Edit message', rows: 2 }, m.body);
  const cancel = () => fillMessage(ctx, el, m, el.closest('.pane') ? 'thread' : 'channel');
  const save = async () => {
    const text = ta.value.trim();
    if (!text || text === m.body) return cancel();
    try {
      const v = await api(`/messages/${m.id}`, { method: 'PATCH', body: { body: text } });
      updateMessage(ctx, edited(v));
    } catch (e) {
      toast(e.message, 'error');
    }
  };
  ta.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && !e.shiftKey) {
      e.preventDefault();
      save();
    } else if (e.key === 'Escape') {
      e.preventDefault();
      e.stopPropagation();
      cancel();
    }
  });
  body.replaceWith(h('div.edit-wrap', ta, h('div.edit-hint', 'Enter to save · Esc to cancel',
    h('button.btn.btn-sm', { onclick: cancel }, 'Cancel'), h('button.btn.btn-sm.btn-primary', { onclick: save }, 'Save'))));
  ta.focus();
  ta.setSelectionRange(ta.value.length, ta.value.length);
}

async function confirmDelete(m) {
  const ok = await dialog({
    title: 'Delete this message?',
    body: h('p', 'It will be removed for everyone in the channel. This cannot be undone.'),
    actions: [['Cancel', null], ['Delete', true, 'danger']],
  });
  if (!ok) return;
  try {
    await api(`/messages/${m.id}`, { method: 'DELETE' });
  } catch (e) {
    toast(e.message, 'error');
  }
}

/** Day dividers and grouping of consecutive messages by one author. */
function regroup(list) {
  list.querySelectorAll('.day-divider').forEach((d) => d.remove());
  let prev = null;
  for (const el of [...list.querySelectorAll(':scope > .msg')]) {
    const t = new Date(el.dataset.time);
    const newDay = !prev || new Date(prev.dataset.time).toDateString() !== t.toDateString();
    if (newDay) el.before(h('div.day-divider', { role: 'separator' }, h('span', fmt.day(el.dataset.time))));
    const grouped = !newDay && prev.dataset.author === el.dataset.author && t - new Date(prev.dataset.time) < 5 * 60000
      && !prev.classList.contains('is-deleted');
    el.classList.toggle('grouped', grouped);
    prev = el;
  }
}

// ---------------------------------------------------------------- channel view

export function leaveChannel(ctx) {
  if (view) clearInterval(view.presenceTimer);
  if (view && view.transient) ctx.live.unsubscribe(view.cid);
  view = null;
}

/** Show a channel; `opts.message` jumps to (and highlights) a message, `opts.thread` opens a thread. */
export async function showChannel(ctx, main, cid, opts = {}) {
  let c = ctx.channels.get(cid);
  if (!c) {
    c = await api(`/channels/${cid}`);
    ctx.channels.set(cid, c);
  }
  if (!view || view.cid !== cid) {
    leaveChannel(ctx);
    thread = null;
    ctx.closePane();
    buildView(ctx, main, c);
    if (!c.is_member) {
      view.transient = true;
      ctx.live.subscribe(cid, c.last_seq);
    }
    if (opts.message) await jumpTo(ctx, opts.message);
    else await loadLatest(ctx);
  } else if (opts.message) {
    await jumpTo(ctx, opts.message);
  }
  c.unread = 0;
  ctx.refreshSidebar();
  document.title = `${c.visibility === 'direct' ? '' : '#'}${channelName(ctx, c)} · Warroom`;
  if (opts.thread) openThread(ctx, opts.thread);
  markRead(ctx);
}

function buildView(ctx, main, c) {
  const list = h('div.messages', { role: 'log', 'aria-live': 'polite', 'aria-label': 'Messages' });
  const scroller = h('div.scroller', h('div.history-top'), list);
  const typing = h('div.typing', { 'aria-live': 'polite' });
  const latest = h('button.jump-latest', { hidden: true, onclick: () => loadLatest(ctx) }, icon('arrowDown'), 'Jump to latest');
  const topicEl = h('span.topic', c.topic || '');
  const presenceEl = h('span', 'Members');
  const members = h('button.btn.btn-ghost.btn-sm.members-btn', { onclick: () => showMembers(ctx, c) }, icon('users'), presenceEl);
  const composer = c.is_member && !c.archived ? composerEl(ctx, c.id, null) : joinBar(ctx, c);
  mount(main,
    pageHeader(
      h('div.channel-title', channelIcon(c), h('h1', channelName(ctx, c)), labelChip(c.label)),
      topicEl,
      h('div.head-actions', members, h('a.icon-btn', { href: '#/search', title: 'Search (Ctrl+K)', 'aria-label': 'Search' }, icon('search')))),
    h('div.channel-body', scroller, latest, typing, composer));
  view = { cid: c.id, c, list, scroller, typing, latest, topicEl, presenceEl, online: new Set(), msgs: new Map(), oldest: null, newest: null, hasOlder: false, hasNewer: false, loading: false, typers: new Map() };
  scroller.addEventListener('scroll', () => onScroll(ctx));
  refreshPresence();
  view.presenceTimer = setInterval(refreshPresence, 30000);
}

function joinBar(ctx, c) {
  if (c.archived) return h('div.join-bar', 'This channel is archived.');
  return h('div.join-bar', h('span', `You are reading #${c.name}.`),
    h('button.btn.btn-primary', {
      onclick: async () => {
        try {
          const v = await api(`/channels/${c.id}/join`, { method: 'POST' });
          ctx.channels.set(c.id, { ...c, ...v, is_member: true });
          if (view) view.transient = false;
          ctx.live.subscribe(c.id, v.last_seq);
          view = null;
          ctx.refreshSidebar();
          ctx.go(`#/c/${c.id}`);
        } catch (e) {
          toast(e.message, 'error');
        }
      },
    }, 'Join channel'));
}

async function fetchPage(cid, query) {
  return api(`/channels/${cid}/messages`, { query: { top_level: true, limit: PAGE, ...query } });
}

function renderPage(ctx, msgs, where) {
  const els = msgs.map((m) => {
    const el = messageEl(ctx, m);
    view.msgs.set(m.id, el);
    return el;
  });
  if (where === 'top') view.list.prepend(...els);
  else view.list.append(...els);
  for (const m of msgs) {
    if (view.oldest === null || m.seq < view.oldest) view.oldest = m.seq;
    if (view.newest === null || m.seq > view.newest) view.newest = m.seq;
  }
  regroup(view.list);
}

async function loadLatest(ctx) {
  const v = view;
  v.loading = true;
  const page = await fetchPage(v.cid, {});
  if (view !== v) return;
  v.list.replaceChildren();
  v.msgs.clear();
  v.oldest = v.newest = null;
  v.hasOlder = page.length === PAGE;
  v.hasNewer = false;
  v.latest.hidden = true;
  renderPage(ctx, page, 'bottom');
  v.scroller.querySelector('.history-top').replaceChildren(v.hasOlder ? h('div.loading-more', 'Loading earlier messages…') : channelIntro(ctx, v.c));
  scrollToBottom();
  v.loading = false;
}

async function reloadView(ctx) {
  if (view) await loadLatest(ctx);
}

function channelIntro(ctx, c) {
  return h('div.channel-intro',
    h('div.intro-mark', channelIcon(c)),
    h('h2', c.visibility === 'direct' ? `Your conversation with ${channelName(ctx, c)}` : `Welcome to #${c.name}`),
    h('p', c.topic || (c.visibility === 'direct' ? 'Direct messages are private to the two of you.' : 'This is the very beginning of the channel.')),
    h('p.muted', 'Messages here may carry up to the label ', labelChip(c.label), '.'));
}

function scrollToBottom() {
  if (view) view.scroller.scrollTop = view.scroller.scrollHeight;
}

function nearBottom() {
  const s = view.scroller;
  return s.scrollHeight - s.scrollTop - s.clientHeight < 120;
}

async function onScroll(ctx) {
  const v = view;
  if (!v || v.loading) return;
  const s = v.scroller;
  if (s.scrollTop < 400 && v.hasOlder) {
    v.loading = true;
    try {
      const page = await fetchPage(v.cid, { before_seq: v.oldest });
      if (view !== v) return;
      const before = s.scrollHeight;
      v.hasOlder = page.length === PAGE;
      renderPage(ctx, page.filter((m) => !v.msgs.has(m.id)), 'top');
      if (!v.hasOlder) s.querySelector('.history-top').replaceChildren(channelIntro(ctx, v.c));
      s.scrollTop += s.scrollHeight - before;
    } finally {
      v.loading = false;
    }
  } else if (v.hasNewer && s.scrollHeight - s.scrollTop - s.clientHeight < 400) {
    v.loading = true;
    try {
      const page = await fetchPage(v.cid, { after_seq: v.newest });
      if (view !== v) return;
      v.hasNewer = page.length === PAGE;
      v.latest.hidden = !v.hasNewer;
      renderPage(ctx, page.filter((m) => !v.msgs.has(m.id)), 'bottom');
    } finally {
      v.loading = false;
    }
  }
  if (!v.hasNewer && nearBottom()) markRead(ctx);
}

/** Load the page around a message and highlight it (evidence links land here). */
async function jumpTo(ctx, mid) {
  const v = view;
  let target = await api(`/messages/${mid}`);
  const highlight = mid;
  let threadRoot = null;
  if (target.thread_root) {
    threadRoot = target.thread_root;
    target = await api(`/messages/${target.thread_root}`);
  }
  if (!v.msgs.has(target.id)) {
    v.loading = true;
    const [before, after] = await Promise.all([
      fetchPage(v.cid, { before_seq: target.seq + 1, limit: 25 }),
      fetchPage(v.cid, { after_seq: target.seq, limit: 25 }),
    ]);
    if (view !== v) return;
    v.list.replaceChildren();
    v.msgs.clear();
    v.oldest = v.newest = null;
    v.hasOlder = before.length === 25;
    v.hasNewer = after.length === 25;
    v.latest.hidden = !v.hasNewer;
    renderPage(ctx, [...before, ...after], 'bottom');
    v.scroller.querySelector('.history-top').replaceChildren(v.hasOlder ? h('div.loading-more', 'Loading earlier messages…') : channelIntro(ctx, v.c));
    v.loading = false;
  }
  const el = v.msgs.get(target.id);
  if (el) {
    el.scrollIntoView({ block: 'center' });
    flash(el);
  }
  if (threadRoot) await openThread(ctx, threadRoot, highlight);
}

function flash(el) {
  document.querySelectorAll('.msg.highlight').forEach((x) => x.classList.remove('highlight'));
  el.classList.add('highlight');
  el.focus({ preventScroll: true });
}

function receiveInView(ctx, m) {
  const v = view;
  if (m.thread_root) {
    const root = v.msgs.get(m.thread_root);
    if (root) updateMessage(ctx, { id: m.thread_root, reply_count: (root._m.reply_count || 0) + 1 });
    return;
  }
  if (v.msgs.has(m.id) || v.hasNewer) return;
  const stick = nearBottom() || isMine(ctx, m);
  renderPage(ctx, [m], 'bottom');
  if (m.author.kind === 'agent' && (!m.citations || !m.citations.length)) fillCitations(ctx, m.id);
  clearTyping(m.author.handle);
  if (stick) scrollToBottom();
  markRead(ctx);
}

// Live events carry the message without its citations; fetch them once for agents' posts.
async function fillCitations(ctx, id) {
  try {
    const full = await api(`/messages/${id}`);
    if (full.citations && full.citations.length) updateMessage(ctx, { id, citations: full.citations });
  } catch {
    // The message stays shown without its sources.
  }
}

const markRead = debounce(async (ctx) => {
  if (!view || view.hasNewer) return;
  const c = ctx.channels.get(view.cid);
  if (!c || !c.is_member || c.last_seq <= (c.last_read_seq || 0)) return;
  try {
    await api(`/channels/${c.id}/read`, { method: 'POST', body: { seq: c.last_seq } });
    c.last_read_seq = c.last_seq;
  } catch {
    // Unread counts are best effort.
  }
}, 600);

/** Members and who of them is connected now (presence). */
async function refreshPresence() {
  const v = view;
  if (!v) return;
  try {
    const [members, p] = await Promise.all([api(`/channels/${v.cid}/members`), api(`/channels/${v.cid}/presence`)]);
    if (view !== v) return;
    v.online = new Set(p.online);
    const people = members.filter((m) => m.kind !== 'agent').length;
    mount(v.presenceEl, `${members.length}`, h('span.presence-online', h('i.online-dot'), `${v.online.size}`));
    v.presenceEl.parentElement.title = `${members.length} members (${people} people, ${members.length - people} agents), ${v.online.size} online now`;
  } catch {
    // Presence is a hint; the channel works without it.
  }
}

function showTyping(handle) {
  const v = view;
  clearTimeout(v.typers.get(handle));
  v.typers.set(handle, setTimeout(() => clearTyping(handle), 5000));
  renderTyping();
}

function clearTyping(handle) {
  if (!view || !view.typers.has(handle)) return;
  clearTimeout(view.typers.get(handle));
  view.typers.delete(handle);
  renderTyping();
}

function renderTyping() {
  const names = [...view.typers.keys()];
  mount(view.typing, names.length
    ? [h('span.typing-dots', h('i'), h('i'), h('i')), h('span', names.length === 1 ? `${names[0]} is typing…` : `${names.slice(0, -1).join(', ')} and ${names.at(-1)} are typing…`)]
    : []);
}

// ---------------------------------------------------------------- composer

// Waits before retrying a post that may not have arrived: the network failed,
// the server is restarting (502-504) or asked to slow down (429).
const POST_RETRY_MS = [500, 1500, 4000];

/** Post a message, retrying transient failures with the same body and idempotency key. */
async function postWithRetries(cid, body) {
  for (let attempt = 0; ; attempt++) {
    try {
      return await api(`/channels/${cid}/messages`, { method: 'POST', body });
    } catch (e) {
      const transient = e.status === undefined || [429, 502, 503, 504].includes(e.status);
      if (!transient || attempt >= POST_RETRY_MS.length) throw e;
      await new Promise((resolve) => setTimeout(resolve, POST_RETRY_MS[attempt]));
    }
  }
}

function composerEl(ctx, cid, threadRoot) {
  const c = ctx.channels.get(cid);
  const ta = h('textarea.composer-input', {
    rows: 1,
    'aria-label': threadRoot ? 'Reply in thread' : 'Message',
    placeholder: threadRoot ? 'Reply…' : `Message ${c.visibility === 'direct' ? channelName(ctx, c) : '#' + c.name}`,
  });
  const send = h('button.send-btn', { type: 'submit', 'aria-label': 'Send', title: 'Send (Enter)' }, icon('send'));
  const suggest = h('div.mention-suggest', { hidden: true, role: 'listbox' });
  let lastTyping = 0;
  let members = null;
  const autosize = () => {
    ta.style.height = 'auto';
    ta.style.height = `${Math.min(ta.scrollHeight, 220)}px`;
  };
  // One idempotency key per message, kept across its retries (automatic ones,
  // and the user sending the text put back after a failure), so a post the
  // server stored but whose answer was lost is not stored twice.
  const unsent = new Map(); // body → key, until the server acknowledges it
  const submit = async () => {
    const body = ta.value.trim();
    if (!body) return;
    ta.value = '';
    autosize();
    if (!unsent.has(body)) unsent.set(body, crypto.randomUUID());
    try {
      const m = await postWithRetries(cid, { body, thread_root: threadRoot || undefined, idempotency_key: unsent.get(body) });
      unsent.delete(body);
      if (threadRoot) addToThread(ctx, m);
      else if (view && view.cid === cid) receiveInView(ctx, m);
    } catch (e) {
      ta.value = body;
      toast(e.message, 'error');
    }
  };
  const mentionAt = () => {
    const upto = ta.value.slice(0, ta.selectionStart);
    const m = /(^|\s)@([a-z0-9_.-]*)$/i.exec(upto);
    return m ? m[2].toLowerCase() : null;
  };
  const pick = (handle) => {
    const pos = ta.selectionStart;
    const upto = ta.value.slice(0, pos).replace(/@([a-z0-9_.-]*)$/i, `@${handle} `);
    ta.value = upto + ta.value.slice(pos);
    ta.setSelectionRange(upto.length, upto.length);
    suggest.hidden = true;
    ta.focus();
  };
  const updateSuggest = async () => {
    const q = mentionAt();
    if (q === null) {
      suggest.hidden = true;
      return;
    }
    if (!members) members = await api(`/channels/${cid}/members`).catch(() => []);
    const hits = members.filter((u) => u.handle.startsWith(q) || (u.display_name || '').toLowerCase().includes(q)).slice(0, 6);
    if (!hits.length) {
      suggest.hidden = true;
      return;
    }
    mount(suggest, hits.map((u, i) => h('button.suggest-item', { role: 'option', class: i === 0 ? 'active' : '', dataset: { handle: u.handle }, onmousedown: (e) => { e.preventDefault(); pick(u.handle); } },
      avatar(u, 'xs'), h('span', u.display_name), h('span.muted', `@${u.handle}`), u.kind === 'agent' ? h('span.chip.agent-badge', 'Agent') : null)));
    suggest.hidden = false;
  };
  ta.addEventListener('input', () => {
    autosize();
    updateSuggest();
    if (Date.now() - lastTyping > 3000 && ta.value.trim()) {
      lastTyping = Date.now();
      ctx.live.typing(cid);
    }
  });
  ta.addEventListener('keydown', (e) => {
    if (!suggest.hidden) {
      const items = [...suggest.children];
      const i = items.findIndex((x) => x.classList.contains('active'));
      if (e.key === 'ArrowDown' || e.key === 'ArrowUp') {
        e.preventDefault();
        const j = (i + (e.key === 'ArrowDown' ? 1 : items.length - 1)) % items.length;
        items.forEach((x, k) => x.classList.toggle('active', k === j));
        return;
      }
      if (e.key === 'Enter' || e.key === 'Tab') {
        e.preventDefault();
        pick(items[Math.max(i, 0)].dataset.handle);
        return;
      }
      if (e.key === 'Escape') {
        suggest.hidden = true;
        return;
      }
    }
    if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      submit();
    } else if (e.key === 'ArrowUp' && !ta.value && !e.altKey) {
      const scope = threadRoot ? ctx.shell.pane : view && view.list;
      const mine = scope ? [...scope.querySelectorAll('.msg')].filter((el) => el._m && isMine(ctx, el._m) && !el._m.deleted) : [];
      if (mine.length) {
        e.preventDefault();
        startEdit(ctx, mine.at(-1));
      }
    }
  });
  ta.addEventListener('blur', () => setTimeout(() => { suggest.hidden = true; }, 150));
  const form = h('form.composer', { onsubmit: (e) => { e.preventDefault(); submit(); } }, suggest, ta, send);
  if (!threadRoot) setTimeout(() => ta.focus(), 0);
  return h('div.composer-wrap', form, h('div.composer-hint', h('kbd', 'Enter'), ' to send · ', h('kbd', 'Shift+Enter'), ' new line · ', h('kbd', '@'), ' to mention · ', h('kbd', '↑'), ' to edit your last message · ', h('kbd', 'Alt+↑↓'), ' to switch channels'));
}

// ---------------------------------------------------------------- threads

async function openThread(ctx, rootId, highlight) {
  const pane = ctx.shell.pane;
  const msgs = await api(`/messages/${rootId}/thread`);
  const root = msgs[0];
  if (!root) return;
  const c = ctx.channels.get(root.channel_id);
  const list = h('div.thread-list');
  thread = { root: root.id, list, cid: root.channel_id };
  mount(pane,
    h('header.pane-head', h('div', h('h2', 'Thread'), h('span.muted', c ? (c.visibility === 'direct' ? channelName(ctx, c) : `#${c.name}`) : '')),
      h('button.icon-btn', { 'aria-label': 'Close thread', title: 'Close (Esc)', onclick: () => { thread = null; ctx.closePane(); } }, icon('x'))),
    h('div.pane-scroll', list),
    c && c.is_member ? composerEl(ctx, root.channel_id, root.id) : null);
  list.append(messageEl(ctx, root, 'thread'),
    h('div.thread-divider', h('span', `${msgs.length - 1} ${msgs.length === 2 ? 'reply' : 'replies'}`)),
    ...msgs.slice(1).map((m) => messageEl(ctx, m, 'thread')));
  ctx.openPane();
  const target = highlight && list.querySelector(`.msg[data-id="${CSS.escape(highlight)}"]`);
  if (target) {
    target.scrollIntoView({ block: 'center' });
    flash(target);
  } else {
    pane.querySelector('.pane-scroll').scrollTop = 1e9;
    const input = pane.querySelector('textarea');
    if (input) input.focus();
  }
}

function addToThread(ctx, m) {
  if (!thread || thread.list.querySelector(`.msg[data-id="${CSS.escape(m.id)}"]`)) return;
  if (m.id === thread.root) return;
  thread.list.append(messageEl(ctx, m, 'thread'));
  const n = thread.list.querySelectorAll('.msg').length - 1;
  const d = thread.list.querySelector('.thread-divider span');
  if (d) d.textContent = `${n} ${n === 1 ? 'reply' : 'replies'}`;
  const s = ctx.shell.pane.querySelector('.pane-scroll');
  s.scrollTop = s.scrollHeight;
}

async function showMembers(ctx, c) {
  const pane = ctx.shell.pane;
  thread = null;
  const members = await api(`/channels/${c.id}/members`);
  const people = members.filter((m) => m.kind !== 'agent');
  const agents = members.filter((m) => m.kind === 'agent');
  const online = view && view.cid === c.id ? view.online : new Set();
  const row = (u) => h('div.member', { class: online.has(u.id) ? 'is-online' : '' }, h('span.avatar-wrap', avatar(u, 'sm'), online.has(u.id) ? h('i.online-dot', { title: 'Online' }) : null),
    h('div', h('div.member-name', u.display_name), h('div.muted', `@${u.handle}`)),
    u.kind === 'agent' ? deptChip(u.department) : null);
  mount(pane,
    h('header.pane-head', h('div', h('h2', 'Members'), h('span.muted', `${members.length} in ${c.visibility === 'direct' ? 'this conversation' : '#' + c.name}`)),
      h('button.icon-btn', { 'aria-label': 'Close', onclick: () => ctx.closePane() }, icon('x'))),
    h('div.pane-scroll',
      h('h3.pane-sub', `People · ${people.length}`), people.map(row),
      agents.length ? [h('h3.pane-sub', `Agents · ${agents.length}`), agents.map(row)] : null));
  ctx.openPane();
}

// ---------------------------------------------------------------- other pages

function resultEl(ctx, m) {
  const c = ctx.channels.get(m.channel_id);
  return h('a.result', { href: `#/c/${m.channel_id}/m/${m.id}` },
    h('div.result-meta', c ? h('span.result-channel', c.visibility === 'direct' ? channelName(ctx, c) : `#${c.name}`) : null,
      avatar(m.author, 'xs'), h('strong', m.author.display_name),
      m.author.kind === 'agent' ? h('span.chip.agent-badge', 'Agent') : null,
      h('span.muted', fmt.full(m.created_at)), labelChip(m.label)),
    safeHtml(h('div.result-body.prose'), m.body_html));
}

export async function showSearch(ctx, main, q) {
  document.title = 'Search · Warroom';
  const results = h('div.results');
  const input = h('input.search-input', { type: 'search', value: q, placeholder: 'Search messages you can read…', 'aria-label': 'Search messages' });
  const run = async (text) => {
    if (!text.trim()) {
      mount(results, empty('Search every channel you can read', 'Words are matched in messages, including agents’ posts.'));
      return;
    }
    const hits = await api('/search', { query: { q: text, limit: 50 } });
    mount(results, hits.length ? [h('p.muted', `${hits.length} result${hits.length === 1 ? '' : 's'}`), hits.map((m) => resultEl(ctx, m))]
      : empty('No messages found', `Nothing you can read matches “${text}”.`));
  };
  input.addEventListener('keydown', (e) => {
    if (e.key === 'Enter') history.replaceState(null, '', `#/search?q=${encodeURIComponent(input.value)}`);
  });
  input.addEventListener('input', debounce(() => run(input.value).catch((e) => toast(e.message, 'error')), 250));
  mount(main, pageHeader(h('h1', 'Search')), h('div.page-body', h('div.search-bar', icon('search'), input), results));
  input.focus();
  await run(q);
}

export async function showMentions(ctx, main) {
  document.title = 'Mentions · Warroom';
  const hits = await api('/mentions', { query: { limit: 50 } });
  mount(main, pageHeader(h('h1', 'Mentions')),
    h('div.page-body', hits.length ? h('div.results', hits.map((m) => resultEl(ctx, m))) : empty('No mentions yet', 'When someone writes @' + ctx.me.handle + ', it shows up here.')));
}

export async function showBrowse(ctx, main) {
  document.title = 'Channels · Warroom';
  await loadChannels(ctx);
  const all = [...ctx.channels.values()].filter((c) => c.visibility !== 'direct').sort((a, b) => a.name.localeCompare(b.name));
  mount(main, pageHeader(h('h1', 'Browse channels'), h('div.head-actions', h('button.btn.btn-primary.btn-sm', { onclick: () => newChannel(ctx) }, icon('plus'), 'New channel'))),
    h('div.page-body', all.length ? h('div.card-list', all.map((c) => h('a.channel-card', { href: `#/c/${c.id}` },
      h('div.channel-card-head', channelIcon(c), h('strong', c.name), labelChip(c.label), c.is_member ? h('span.chip.member-chip', 'Joined') : null, c.archived ? h('span.chip', 'Archived') : null),
      h('p.muted', c.topic || 'No topic')))) : empty('No channels yet', 'Create the first one.')));
}

const LABELS = ['public', 'internal', 'confidential', 'restricted'];

// A channel the user just created or opened: follow it, list it, show it.
function openJoined(ctx, c) {
  ctx.channels.set(c.id, { ...c, is_member: true });
  ctx.live.subscribe(c.id, c.last_seq);
  ctx.refreshSidebar();
  ctx.go(`#/c/${c.id}`);
}

export async function newChannel(ctx) {
  const name = h('input', { name: 'name', required: true, placeholder: 'e.g. launch-v4', pattern: '[a-z0-9._-]{1,64}' });
  const vis = h('select', { name: 'visibility' }, h('option', { value: 'public' }, 'Public — anyone cleared can join'), h('option', { value: 'private' }, 'Private — invite only'));
  const label = h('select', { name: 'label' }, LABELS.map((l) => h('option', { value: l, selected: l === 'internal' }, l)));
  const topic = h('input', { name: 'topic', placeholder: 'What is it about?' });
  const ok = await dialog({
    title: 'New channel',
    body: h('div.form-grid', h('label', 'Name', name), h('label', 'Visibility', vis), h('label', 'Highest label', label), h('label', 'Topic', topic)),
    actions: [['Cancel', null], ['Create', true, 'primary']],
  });
  if (!ok) return;
  try {
    const c = await api('/channels', { method: 'POST', body: { name: name.value, visibility: vis.value, label: label.value, topic: topic.value || undefined } });
    openJoined(ctx, c);
  } catch (e) {
    toast(e.message, 'error');
  }
}

export async function newDm(ctx) {
  const handle = h('input', { name: 'handle', required: true, placeholder: 'handle, e.g. sam' });
  const ok = await dialog({ title: 'New direct message', body: h('div.form-grid', h('label', 'To', handle)), actions: [['Cancel', null], ['Open', true, 'primary']] });
  if (!ok) return;
  try {
    const c = await api('/dms', { method: 'POST', body: { handle: handle.value.trim().replace(/^@/, '') } });
    openJoined(ctx, c);
  } catch (e) {
    toast(e.message, 'error');
  }
}
