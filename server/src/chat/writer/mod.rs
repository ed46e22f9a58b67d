//! The channel writer: one task that owns every change to a channel's
//! sequence. Posts are group-committed (many in one transaction, one fsync),
//! and every other sequenced change (edits, deletions, reactions, membership,
//! channel updates) goes through the same queue, so events are committed and
//! published in sequence order. A post is acknowledged only after its
//! transaction commits.

use std::collections::HashMap;
use std::sync::Arc;

use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, DatabaseConnection, DatabaseTransaction, EntityTrait,
    QueryFilter, Set,
};
use tokio::sync::{mpsc, oneshot};

use crate::chat::cache::ChannelCache;
use crate::chat::{ChatError, ChatResult};
use crate::directory::Directory;
use crate::ids::{ChannelId, Seq, UserId};
use crate::label::Label;
use crate::metrics::Metrics;
use crate::principal::{ChannelAttrs, Principal};
use crate::realtime::{Effect, Hub, Published};
use crate::storage::entities::{
    channel, channel_event, membership, mention, message, message_citation, reaction,
};

/// Most operations committed in one transaction.
const MAX_BATCH: usize = 512;

mod change;

/// Rows per multi-row statement within a group commit.
const CHUNK: usize = 64;

/// A validated, authorized post waiting for its sequence number.
#[derive(Debug, Clone)]
pub struct NewPost {
    pub id: String,
    pub channel_id: String,
    pub author: Arc<Principal>,
    pub thread_root: Option<String>,
    pub body: String,
    pub label: Label,
    pub idempotency_key: Option<String>,
    pub mention_ids: Vec<String>,
    /// Cited chunks as (chunk id, document id), checked by the caller.
    pub citations: Vec<(String, String)>,
    /// Which brain wrote it (agents only).
    pub brain: Option<String>,
    /// Posted in a direct-message channel: never embedded or mined.
    pub direct: bool,
}

/// The stored message, and whether this call created it (false: an
/// idempotent retry returned the original).
#[derive(Debug, Clone)]
pub struct PostOutcome {
    pub message: message::Model,
    pub created: bool,
}

/// A sequenced change to a channel other than a new message.
#[derive(Debug, Clone)]
pub enum Change {
    Edit {
        message_id: String,
        body: String,
        mention_ids: Vec<String>,
    },
    Delete {
        message_id: String,
    },
    ReactionAdd {
        message_id: String,
        emoji: String,
    },
    ReactionRemove {
        message_id: String,
        emoji: String,
    },
    Join {
        user_id: String,
    },
    Leave {
        user_id: String,
    },
    Update {
        topic: String,
    },
    Archive,
}

/// A change, who makes it, and to which channel.
#[derive(Debug, Clone)]
pub struct ChannelChange {
    pub channel_id: String,
    pub actor_id: String,
    pub change: Change,
}

/// A committed event on its way to the hub. New messages are rendered by the
/// publisher task, off the writer, and only if someone is subscribed.
pub enum Pending {
    Ready(Arc<Published>),
    Created {
        message: Box<message::Model>,
        author: Arc<Principal>,
        label: Label,
        mentions: Vec<String>,
        direct: bool,
    },
}

enum Op {
    Post(NewPost, oneshot::Sender<ChatResult<PostOutcome>>),
    Change(ChannelChange, oneshot::Sender<ChatResult<Option<i64>>>),
}

/// A message the writer committed, as start-up's subscribers hear it.
pub struct Committed<'a> {
    pub message: &'a message::Model,
    pub author: &'a Principal,
    pub label: &'a Label,
    /// Ids of the users the body mentions.
    pub mentions: &'a [String],
    /// Posted in a direct-message channel, private to its members.
    pub direct: bool,
}

/// Hears every committed message besides the hub (the agents' activity feed,
/// the queue that embeds messages for the insights job). Subscribers are
/// registered when the writer starts, so chat depends on none of them. Called
/// on the publisher task after the message is durable: it must not block.
pub trait CommitListener: Send + Sync + 'static {
    fn committed(&self, event: &Committed<'_>);
}

/// Handle for submitting writes.
#[derive(Clone)]
pub struct Writer {
    tx: mpsc::Sender<Op>,
}

impl Writer {
    /// Start the writer task and its publisher task.
    pub fn start(
        db: DatabaseConnection,
        hub: Arc<Hub>,
        directory: Arc<Directory>,
        channels: Arc<ChannelCache>,
        metrics: Arc<Metrics>,
        listeners: Vec<Arc<dyn CommitListener>>,
        gate: crate::storage::WriteGate,
    ) -> Self {
        let (tx, rx) = mpsc::channel(8192);
        let (pub_tx, mut pub_rx) = mpsc::channel::<Vec<Pending>>(1024);
        tokio::spawn(async move {
            while let Some(events) = pub_rx.recv().await {
                for ev in events {
                    match ev {
                        Pending::Ready(ev) => hub.publish(ev),
                        Pending::Created {
                            message,
                            author,
                            label,
                            mentions,
                            direct,
                        } => {
                            let event = Committed {
                                message: &message,
                                author: &author,
                                label: &label,
                                mentions: &mentions,
                                direct,
                            };
                            for l in &listeners {
                                l.committed(&event);
                            }
                            if !hub.has_subscribers(&ChannelId::from_trusted(
                                message.channel_id.as_str(),
                            )) {
                                continue;
                            }
                            hub.publish(Arc::new(super::events::message_created(
                                &message, &author, label,
                            )));
                        }
                    }
                }
            }
        });
        let task = WriterTask {
            db,
            directory,
            channels,
            metrics,
            publish: pub_tx,
            gate,
        };
        tokio::spawn(task.run(rx));
        Self { tx }
    }

    /// Store a post; resolves once it is durable.
    pub async fn post(&self, post: NewPost) -> ChatResult<PostOutcome> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(Op::Post(post, tx))
            .await
            .map_err(|_| ChatError::internal("writer stopped"))?;
        rx.await
            .map_err(|_| ChatError::internal("writer dropped a post"))?
    }

    /// Apply a change; resolves to its sequence number (`None`: nothing changed).
    pub async fn change(&self, change: ChannelChange) -> ChatResult<Option<i64>> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(Op::Change(change, tx))
            .await
            .map_err(|_| ChatError::internal("writer stopped"))?;
        rx.await
            .map_err(|_| ChatError::internal("writer dropped a change"))?
    }
}

struct WriterTask {
    db: DatabaseConnection,
    directory: Arc<Directory>,
    channels: Arc<ChannelCache>,
    metrics: Arc<Metrics>,
    publish: mpsc::Sender<Vec<Pending>>,
    gate: crate::storage::WriteGate,
}

enum Outcome {
    Post(ChatResult<PostOutcome>),
    Change(ChatResult<Option<i64>>),
}

impl WriterTask {
    async fn run(self, mut rx: mpsc::Receiver<Op>) {
        while let Some(first) = rx.recv().await {
            let mut ops = vec![first];
            while ops.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(op) => ops.push(op),
                    Err(_) => break,
                }
            }
            self.metrics.write_batch_size.observe(ops.len() as f64);
            let started = std::time::Instant::now();
            self.run_ops(ops).await;
            self.metrics
                .write_batch_seconds
                .observe(started.elapsed().as_secs_f64());
        }
    }

    async fn run_ops(&self, ops: Vec<Op>) {
        let kinds: Vec<&Op> = ops.iter().collect();
        match self.try_batch(&kinds).await {
            Ok((outcomes, events)) => {
                if !events.is_empty() {
                    let _ = self.publish.send(events).await;
                }
                for (op, outcome) in ops.into_iter().zip(outcomes) {
                    match (op, outcome) {
                        (Op::Post(_, tx), Outcome::Post(r)) => {
                            let _ = tx.send(r);
                        }
                        (Op::Change(_, tx), Outcome::Change(r)) => {
                            let _ = tx.send(r);
                        }
                        _ => unreachable!("outcomes are produced in op order"),
                    }
                }
            }
            Err(e) if ops.len() == 1 => {
                let err = ChatError::from(e);
                match ops.into_iter().next().expect("one op") {
                    Op::Post(_, tx) => {
                        let _ = tx.send(Err(err));
                    }
                    Op::Change(_, tx) => {
                        let _ = tx.send(Err(err));
                    }
                }
            }
            Err(e) => {
                // One bad operation must not fail its neighbours: retry each alone.
                tracing::warn!(error = %e, n = ops.len(), "group commit failed; retrying one by one");
                for op in ops {
                    Box::pin(self.run_ops(vec![op])).await;
                }
            }
        }
    }

    async fn try_batch(&self, ops: &[&Op]) -> Result<(Vec<Outcome>, Vec<Pending>), sea_orm::DbErr> {
        let _gate = self.gate.enter().await;
        let txn = crate::storage::begin_write(&self.db).await?;
        let mut outcomes = Vec::with_capacity(ops.len());
        let mut events = Vec::new();
        let mut i = 0;
        while i < ops.len() {
            if let Op::Post(..) = ops[i] {
                let mut posts = Vec::new();
                while let Some(Op::Post(p, _)) = ops.get(i) {
                    posts.push(p);
                    i += 1;
                }
                let results = self.insert_posts(&txn, &posts, &mut events).await?;
                outcomes.extend(results.into_iter().map(Outcome::Post));
            } else if let Op::Change(c, _) = ops[i] {
                let r = self.apply_change(&txn, c, &mut events).await?;
                outcomes.push(Outcome::Change(r));
                i += 1;
            }
        }
        txn.commit().await?;
        // Membership and channel changes are visible to the next request.
        for op in ops {
            if let Op::Change(c, _) = op {
                if matches!(
                    c.change,
                    Change::Join { .. }
                        | Change::Leave { .. }
                        | Change::Archive
                        | Change::Update { .. }
                ) {
                    self.channels
                        .invalidate(&ChannelId::from_trusted(c.channel_id.as_str()));
                }
            }
        }
        let posted = outcomes
            .iter()
            .filter(|o| matches!(o, Outcome::Post(Ok(PostOutcome { created: true, .. }))))
            .count();
        self.metrics.messages_posted.inc_by(posted as u64);
        Ok((outcomes, events))
    }

    async fn insert_posts(
        &self,
        txn: &DatabaseTransaction,
        posts: &[&NewPost],
        events: &mut Vec<Pending>,
    ) -> Result<Vec<ChatResult<PostOutcome>>, sea_orm::DbErr> {
        // Idempotent retries: return the stored original instead of a new message.
        let mut existing: HashMap<(String, String), message::Model> = HashMap::new();
        let keyed: Vec<(&str, &str)> = posts
            .iter()
            .filter_map(|p| {
                p.idempotency_key
                    .as_deref()
                    .map(|k| (p.author.id.as_str(), k))
            })
            .collect();
        // Fixed-size chunks keep statement shapes few, so prepared statements are reused.
        for chunk in keyed.chunks(CHUNK) {
            let mut cond = Condition::any();
            for (a, k) in chunk {
                cond = cond.add(
                    Condition::all()
                        .add(message::Column::AuthorId.eq(*a))
                        .add(message::Column::IdempotencyKey.eq(*k)),
                );
            }
            for m in message::Entity::find().filter(cond).all(txn).await? {
                let key = (
                    m.author_id.clone(),
                    m.idempotency_key.clone().unwrap_or_default(),
                );
                existing.insert(key, m);
            }
        }

        // Which posts are new, deduplicated within the batch too.
        let mut results: Vec<Option<ChatResult<PostOutcome>>> = vec![None; posts.len()];
        let mut fresh: Vec<usize> = Vec::new();
        let mut batch_keys: HashMap<(String, String), usize> = HashMap::new();
        let mut dup_of: Vec<(usize, usize)> = Vec::new();
        for (i, p) in posts.iter().enumerate() {
            if let Some(k) = &p.idempotency_key {
                let key = (p.author.id.to_string(), k.clone());
                if let Some(m) = existing.get(&key) {
                    results[i] = Some(Ok(PostOutcome {
                        message: m.clone(),
                        created: false,
                    }));
                    continue;
                }
                if let Some(&first) = batch_keys.get(&key) {
                    dup_of.push((i, first));
                    continue;
                }
                batch_keys.insert(key, i);
            }
            fresh.push(i);
        }

        // Reserve a block of sequence numbers per channel.
        let mut per_channel: HashMap<&str, Vec<usize>> = HashMap::new();
        for &i in &fresh {
            per_channel
                .entry(posts[i].channel_id.as_str())
                .or_default()
                .push(i);
        }
        let now = chrono::Utc::now();
        let mut rows = Vec::with_capacity(fresh.len());
        let mut mention_rows = Vec::new();
        let mut citation_rows = Vec::new();
        let mut models: Vec<(usize, message::Model)> = Vec::with_capacity(fresh.len());
        let wanted: Vec<(&str, i64)> = per_channel
            .iter()
            .map(|(c, v)| (*c, v.len() as i64))
            .collect();
        let reserved = crate::storage::sequence::reserve_many(txn, &wanted).await?;
        for (channel_id, idxs) in &per_channel {
            let Some(&last) = reserved.get(*channel_id) else {
                for &i in idxs {
                    results[i] = Some(Err(ChatError::conflict("channel is archived or gone")));
                }
                continue;
            };
            let mut seq = last - idxs.len() as i64;
            for &i in idxs {
                seq += 1;
                let p = posts[i];
                let m = message::Model {
                    id: p.id.clone(),
                    channel_id: p.channel_id.clone(),
                    seq,
                    author_id: p.author.id.to_string(),
                    thread_root: p.thread_root.clone(),
                    body: p.body.clone(),
                    label: p.label.to_string(),
                    edited_at: None,
                    deleted: false,
                    idempotency_key: p.idempotency_key.clone(),
                    created_at: now,
                    brain: p.brain.clone(),
                };
                for (chunk_id, document_id) in &p.citations {
                    citation_rows.push(message_citation::ActiveModel {
                        message_id: Set(p.id.clone()),
                        chunk_id: Set(chunk_id.clone()),
                        document_id: Set(document_id.clone()),
                    });
                }
                for uid in &p.mention_ids {
                    mention_rows.push(mention::ActiveModel {
                        message_id: Set(m.id.clone()),
                        user_id: Set(uid.clone()),
                        channel_id: Set(m.channel_id.clone()),
                        seq: Set(seq),
                    });
                }
                rows.push(message::ActiveModel::from(m.clone()));
                models.push((i, m));
            }
        }
        for chunk in rows.chunks(CHUNK) {
            message::Entity::insert_many(chunk.to_vec())
                .exec(txn)
                .await?;
        }
        for chunk in mention_rows.chunks(CHUNK) {
            mention::Entity::insert_many(chunk.to_vec())
                .exec(txn)
                .await?;
        }
        for chunk in citation_rows.chunks(CHUNK) {
            message_citation::Entity::insert_many(chunk.to_vec())
                .exec(txn)
                .await?;
        }
        models.sort_by_key(|(_, m)| (m.channel_id.clone(), m.seq));
        for (i, m) in models {
            events.push(Pending::Created {
                message: Box::new(m.clone()),
                author: posts[i].author.clone(),
                label: posts[i].label.clone(),
                mentions: posts[i].mention_ids.clone(),
                direct: posts[i].direct,
            });
            results[i] = Some(Ok(PostOutcome {
                message: m,
                created: true,
            }));
        }
        for (i, first) in dup_of {
            results[i] = Some(match &results[first] {
                Some(Ok(o)) => Ok(PostOutcome {
                    message: o.message.clone(),
                    created: false,
                }),
                Some(Err(e)) => Err(e.clone()),
                None => Err(ChatError::internal("duplicate of an unprocessed post")),
            });
        }
        Ok(results
            .into_iter()
            .map(|r| r.unwrap_or_else(|| Err(ChatError::internal("post not processed"))))
            .collect())
    }

    async fn author(&self, id: &str) -> Option<Arc<Principal>> {
        self.directory
            .get(&UserId::from_trusted(id))
            .await
            .ok()
            .flatten()
    }
}
