// The realtime connection. Subscribes to channels with the last sequence
// seen, so after any drop the server replays what was missed (or says
// `resync`); events at or below a channel's last seen sequence are dropped,
// so nothing is shown twice. Reconnects with backoff, refreshing the access
// token first when the server closed for an expired or changed session.

import { accessToken, refresh } from './api.js';

const BACKOFF = [250, 1000, 2000, 4000, 8000];

export class Live {
  constructor() {
    this.seqs = new Map(); // channel id -> last seq seen
    this.handlers = new Set();
    this.status = 'connecting';
    this.connects = 0;
    this.attempt = 0;
    this.ws = null;
    this.stopped = false;
    this.wantActivity = false;
  }

  /** Listen to every event (and {type:'status'} changes). */
  on(fn) {
    this.handlers.add(fn);
    return () => this.handlers.delete(fn);
  }

  emit(ev) {
    for (const fn of [...this.handlers]) {
      try {
        fn(ev);
      } catch (e) {
        console.error('event handler failed', e);
      }
    }
  }

  setStatus(s) {
    this.status = s;
    document.documentElement.dataset.live = s;
    this.emit({ type: 'status', status: s });
  }

  async start() {
    this.stopped = false;
    let token;
    try {
      token = await accessToken();
    } catch {
      return; // logged out
    }
    const proto = location.protocol === 'https:' ? 'wss' : 'ws';
    const ws = new WebSocket(`${proto}://${location.host}/api/v1/ws?access_token=${encodeURIComponent(token)}`);
    this.ws = ws;
    ws.onmessage = (m) => this.receive(m.data);
    ws.onclose = (e) => this.closed(ws, e);
  }

  stop() {
    this.stopped = true;
    if (this.ws) this.ws.close(1000, 'bye');
    this.ws = null;
  }

  send(obj) {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(obj));
  }

  /** Follow a channel from `lastSeq` (the newest sequence already shown). */
  subscribe(channelId, lastSeq) {
    const known = this.seqs.get(channelId);
    const seq = known === undefined ? lastSeq : Math.max(known, lastSeq ?? known);
    this.seqs.set(channelId, seq);
    this.send({ type: 'subscribe', channel_id: channelId, last_seq: seq });
  }

  unsubscribe(channelId) {
    this.seqs.delete(channelId);
    this.send({ type: 'unsubscribe', channel_id: channelId });
  }

  typing(channelId) {
    this.send({ type: 'typing', channel_id: channelId });
  }

  /** Admins: stream text-free metadata of every new message (dashboard). */
  activity() {
    this.wantActivity = true;
    this.send({ type: 'agent_activity' });
  }

  receive(data) {
    let ev;
    try {
      ev = JSON.parse(data);
    } catch {
      return;
    }
    if (ev.type === 'ready') {
      this.connects += 1;
      this.attempt = 0;
      document.documentElement.dataset.connects = String(this.connects);
      this.setStatus('live');
      for (const [cid, seq] of this.seqs) this.send({ type: 'subscribe', channel_id: cid, last_seq: seq });
      if (this.wantActivity) this.send({ type: 'agent_activity' });
      this.emit(ev);
      return;
    }
    if (ev.type === 'resync') {
      // Too far behind for a replay: the views refetch, then we follow from the latest.
      this.seqs.set(ev.channel_id, ev.latest_seq);
      this.emit(ev);
      this.send({ type: 'subscribe', channel_id: ev.channel_id, last_seq: ev.latest_seq });
      return;
    }
    if (typeof ev.seq === 'number' && ev.channel_id) {
      const last = this.seqs.get(ev.channel_id);
      if (last !== undefined && last !== null && ev.seq <= last) return;
      if (this.seqs.has(ev.channel_id)) this.seqs.set(ev.channel_id, ev.seq);
    }
    this.emit(ev);
  }

  async closed(ws, e) {
    if (ws !== this.ws) return;
    this.ws = null;
    if (this.stopped) return;
    this.setStatus('reconnecting');
    this.emit({ type: 'closed', code: e.code, reason: e.reason });
    const wait = BACKOFF[Math.min(this.attempt, BACKOFF.length - 1)] + Math.random() * 250;
    this.attempt += 1;
    await new Promise((r) => setTimeout(r, wait));
    if (this.stopped) return;
    if (e.code === 4001 || e.code === 4003 || e.code === 1008 || this.attempt > 2) {
      try {
        await refresh();
      } catch {
        return; // the session ended; the app shows the login screen
      }
    }
    this.start();
  }
}
