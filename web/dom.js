// Small DOM helpers shared by every view: element construction (no HTML
// strings, so no injection), the client-side allow-list for server-rendered
// message HTML and chart SVG, label chips, avatars, times, dialogs and toasts.

/** Build an element: h('div.card#main', {onclick, dataset, attrs}, children...). */
export function h(spec, props, ...children) {
  if (props === null || typeof props !== 'object' || props instanceof Node || Array.isArray(props)) {
    if (props !== undefined && props !== null) children.unshift(props);
    props = {};
  }
  const m = /^([a-z0-9-]+)?((?:[.#][\w-]+)*)$/i.exec(spec);
  const el = document.createElement((m && m[1]) || 'div');
  if (m && m[2]) {
    for (const part of m[2].match(/[.#][\w-]+/g)) {
      if (part[0] === '.') el.classList.add(part.slice(1));
      else el.id = part.slice(1);
    }
  }
  for (const [k, v] of Object.entries(props)) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className += (el.className ? ' ' : '') + v;
    else if (k === 'text') el.textContent = v;
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else if (k === 'value') el.value = v;
    else if (k === 'checked' || k === 'disabled' || k === 'selected' || k === 'hidden') el[k] = !!v;
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

/** Replace an element's children. */
export function mount(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

// What survives in message HTML. The server already sanitized it (ammonia);
// this second allow-list means a server bug still cannot inject markup.
const HTML_TAGS = new Set(['P', 'BR', 'EM', 'STRONG', 'DEL', 'CODE', 'PRE', 'BLOCKQUOTE', 'UL', 'OL', 'LI', 'A',
  'H1', 'H2', 'H3', 'H4', 'H5', 'H6', 'HR', 'TABLE', 'THEAD', 'TBODY', 'TR', 'TH', 'TD']);

/** Insert sanitized HTML (from the server's renderer) into `el`, re-checked by the allow-list. */
export function safeHtml(el, html) {
  const doc = new DOMParser().parseFromString(`<body>${html}</body>`, 'text/html');
  el.replaceChildren(...[...doc.body.childNodes].map((n) => clean(n)).filter(Boolean));
  return el;
}

function clean(node) {
  if (node.nodeType === Node.TEXT_NODE) return document.createTextNode(node.textContent);
  if (node.nodeType !== Node.ELEMENT_NODE) return null;
  if (!HTML_TAGS.has(node.tagName)) {
    // Unknown element: keep its text only (script and style bodies dropped).
    if (['SCRIPT', 'STYLE', 'TEMPLATE', 'IFRAME', 'OBJECT', 'SVG', 'MATH'].includes(node.tagName.toUpperCase())) return null;
    return document.createTextNode(node.textContent);
  }
  const out = document.createElement(node.tagName.toLowerCase());
  if (node.tagName === 'A') {
    const href = node.getAttribute('href') || '';
    if (/^(https?:|mailto:)/i.test(href)) {
      out.setAttribute('href', href);
      out.setAttribute('target', '_blank');
      out.setAttribute('rel', 'noopener noreferrer nofollow');
    }
  }
  for (const c of node.childNodes) {
    const k = clean(c);
    if (k) out.append(k);
  }
  return out;
}

// Chart SVG from the insights job: shapes and text only, no links, scripts,
// styles, foreign objects or external references.
const SVG_TAGS = new Set(['svg', 'g', 'rect', 'line', 'polyline', 'polygon', 'path', 'circle', 'ellipse', 'text',
  'tspan', 'title', 'desc', 'defs', 'lineargradient', 'stop', 'clippath']);
const SVG_ATTRS = /^(viewbox|width|height|x|y|x1|x2|y1|y2|cx|cy|r|rx|ry|d|points|fill|fill-opacity|stroke|stroke-width|stroke-dasharray|stroke-linecap|stroke-linejoin|stroke-opacity|opacity|transform|text-anchor|dominant-baseline|font-size|font-weight|font-family|offset|stop-color|stop-opacity|id|class|role|aria-label|preserveaspectratio|xmlns|clip-path|gradientunits|x2|y2)$/i;

/** Parse chart SVG markup into a sanitized <svg> element, or null when it is not SVG. */
export function safeSvg(markup) {
  if (typeof markup !== 'string' || !markup.trim()) return null;
  const doc = new DOMParser().parseFromString(markup, 'image/svg+xml');
  const root = doc.documentElement;
  if (!root || root.nodeName.toLowerCase() !== 'svg' || doc.querySelector('parsererror')) return null;
  return cleanSvg(root);
}

function cleanSvg(node) {
  if (node.nodeType === Node.TEXT_NODE) return document.createTextNode(node.textContent);
  if (node.nodeType !== Node.ELEMENT_NODE) return null;
  const name = node.localName.toLowerCase();
  if (!SVG_TAGS.has(name)) return null;
  const out = document.createElementNS('http://www.w3.org/2000/svg', node.localName);
  for (const a of node.attributes) {
    const v = a.value;
    if (!SVG_ATTRS.test(a.name) || /url\s*\(\s*['"]?(?!#)/i.test(v) || /javascript:/i.test(v)) continue;
    out.setAttribute(a.name, v);
  }
  for (const c of node.childNodes) {
    const k = cleanSvg(c);
    if (k) out.append(k);
  }
  return out;
}

/** Level of a label string such as `confidential:hr,sales`. */
export function labelLevel(label) {
  return String(label || 'internal').split(':')[0];
}

/** A colour-coded label chip. */
export function labelChip(label, extra) {
  const level = labelLevel(label);
  const comps = String(label || '').split(':')[1];
  return h(`span.chip.label-${level}`, { title: `Label: ${label}`, class: extra }, level,
    comps ? h('span.chip-sub', ` · ${comps.replaceAll(',', ', ')}`) : null);
}

const HUES = [210, 260, 330, 20, 150, 190, 45, 290];
function hue(s) {
  let x = 0;
  for (const ch of String(s)) x = (x * 31 + ch.charCodeAt(0)) >>> 0;
  return HUES[x % HUES.length];
}

/** An avatar with initials; agents get a squircle with their department's hue. */
export function avatar(author, size = 'md') {
  const name = author.display_name || author.handle || '?';
  const initials = name.split(/\s+/).filter(Boolean).slice(0, 2).map((w) => w[0].toUpperCase()).join('');
  const el = h(`span.avatar.avatar-${size}`, { class: author.kind === 'agent' ? 'is-agent' : '', 'aria-hidden': 'true' }, initials);
  el.style.setProperty('--h', hue(author.kind === 'agent' ? author.department || name : author.handle || name));
  return el;
}

/** Department chip (colour by name). */
export function deptChip(dept) {
  if (!dept) return null;
  const el = h('span.chip.dept', dept);
  el.style.setProperty('--h', hue(dept));
  return el;
}

const timeFmt = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit' });
const dayFmt = new Intl.DateTimeFormat(undefined, { weekday: 'long', month: 'long', day: 'numeric' });
const fullFmt = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'short' });

export const fmt = {
  time: (iso) => timeFmt.format(new Date(iso)),
  day: (iso) => {
    const d = new Date(iso);
    const today = new Date();
    const y = new Date(Date.now() - 86400000);
    if (d.toDateString() === today.toDateString()) return 'Today';
    if (d.toDateString() === y.toDateString()) return 'Yesterday';
    return dayFmt.format(d);
  },
  full: (iso) => fullFmt.format(new Date(iso)),
  date: (iso) => new Date(iso).toLocaleDateString(undefined, { month: 'short', day: 'numeric', year: 'numeric' }),
  num: (n) => new Intl.NumberFormat().format(n ?? 0),
  ago: (iso) => {
    const s = Math.max(0, (Date.now() - new Date(iso).getTime()) / 1000);
    if (s < 60) return 'just now';
    if (s < 3600) return `${Math.floor(s / 60)} min ago`;
    if (s < 86400) return `${Math.floor(s / 3600)} h ago`;
    return fmt.date(iso);
  },
};

/** A transient message at the bottom of the screen. */
export function toast(text, kind = 'info') {
  let host = document.querySelector('.toasts');
  if (!host) {
    host = h('div.toasts', { role: 'status', 'aria-live': 'polite' });
    document.body.append(host);
  }
  const t = h(`div.toast.toast-${kind}`, text);
  host.append(t);
  setTimeout(() => t.classList.add('out'), 3800);
  setTimeout(() => t.remove(), 4300);
}

/** A modal dialog; resolves with the value of the button pressed (or null). */
export function dialog({ title, body, actions = [['Cancel', null], ['OK', true, 'primary']] }) {
  return new Promise((resolve) => {
    const d = h('dialog.modal');
    const close = (v) => {
      d.close();
      d.remove();
      resolve(v);
    };
    mount(d,
      h('form.modal-body', { method: 'dialog', onsubmit: (e) => { e.preventDefault(); close(actions.at(-1)[1]); } },
        h('h2', title),
        body,
        h('div.modal-actions', actions.map(([label, value, kind]) =>
          h(`button.btn${kind ? '.btn-' + kind : ''}`, { type: value === actions.at(-1)[1] ? 'submit' : 'button', onclick: (e) => { if (value !== actions.at(-1)[1]) { e.preventDefault(); close(value); } } }, label)))));
    d.addEventListener('cancel', (e) => { e.preventDefault(); close(null); });
    document.body.append(d);
    d.showModal();
    const first = d.querySelector('input, textarea, select');
    if (first) first.focus();
  });
}

/** Empty state block. */
export function empty(title, text, action) {
  return h('div.empty', h('div.empty-mark', { 'aria-hidden': 'true' }), h('h3', title), text ? h('p', text) : null, action || null);
}

/** Debounce a function. */
export function debounce(fn, ms) {
  let t;
  return (...a) => {
    clearTimeout(t);
    t = setTimeout(() => fn(...a), ms);
  };
}

/** An inline SVG icon from a small built-in set (no external files, no data: URLs). */
const ICONS = {
  hash: 'M5 9h14M5 15h14M10 4 8 20M16 4l-2 16',
  lock: 'M7 11V8a5 5 0 0 1 10 0v3M6 11h12v9H6z',
  at: 'M16 12a4 4 0 1 1-8 0 4 4 0 0 1 8 0zm0 0v1.5a2.5 2.5 0 0 0 5 0V12a9 9 0 1 0-3.5 7.1',
  search: 'M11 18a7 7 0 1 1 0-14 7 7 0 0 1 0 14zm10 3-5-5',
  thread: 'M4 5h16v10H9l-5 4z',
  smile: 'M12 21a9 9 0 1 1 0-18 9 9 0 0 1 0 18zM8.5 14a4 4 0 0 0 7 0M9 9.5h.01M15 9.5h.01',
  edit: 'M4 20h4L19 9l-4-4L4 16zM14 6l4 4',
  trash: 'M5 7h14M10 11v6M14 11v6M6 7l1 13h10l1-13M9 7V4h6v3',
  x: 'M6 6l12 12M18 6 6 18',
  menu: 'M4 7h16M4 12h16M4 17h16',
  plus: 'M12 5v14M5 12h14',
  grid: 'M4 4h7v7H4zM13 4h7v7h-7zM4 13h7v7H4zM13 13h7v7h-7z',
  bot: 'M6 9h12v10H6zM12 5v4M9 14h.01M15 14h.01M3 13v3M21 13v3',
  shield: 'M12 3l8 3v6c0 5-3.5 8-8 9-4.5-1-8-4-8-9V6z',
  file: 'M6 3h8l4 4v14H6zM14 3v4h4',
  users: 'M9 11a4 4 0 1 0 0-8 4 4 0 0 0 0 8zM2 21a7 7 0 0 1 14 0M17 11a3 3 0 1 0 0-6M22 21a5 5 0 0 0-5-5',
  chart: 'M4 20V10M10 20V4M16 20v-7M22 20H2',
  pulse: 'M3 12h4l3-8 4 16 3-8h4',
  send: 'M4 12 20 4l-6 16-3-7z',
  chevron: 'M9 6l6 6-6 6',
  book: 'M4 5a2 2 0 0 1 2-2h14v16H6a2 2 0 0 0-2 2zM4 19V5',
  logout: 'M15 4h4v16h-4M10 8l-4 4 4 4M6 12h10',
  arrowDown: 'M12 5v14M6 13l6 6 6-6',
};
export function icon(name, cls = '') {
  const svg = document.createElementNS('http://www.w3.org/2000/svg', 'svg');
  svg.setAttribute('viewBox', '0 0 24 24');
  svg.setAttribute('class', `icon ${cls}`);
  svg.setAttribute('aria-hidden', 'true');
  const p = document.createElementNS('http://www.w3.org/2000/svg', 'path');
  p.setAttribute('d', ICONS[name] || ICONS.hash);
  svg.append(p);
  return svg;
}
