//! The realtime hub: which connection is subscribed to which channel, and the
//! fan-out of committed channel events to them.
//!
//! Invariants:
//! - events reach a connection in sequence order per channel, each at most once;
//! - every delivery is decided by Cedar (`message.read` with the event's label),
//!   cached per subscription and label until membership or the channel changes;
//! - a subscription that is resuming buffers live events until its replay from
//!   storage is done, so nothing falls between replay and live delivery;
//! - a connection whose bounded send queue fills is closed with a reason and
//!   resumes from its last sequence; the hub never waits for a slow client.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use axum::extract::ws::Utf8Bytes;
use tokio::sync::{mpsc, watch};

use crate::authz::{Authz, ChannelAction, ChannelCtx};
use crate::ids::{ChannelId, Seq, UserId};
use crate::label::Label;
use crate::metrics::Metrics;
use crate::principal::{ChannelAttrs, Principal};

/// WebSocket close code: the send queue filled; resume from the last seq.
pub const CLOSE_SLOW_CONSUMER: u16 = 4008;
/// WebSocket close code: the account was deactivated or its permissions
/// changed, or the login session whose token opened the socket ended (logout,
/// refresh-token reuse).
pub const CLOSE_REVOKED: u16 = 4003;

/// A committed channel event, serialized once for all recipients.
#[derive(Debug)]
pub struct Published {
    pub channel_id: String,
    /// Position in the channel sequence; `None` for ephemeral events (typing).
    pub seq: Option<i64>,
    /// The label a reader must be cleared for to receive it.
    pub label: Label,
    pub json: Utf8Bytes,
    pub effect: Effect,
}

/// What an event changes in the hub's view of a channel.
#[derive(Debug, Clone)]
pub enum Effect {
    None,
    MemberJoined(String),
    MemberLeft(String),
    ChannelChanged(ChannelAttrs),
}

/// Why the server closes a socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloseReason {
    pub code: u16,
    pub reason: String,
}

/// What a connection's writer task sends.
#[derive(Debug, Clone)]
pub enum Outbound {
    Event(Arc<Published>),
    Text(Utf8Bytes),
}

/// One open WebSocket connection.
pub struct Conn {
    pub id: u64,
    pub principal: Principal,
    /// The login session whose access token opened the connection (`None`
    /// for tokens issued outside a login, such as agents').
    pub session: Option<String>,
    /// Set once the connection streams the agent activity feed: one stream
    /// per connection.
    pub activity: std::sync::atomic::AtomicBool,
    tx: mpsc::Sender<Outbound>,
    close: watch::Sender<Option<CloseReason>>,
}

impl Conn {
    /// Ask the connection to close with `reason` (first reason wins).
    pub fn close(&self, reason: CloseReason) {
        self.close.send_if_modified(|cur| {
            if cur.is_none() {
                *cur = Some(reason);
                true
            } else {
                false
            }
        });
    }

    /// Queue a message without waiting; a full queue closes the connection.
    fn offer(&self, out: Outbound, metrics: &Metrics) -> bool {
        match self.tx.try_send(out) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                metrics.ws_slow_disconnects.inc();
                self.close(CloseReason {
                    code: CLOSE_SLOW_CONSUMER,
                    reason: "slow consumer: reconnect and resume from your last seq".into(),
                });
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }

    /// Queue a message, waiting for room (used for replay by the connection's own task).
    pub async fn send(&self, out: Outbound) -> bool {
        self.tx.send(out).await.is_ok()
    }
}

enum Mode {
    /// Replay from storage in progress; live events wait here.
    Buffering(Vec<Arc<Published>>),
    Live,
}

struct SubState {
    mode: Mode,
    last_seq: i64,
    is_member: bool,
    attrs: Option<ChannelAttrs>,
    decisions: HashMap<Label, bool>,
    generation: u64,
}

/// One connection's subscription to one channel.
pub struct Sub {
    conn: Arc<Conn>,
    state: Mutex<SubState>,
}

const BUFFER_MAX: usize = 10_000;

/// What an event changes for one subscription, the same live and in replay.
fn apply_effect(st: &mut SubState, conn: &Conn, effect: &Effect) {
    match effect {
        Effect::MemberJoined(u) if *u == conn.principal.id => {
            st.is_member = true;
            st.decisions.clear();
        }
        Effect::MemberLeft(u) if *u == conn.principal.id => {
            // The leaver no longer receives the channel's events, including this one.
            st.is_member = false;
            st.decisions.clear();
        }
        Effect::ChannelChanged(attrs) => {
            st.attrs = Some(attrs.clone());
            st.decisions.clear();
        }
        _ => {}
    }
}

#[derive(Default)]
struct HubInner {
    conns: HashMap<u64, Arc<Conn>>,
    by_user: HashMap<String, HashSet<u64>>,
    channels: HashMap<String, HashMap<u64, Arc<Sub>>>,
}

/// Subscriptions and fan-out.
pub struct Hub {
    inner: RwLock<HubInner>,
    authz: Arc<Authz>,
    metrics: Arc<Metrics>,
    next_id: AtomicU64,
    queue: usize,
}

impl Hub {
    /// A hub deciding deliveries with `authz`; each connection may queue `queue` events.
    pub fn new(authz: Arc<Authz>, metrics: Arc<Metrics>, queue: usize) -> Self {
        Self {
            inner: RwLock::new(HubInner::default()),
            authz,
            metrics,
            next_id: AtomicU64::new(1),
            queue,
        }
    }

    /// Register a connection outside any login session.
    pub fn connect(
        &self,
        principal: Principal,
    ) -> (
        Arc<Conn>,
        mpsc::Receiver<Outbound>,
        watch::Receiver<Option<CloseReason>>,
    ) {
        self.connect_session(principal, None)
    }

    /// Register a connection opened with a token of login session `session`;
    /// returns it with its outbound queue and close signal.
    pub fn connect_session(
        &self,
        principal: Principal,
        session: Option<String>,
    ) -> (
        Arc<Conn>,
        mpsc::Receiver<Outbound>,
        watch::Receiver<Option<CloseReason>>,
    ) {
        let (tx, rx) = mpsc::channel(self.queue);
        let (close, close_rx) = watch::channel(None);
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let conn = Arc::new(Conn {
            id,
            principal,
            session,
            activity: std::sync::atomic::AtomicBool::new(false),
            tx,
            close,
        });
        let mut inner = self.inner.write().expect("hub lock");
        inner
            .by_user
            .entry(conn.principal.id.to_string())
            .or_default()
            .insert(id);
        inner.conns.insert(id, conn.clone());
        self.metrics.ws_connections.inc();
        (conn, rx, close_rx)
    }

    /// Forget a connection and all its subscriptions.
    pub fn disconnect(&self, conn: &Conn) {
        let mut inner = self.inner.write().expect("hub lock");
        if inner.conns.remove(&conn.id).is_none() {
            return;
        }
        self.metrics.ws_connections.dec();
        if let Some(set) = inner.by_user.get_mut(conn.principal.id.as_str()) {
            set.remove(&conn.id);
            if set.is_empty() {
                inner.by_user.remove(conn.principal.id.as_str());
            }
        }
        inner.channels.retain(|_, subs| {
            subs.remove(&conn.id);
            !subs.is_empty()
        });
    }

    /// Close every connection of a user (deactivation, logout everywhere).
    pub fn close_user(&self, user_id: &UserId, reason: CloseReason) {
        let inner = self.inner.read().expect("hub lock");
        for id in inner.by_user.get(user_id.as_str()).into_iter().flatten() {
            if let Some(c) = inner.conns.get(id) {
                c.close(reason.clone());
            }
        }
    }

    /// Close the connections `user_id` opened in login session `session`
    /// (logout, refresh-token reuse); their other sessions stay open.
    pub fn close_session(&self, user_id: &UserId, session: &str, reason: CloseReason) {
        let inner = self.inner.read().expect("hub lock");
        for id in inner.by_user.get(user_id.as_str()).into_iter().flatten() {
            match inner.conns.get(id) {
                Some(c) if c.session.as_deref() == Some(session) => c.close(reason.clone()),
                _ => {}
            }
        }
    }

    /// Send a user-addressed notice (e.g. "you were added to a channel") to
    /// all of that user's connections.
    pub fn notify_user(&self, user_id: &UserId, json: Utf8Bytes) {
        let inner = self.inner.read().expect("hub lock");
        for id in inner.by_user.get(user_id.as_str()).into_iter().flatten() {
            if let Some(c) = inner.conns.get(id) {
                c.offer(Outbound::Text(json.clone()), &self.metrics);
            }
        }
    }

    /// Send a notice to every connection whose principal passes `allow`
    /// (used for new public channels).
    pub fn notify_where(&self, json: Utf8Bytes, allow: impl Fn(&Principal) -> bool) {
        let inner = self.inner.read().expect("hub lock");
        for c in inner.conns.values() {
            if allow(&c.principal) {
                c.offer(Outbound::Text(json.clone()), &self.metrics);
            }
        }
    }

    /// Relay a typing notice from a live member to the channel's members.
    pub fn typing(&self, conn: &Conn, channel_id: &ChannelId) -> bool {
        let label = {
            let inner = self.inner.read().expect("hub lock");
            let Some(sub) = inner
                .channels
                .get(channel_id.as_str())
                .and_then(|s| s.get(&conn.id))
            else {
                return false;
            };
            let st = sub.state.lock().expect("sub lock");
            if !st.is_member || !matches!(st.mode, Mode::Live) {
                return false;
            }
            match &st.attrs {
                Some(a) => a.label.clone(),
                None => return false,
            }
        };
        let json = serde_json::json!({
            "type": "typing",
            "channel_id": channel_id,
            "user_id": conn.principal.id,
            "handle": conn.principal.handle,
        })
        .to_string();
        self.publish(Arc::new(Published {
            channel_id: channel_id.to_string(),
            seq: None,
            label,
            json: json.into(),
            effect: Effect::None,
        }));
        true
    }

    /// Which of `user_ids` have an open connection now (presence).
    pub fn online(&self, user_ids: &[UserId]) -> Vec<UserId> {
        let inner = self.inner.read().expect("hub lock");
        user_ids
            .iter()
            .filter(|u| inner.by_user.contains_key(u.as_str()))
            .cloned()
            .collect()
    }

    /// Whether anyone is subscribed to a channel.
    pub fn has_subscribers(&self, channel_id: &ChannelId) -> bool {
        self.inner
            .read()
            .expect("hub lock")
            .channels
            .contains_key(channel_id.as_str())
    }

    /// How many channels a connection is subscribed to.
    pub fn subscription_count(&self, conn: &Conn) -> usize {
        let inner = self.inner.read().expect("hub lock");
        inner
            .channels
            .values()
            .filter(|s| s.contains_key(&conn.id))
            .count()
    }

    /// Start a subscription in buffering mode (before reading storage).
    pub fn begin_subscribe(&self, conn: &Arc<Conn>, channel_id: &ChannelId) -> Arc<Sub> {
        let sub = Arc::new(Sub {
            conn: conn.clone(),
            state: Mutex::new(SubState {
                mode: Mode::Buffering(Vec::new()),
                last_seq: 0,
                is_member: false,
                attrs: None,
                decisions: HashMap::new(),
                generation: self.authz.generation(),
            }),
        });
        let mut inner = self.inner.write().expect("hub lock");
        inner
            .channels
            .entry(channel_id.to_string())
            .or_default()
            .insert(conn.id, sub.clone());
        sub
    }

    /// Drop one subscription.
    pub fn unsubscribe(&self, conn: &Conn, channel_id: &ChannelId) {
        let mut inner = self.inner.write().expect("hub lock");
        if let Some(subs) = inner.channels.get_mut(channel_id.as_str()) {
            subs.remove(&conn.id);
            if subs.is_empty() {
                inner.channels.remove(channel_id.as_str());
            }
        }
    }

    /// Decide (and cache) whether `sub` may receive an event with `label`.
    fn allowed(&self, st: &mut SubState, conn: &Conn, label: &Label) -> bool {
        let generation = self.authz.generation();
        if st.generation != generation {
            st.decisions.clear();
            st.generation = generation;
        }
        let Some(attrs) = &st.attrs else { return false };
        if let Some(d) = st.decisions.get(label) {
            return *d;
        }
        let ctx = ChannelCtx {
            is_member: st.is_member,
            msg_label: Some(label.clone()),
            ..Default::default()
        };
        let d = self
            .authz
            .channel(&conn.principal, ChannelAction::ReadMessage, attrs, &ctx);
        if st.decisions.len() > 64 {
            st.decisions.clear();
        }
        st.decisions.insert(label.clone(), d);
        d
    }

    /// Deliver one event to a live subscription, applying its effect first.
    fn deliver(&self, st: &mut SubState, conn: &Conn, ev: &Arc<Published>) {
        if let Some(seq) = ev.seq {
            if seq <= st.last_seq {
                return;
            }
            st.last_seq = seq;
        }
        apply_effect(st, conn, &ev.effect);
        if self.allowed(st, conn, &ev.label)
            && conn.offer(Outbound::Event(ev.clone()), &self.metrics)
        {
            self.metrics.ws_deliveries.inc();
        }
    }

    /// Deliver a replayed event (from storage) during resume, through the same checks.
    pub async fn replay(&self, sub: &Sub, ev: Arc<Published>) {
        let send = {
            let mut st = sub.state.lock().expect("sub lock");
            if let Some(seq) = ev.seq {
                st.last_seq = st.last_seq.max(seq);
            }
            apply_effect(&mut st, &sub.conn, &ev.effect);
            self.allowed(&mut st, &sub.conn, &ev.label)
        };
        if send && sub.conn.send(Outbound::Event(ev)).await {
            self.metrics.ws_deliveries.inc();
        }
    }

    /// Set what storage said about the channel before replay starts.
    pub fn prepare(&self, sub: &Sub, attrs: ChannelAttrs, is_member: bool, after_seq: Seq) {
        let mut st = sub.state.lock().expect("sub lock");
        st.attrs = Some(attrs);
        st.is_member = is_member;
        st.last_seq = after_seq.get();
        st.decisions.clear();
    }

    /// Switch a subscription to live after replay up to `replayed_through`:
    /// buffered events beyond it are delivered, in order.
    pub fn go_live(&self, sub: &Sub, replayed_through: i64) {
        let mut st = sub.state.lock().expect("sub lock");
        st.last_seq = st.last_seq.max(replayed_through);
        let buffered = match std::mem::replace(&mut st.mode, Mode::Live) {
            Mode::Buffering(b) => b,
            Mode::Live => Vec::new(),
        };
        for ev in buffered {
            self.deliver(&mut st, &sub.conn, &ev);
        }
    }

    /// Fan a committed event out to the channel's subscribers.
    pub fn publish(&self, ev: Arc<Published>) {
        let inner = self.inner.read().expect("hub lock");
        let Some(subs) = inner.channels.get(&ev.channel_id) else {
            return;
        };
        for sub in subs.values() {
            let mut st = sub.state.lock().expect("sub lock");
            match &mut st.mode {
                Mode::Buffering(buf) => {
                    if ev.seq.is_none() {
                        continue;
                    }
                    if buf.len() >= BUFFER_MAX {
                        sub.conn.close(CloseReason {
                            code: CLOSE_SLOW_CONSUMER,
                            reason: "too many events during resume: reconnect".into(),
                        });
                    } else {
                        buf.push(ev.clone());
                    }
                }
                Mode::Live => {
                    if ev.seq.is_none() && !st.is_member {
                        continue;
                    }
                    self.deliver(&mut st, &sub.conn, &ev);
                }
            }
        }
    }
}
