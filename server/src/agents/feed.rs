//! The activity feed: each committed message, as metadata, to whoever runs
//! agents (the in-process runtime or remote workers). A subscriber only ever
//! gets the [`Activity`] [`FeedItem::for_reader`] cuts for it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::{broadcast, mpsc};
use warroom_agent_runtime::platform::{match_words, Activity, InterestMatcher, WORDS_MATCHED};

use crate::authz::{Authz, ChannelAction, ChannelCtx};
use crate::chat::cache::CachedChannel;
use crate::label::Label;
use crate::principal::{Principal, Role, UserKind};

/// New messages, as metadata, to whoever runs agents (in process or remote).
/// Subscribers get an [`Activity`] cut for them from each [`FeedItem`]: only
/// for messages they may read, and with matches against their own interest
/// words instead of anything derived from the text.
#[derive(Clone)]
pub struct ActivityFeed {
    tx: broadcast::Sender<Arc<FeedItem>>,
    /// Authors and labels of recent top-level messages, so replies can wake them.
    roots: Arc<Mutex<RecentRoots>>,
}

#[derive(Default)]
struct RecentRoots {
    map: HashMap<String, (String, Label)>,
    order: std::collections::VecDeque<String>,
}

const RECENT_ROOTS: usize = 200_000;

/// A committed message as the activity feed holds it inside the server. It
/// never leaves the process as it is: [`FeedItem::for_reader`] makes each
/// subscriber's [`Activity`].
#[derive(Debug)]
pub struct FeedItem {
    /// What every reader of the message may learn (interests still empty).
    activity: Activity,
    /// The label of the thread's first message, when its author is known.
    root_label: Option<Label>,
    /// The message's words for interest matching; they stay in the server.
    words: Vec<String>,
}

impl FeedItem {
    /// The channel the message was posted in.
    pub fn channel_id(&self) -> &str {
        &self.activity.channel_id
    }

    /// The message's label.
    pub fn label(&self) -> &Label {
        &self.activity.label
    }

    /// The item for one subscriber: nothing unless `may_read` allows the
    /// message's label (in its channel), the thread's author only if it also
    /// allows the thread root's label, and the ids of the subscriber's
    /// interest words the message contains.
    pub fn for_reader(
        &self,
        mut may_read: impl FnMut(&Label) -> bool,
        interests: &InterestMatcher,
    ) -> Option<Activity> {
        if !may_read(&self.activity.label) {
            return None;
        }
        let mut a = self.activity.clone();
        if let Some(root) = &self.root_label {
            if !may_read(root) {
                a.thread_author_id = None;
            }
        }
        a.interests = interests.matches(&self.words);
        Some(a)
    }
}

impl Default for ActivityFeed {
    fn default() -> Self {
        let (tx, _) = broadcast::channel(65_536);
        Self {
            tx,
            roots: Arc::default(),
        }
    }
}

/// Announces each committed message to the feed (cheap when nobody listens).
/// The label is the one the writer stored with the message, already typed.
impl crate::chat::writer::CommitListener for ActivityFeed {
    fn committed(&self, e: &crate::chat::writer::Committed<'_>) {
        if self.tx.receiver_count() == 0 {
            return;
        }
        let (m, author, label) = (e.message, e.author, e.label.clone());
        let thread_author = {
            let mut r = self.roots.lock().expect("roots lock");
            match &m.thread_root {
                Some(root) => r.map.get(root).cloned(),
                None => {
                    r.map
                        .insert(m.id.clone(), (author.id.to_string(), label.clone()));
                    r.order.push_back(m.id.clone());
                    if r.order.len() > RECENT_ROOTS {
                        if let Some(old) = r.order.pop_front() {
                            r.map.remove(&old);
                        }
                    }
                    None
                }
            }
        };
        let (thread_author_id, root_label) = thread_author.unzip();
        let _ = self.tx.send(Arc::new(FeedItem {
            activity: Activity {
                thread_author_id,
                channel_id: m.channel_id.clone(),
                seq: m.seq,
                message_id: m.id.clone(),
                author_id: author.id.to_string(),
                author_is_agent: author.kind == UserKind::Agent,
                thread_root: m.thread_root.clone(),
                label,
                mentions: e.mentions.to_vec(),
                interests: Vec::new(),
            },
            root_label,
            words: match_words(&m.body, WORDS_MATCHED),
        }));
    }
}

impl ActivityFeed {
    /// Listen from now on. Each item must go through
    /// [`FeedItem::for_reader`] before it leaves the process.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<FeedItem>> {
        self.tx.subscribe()
    }

    /// The feed for the in-process agent runtime, matched against its
    /// interest words. The runtime is the server itself and drives every
    /// agent; each agent still reads a message only as itself.
    pub fn in_process(&self, interests: InterestMatcher) -> mpsc::Receiver<Activity> {
        let mut rx = self.subscribe();
        let (tx, out) = mpsc::channel(65_536);
        tokio::spawn(async move {
            use tokio::sync::broadcast::error::RecvError;
            loop {
                match rx.recv().await {
                    Ok(item) => {
                        let Some(a) = item.for_reader(|_| true, &interests) else {
                            continue;
                        };
                        if tx.send(a).await.is_err() {
                            return;
                        }
                    }
                    Err(RecvError::Lagged(n)) => {
                        tracing::warn!(missed = n, "agent runtime fell behind the activity feed");
                    }
                    Err(RecvError::Closed) => return,
                }
            }
        });
        out
    }
}

/// Whose reading decides what a feed subscriber receives. An admin reads as
/// themself. A worker account may read no channel itself (policy forbids it
/// everything but `agent.run`), so it receives what an agent with the worker's
/// clearance, a member of no channel, could read: public channels, within
/// that clearance. Its agents read the messages themselves, with their own
/// tokens.
fn feed_reader(p: &Principal) -> Principal {
    if p.role != Role::Worker {
        return p.clone();
    }
    Principal {
        // Not the account's id: a membership it was somehow given counts for nothing.
        id: crate::ids::UserId::from_trusted(format!("worker:{}", p.id)),
        handle: p.handle.clone(),
        display_name: p.display_name.clone(),
        role: Role::Agent,
        kind: p.kind,
        department: None,
        clearance: p.clearance.clone(),
        active: p.active,
    }
}

/// Read decisions most remembered per activity subscriber (a few per
/// channel and label in use; cleared when full).
const READ_DECISIONS_KEPT: usize = 4096;

/// One activity subscriber's reading: whether it may read a message, decided
/// as a message read is (`chat::read_message`: the cached channel, the
/// reader's membership and ownership, and the message's label through
/// Cedar's `message.read`), and remembered per channel and label while the
/// channel's cache entry and the policy generation stay the same.
pub struct ActivityReader {
    reader: Principal,
    by: HashMap<(String, Label), ReadDecision>,
}

struct ReadDecision {
    channel: Arc<CachedChannel>,
    generation: u64,
    allowed: bool,
}

impl ActivityReader {
    /// The reading of `subscriber` (see [`feed_reader`] for workers).
    pub(super) fn new(subscriber: &Principal) -> Self {
        Self {
            reader: feed_reader(subscriber),
            by: HashMap::new(),
        }
    }

    /// `item`, posted in `channel`, as the subscriber may receive it.
    pub(super) fn cut(
        &mut self,
        authz: &Authz,
        channel: &Arc<CachedChannel>,
        item: &FeedItem,
        interests: &InterestMatcher,
    ) -> Option<Activity> {
        let generation = authz.generation();
        if self.by.len() >= READ_DECISIONS_KEPT {
            self.by.clear();
        }
        item.for_reader(
            |label| self.decide(authz, channel, generation, label),
            interests,
        )
    }

    /// The remembered decision for `label` in `channel`, or a fresh one.
    fn decide(
        &mut self,
        authz: &Authz,
        channel: &Arc<CachedChannel>,
        generation: u64,
        label: &Label,
    ) -> bool {
        let key = (channel.attrs.id.clone(), label.clone());
        if let Some(d) = self.by.get(&key) {
            if d.generation == generation && Arc::ptr_eq(&d.channel, channel) {
                return d.allowed;
            }
        }
        let p = &self.reader;
        let ctx = ChannelCtx {
            is_member: channel.members.contains(p.id.as_str()),
            is_owner: channel.attrs.created_by == p.id,
            msg_label: Some(label.clone()),
            ..Default::default()
        };
        let allowed = authz.channel(p, ChannelAction::ReadMessage, &channel.attrs, &ctx);
        self.by.insert(
            key,
            ReadDecision {
                channel: channel.clone(),
                generation,
                allowed,
            },
        );
        allowed
    }
}
