// Warroom's single-page app: login, the shell (sidebar, main view, side
// pane) and the hash router. Views live in chat.js, admin.js and digests.js;
// every view gets the shared context `ctx` (who is logged in, channels, the
// live socket) and renders into the element it is given.

import { api, hasSession, login, logout, onLogout } from './api.js';
import { Live } from './socket.js';
import { h, mount, icon, avatar, labelChip, toast } from './dom.js';
import * as chat from './chat.js';
import * as admin from './admin.js';
import * as digests from './digests.js';

const root = document.getElementById('app');

/** Shared state of the running app. */
export const ctx = {
  me: null,
  channels: new Map(),
  live: null,
  isAdmin: false,
  isLeader: false,
  route: null,
  refreshSidebar: () => {},
  go: (hash) => {
    if (location.hash === hash) route();
    else location.hash = hash;
  },
};

onLogout(() => {
  if (ctx.live) ctx.live.stop();
  ctx.live = null;
  ctx.me = null;
  showLogin();
});

function showLogin(error) {
  document.title = 'Sign in · Warroom';
  root.className = 'login-page';
  const err = h('p.form-error', { role: 'alert', hidden: !error }, error || '');
  const handle = h('input#login-handle', { name: 'handle', autocomplete: 'username', required: true, autofocus: true, placeholder: 'e.g. lena' });
  const password = h('input#login-password', { name: 'password', type: 'password', autocomplete: 'current-password', required: true });
  const button = h('button.btn.btn-primary.btn-block', { type: 'submit' }, 'Sign in');
  const form = h('form.login-card', {
    onsubmit: async (e) => {
      e.preventDefault();
      button.disabled = true;
      err.hidden = true;
      try {
        await login(handle.value.trim(), password.value);
        await start();
      } catch (x) {
        err.textContent = x.status === 401 ? 'That handle and password do not match.' : x.message;
        err.hidden = false;
        button.disabled = false;
        password.select();
      }
    },
  },
  h('div.brand.brand-lg', h('span.brand-mark', icon('pulse')), h('span.brand-name', 'Warroom')),
  h('p.login-lead', 'Where your people and their agents work the problem together.'),
  h('label', { for: 'login-handle' }, 'Handle'), handle,
  h('label', { for: 'login-password' }, 'Password'), password,
  err, button,
  h('p.login-foot', 'Private to your company. Every agent sees only its scope.'));
  mount(root, h('main.login-wrap', form));
  handle.focus();
}

async function start() {
  ctx.me = await api('/me');
  ctx.isAdmin = ctx.me.role === 'admin';
  ctx.isLeader = ctx.me.role === 'leader' || ctx.isAdmin;
  document.documentElement.dataset.role = ctx.me.role;
  ctx.live = new Live();
  buildShell();
  await chat.loadChannels(ctx);
  ctx.live.start();
  if (!location.hash || location.hash === '#/' || location.hash === '#/login') {
    const first = chat.defaultChannel(ctx);
    location.hash = first ? `#/c/${first.id}` : '#/browse';
  } else {
    route();
  }
}

let shell = null;

function navItem(hash, iconName, text, extra) {
  return h('a.nav-item', { href: hash, dataset: { nav: hash } }, icon(iconName), h('span.nav-text', text), extra || null);
}

function buildShell() {
  root.className = 'shell';
  const status = h('span.live-dot', { title: 'Realtime connection' });
  const statusText = h('span.live-text', 'Connecting');
  ctx.live.on((ev) => {
    if (ev.type !== 'status') return;
    statusText.textContent = { live: 'Live', reconnecting: 'Reconnecting…', connecting: 'Connecting' }[ev.status] || ev.status;
  });
  const channelList = h('nav.nav-group', { 'aria-label': 'Channels' });
  const dmList = h('nav.nav-group', { 'aria-label': 'Direct messages' });
  const sections = [
    h('div.nav-section',
      navItem('#/search', 'search', 'Search'),
      navItem('#/mentions', 'at', 'Mentions'),
      navItem('#/browse', 'grid', 'Browse channels')),
    h('div.nav-heading', h('span', 'Channels'), h('button.icon-btn.nav-add', { title: 'New channel', 'aria-label': 'New channel', onclick: () => chat.newChannel(ctx) }, icon('plus'))),
    channelList,
    h('div.nav-heading', h('span', 'Direct messages'), h('button.icon-btn.nav-add', { title: 'New direct message', 'aria-label': 'New direct message', onclick: () => chat.newDm(ctx) }, icon('plus'))),
    dmList,
  ];
  if (ctx.isLeader) {
    sections.push(h('div.nav-heading', h('span', 'Leadership')),
      h('div.nav-section', navItem('#/digests', 'chart', 'Weekly digests')));
  }
  if (ctx.isAdmin) {
    sections.push(h('div.nav-heading', h('span', 'Administration')),
      h('div.nav-section.admin-nav',
        navItem('#/admin/dashboard', 'pulse', 'War-room dashboard'),
        navItem('#/admin/agents', 'bot', 'Agents'),
        navItem('#/admin/scopes', 'shield', 'Scopes'),
        navItem('#/admin/documents', 'file', 'Documents'),
        navItem('#/admin/users', 'users', 'Users & roles')));
  }
  const sidebar = h('aside.sidebar', { 'aria-label': 'Navigation' },
    h('div.sidebar-top', h('a.brand', { href: '#/' }, h('span.brand-mark', icon('pulse')), h('span.brand-name', 'Warroom'))),
    h('div.sidebar-scroll', sections),
    h('div.sidebar-foot',
      avatar(ctx.me, 'sm'),
      h('div.me', h('div.me-name', ctx.me.display_name), h('div.me-role', ctx.me.role, ' · ', status, statusText)),
      h('button.icon-btn', { title: 'Sign out', 'aria-label': 'Sign out', onclick: () => logout() }, icon('logout'))));
  const main = h('main.main', { tabindex: '-1' });
  const pane = h('aside.pane', { 'aria-label': 'Thread', hidden: true });
  const scrim = h('div.scrim', { onclick: () => root.classList.remove('nav-open') });
  mount(root, sidebar, scrim, main, pane);
  shell = { sidebar, main, pane, channelList, dmList };
  ctx.shell = shell;
  ctx.refreshSidebar = () => chat.renderSidebar(ctx, channelList, dmList);
  ctx.openNav = () => root.classList.add('nav-open');
  ctx.closePane = () => {
    pane.hidden = true;
    root.classList.remove('pane-open');
    mount(pane);
  };
  ctx.openPane = () => {
    pane.hidden = false;
    root.classList.add('pane-open');
  };
  document.addEventListener('keydown', (e) => {
    if (e.key === 'Escape' && !pane.hidden && !document.querySelector('dialog[open]')) ctx.closePane();
    if (e.altKey && (e.key === 'ArrowUp' || e.key === 'ArrowDown')) {
      // Alt+↑/↓: previous or next channel in the sidebar.
      const items = [...shell.sidebar.querySelectorAll('.channel-item')];
      if (!items.length) return;
      e.preventDefault();
      const i = items.findIndex((a) => a.classList.contains('active'));
      const j = i < 0 ? 0 : (i + (e.key === 'ArrowDown' ? 1 : items.length - 1)) % items.length;
      location.hash = items[j].getAttribute('href');
    }
    if ((e.ctrlKey || e.metaKey) && e.key.toLowerCase() === 'k') {
      e.preventDefault();
      ctx.go('#/search');
    }
  });
}

/** A page header with the phone-width menu button. */
export function pageHeader(title, ...rest) {
  return h('header.page-head',
    h('button.icon-btn.menu-btn', { 'aria-label': 'Open navigation', onclick: () => ctx.openNav() }, icon('menu')),
    h('div.page-title', title), ...rest);
}

/** Shown when a role may not open a page (the server refuses the data too). */
export function forbidden(main) {
  mount(main, pageHeader(h('h1', 'Not available')),
    h('div.page-body', h('div.empty', h('div.empty-mark'), h('h3', 'You do not have access to this page'),
      h('p', 'It is for administrators or leadership. Ask an administrator if you need it.'))));
}

async function route() {
  if (!ctx.me || !shell) return;
  const hash = location.hash || '#/';
  const [path, qs] = hash.slice(1).split('?');
  const parts = path.split('/').filter(Boolean);
  const params = new URLSearchParams(qs || '');
  ctx.route = { parts, params };
  root.classList.remove('nav-open');
  for (const a of shell.sidebar.querySelectorAll('[data-nav]')) {
    a.classList.toggle('active', hash === a.dataset.nav || hash.startsWith(a.dataset.nav + '/'));
  }
  const main = shell.main;
  try {
    if (parts[0] === 'c' && parts[1]) {
      await chat.showChannel(ctx, main, parts[1], { message: parts[2] === 'm' ? parts[3] : null, thread: parts[2] === 't' ? parts[3] : null });
      return;
    }
    chat.leaveChannel(ctx);
    if (parts[0] !== 'c') ctx.closePane();
    if (parts[0] === 'search') return chat.showSearch(ctx, main, params.get('q') || '');
    if (parts[0] === 'mentions') return chat.showMentions(ctx, main);
    if (parts[0] === 'browse') return chat.showBrowse(ctx, main);
    if (parts[0] === 'digests') {
      if (!ctx.isLeader) return forbidden(main);
      return parts[1] ? digests.showDigest(ctx, main, parts[1]) : digests.showList(ctx, main);
    }
    if (parts[0] === 'admin') {
      if (!ctx.isAdmin) return forbidden(main);
      return admin.show(ctx, main, parts.slice(1));
    }
    const first = chat.defaultChannel(ctx);
    if (first) ctx.go(`#/c/${first.id}`);
    else chat.showBrowse(ctx, main);
  } catch (e) {
    if (e.status === 403 || e.status === 404) {
      if (parts[0] === 'admin' || parts[0] === 'digests') return forbidden(main);
    }
    console.error(e);
    toast(e.message, 'error');
  }
}

window.addEventListener('hashchange', route);

async function boot() {
  if (!hasSession()) return showLogin();
  try {
    await start();
  } catch (e) {
    console.error(e);
    showLogin(e.status === 401 ? null : `Could not load Warroom: ${e.message}`);
  }
}

boot();

export { labelChip };
