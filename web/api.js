// The REST client: tokens (kept in localStorage so a reload stays logged in),
// one refresh on an expired access token, and errors in the API's
// {error:{code,message}} shape.

const KEY = 'warroom.session';

/** An API error with the server's code and HTTP status. */
export class ApiError extends Error {
  constructor(status, code, message) {
    super(message || code || `HTTP ${status}`);
    this.status = status;
    this.code = code;
  }
}

let session = load();
let refreshing = null;
const listeners = new Set();

function load() {
  try {
    return JSON.parse(localStorage.getItem(KEY)) || null;
  } catch {
    return null;
  }
}

function save(s) {
  session = s;
  if (s) localStorage.setItem(KEY, JSON.stringify(s));
  else localStorage.removeItem(KEY);
}

/** Called with no argument when the session ends (refresh refused). */
export function onLogout(fn) {
  listeners.add(fn);
}

export function hasSession() {
  return !!(session && session.refresh_token);
}

/** The current access token, refreshed first when it expires within 30 s. */
export async function accessToken() {
  if (!session) throw new ApiError(401, 'unauthenticated', 'not logged in');
  if (session.expires_at - Date.now() < 30000) await refresh();
  return session.access_token;
}

function store(tokens) {
  save({
    access_token: tokens.access_token,
    refresh_token: tokens.refresh_token,
    expires_at: Date.now() + tokens.expires_in * 1000,
  });
}

/** Log in with a handle and password. */
export async function login(handle, password) {
  const r = await fetch('/api/v1/auth/login', {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ handle, password }),
  });
  const body = await r.json().catch(() => ({}));
  if (!r.ok) throw new ApiError(r.status, body.error?.code, body.error?.message);
  store(body);
}

/** Exchange the refresh token for new tokens (one request at a time). */
export async function refresh() {
  if (refreshing) return refreshing;
  // Another tab may have rotated the tokens already: its refresh token replaced ours.
  const stored = load();
  if (stored && session && stored.refresh_token !== session.refresh_token) {
    session = stored;
    if (stored.expires_at - Date.now() > 30000) return undefined;
  }
  refreshing = (async () => {
    const r = await fetch('/api/v1/auth/refresh', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ refresh_token: session?.refresh_token || '' }),
    });
    const body = await r.json().catch(() => ({}));
    if (!r.ok) {
      end();
      throw new ApiError(r.status, body.error?.code, body.error?.message || 'session expired');
    }
    store(body);
  })();
  try {
    await refreshing;
  } finally {
    refreshing = null;
  }
}

function end() {
  save(null);
  for (const fn of listeners) fn();
}

/** Log out on the server (best effort) and forget the tokens. */
export async function logout() {
  try {
    await api('/auth/logout', { method: 'POST', body: { refresh_token: session?.refresh_token } });
  } catch {
    // The session ends locally whatever the server says.
  }
  end();
}

/**
 * Call the API: api('/channels'), api('/channels', {method:'POST', body}),
 * api('/documents', {method:'POST', raw: file, query: {path}}).
 * Resolves with the JSON body (null for 204).
 */
export async function api(path, { method = 'GET', body, raw, query, retry = true } = {}) {
  const url = new URL(`/api/v1${path}`, location.origin);
  for (const [k, v] of Object.entries(query || {})) {
    if (v !== undefined && v !== null && v !== '') url.searchParams.set(k, v);
  }
  const headers = { authorization: `Bearer ${await accessToken()}` };
  let payload;
  if (raw !== undefined) {
    payload = raw;
    headers['content-type'] = 'application/octet-stream';
  } else if (body !== undefined) {
    payload = JSON.stringify(body);
    headers['content-type'] = 'application/json';
  }
  const r = await fetch(url, { method, headers, body: payload });
  if (r.status === 401 && retry) {
    await refresh();
    return api(path, { method, body, raw, query, retry: false });
  }
  if (r.status === 204) return null;
  const text = await r.text();
  let json = null;
  try {
    json = text ? JSON.parse(text) : null;
  } catch {
    json = null;
  }
  if (!r.ok) throw new ApiError(r.status, json?.error?.code, json?.error?.message || text.slice(0, 200));
  return json;
}
