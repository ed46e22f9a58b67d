//! One agent turn: observe → decide → retrieve → compose → post.
//!
//! The decision (post, reply, react, join, create a channel, or stay silent)
//! is made from the activation and the agent's persona before any text is
//! read by a model, and a brain only ever returns text: nothing a document or
//! a message says becomes an action. The draft's label is the join of the
//! labels of everything the brain saw; evidence above the channel's label is
//! left out of the context rather than posted and refused.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::brain::{sanitize, BrainError, Compose, Intent};
use crate::heard::{sentence_key, stated};
use crate::label::{Label, Level};
use crate::memory::{Memory, Note};
use crate::platform::{fnv1a, AgentRecord, ChannelInfo, Draft, Evidence, Observed, PlatformError};
use crate::runtime::Runtime;
use crate::scheduler::{Activation, Millis, Reason, TurnRecord};

/// What the agent decided to do.
#[derive(Debug, Clone, PartialEq)]
enum Plan {
    Post {
        channel: ChannelInfo,
        topic: String,
    },
    Reply {
        channel: ChannelInfo,
        trigger: Observed,
        root: String,
    },
    React {
        trigger: Observed,
    },
    Silent,
}

const REACTIONS: &[&str] = &["eyes", "thumbsup", "bulb", "warning"];

/// Share of an agent's own posts that take up a section of its documents it
/// has not talked about yet, rather than one of its standing interests: an
/// even split keeps the department's angle and still walks the documents.
const LEAD_SHARE: f64 = 0.5;

/// The topic a section of a document offers: its title and heading.
fn section_topic(e: &Evidence) -> String {
    let heading = e.heading.trim();
    if heading.is_empty() || heading.eq_ignore_ascii_case(e.document_title.trim()) {
        e.document_title.trim().to_string()
    } else {
        format!("{}: {heading}", e.document_title.trim())
    }
}

/// Take one turn; returns what the scheduler needs and the time spent in the brain.
pub(crate) async fn take_turn(
    rt: &Runtime,
    act: &Activation,
    memory: &mut Memory,
    now: Millis,
) -> (TurnRecord, Duration) {
    let (record, persona) = {
        let sched = rt.sched.lock().expect("scheduler lock");
        let r = sched.record(act.agent).clone();
        let p = sched.template_of(act.agent).persona(&r.name);
        (r, p)
    };
    let mut rng = StdRng::seed_from_u64(fnv1a(
        format!(
            "{}|{}|{}|{:?}",
            rt.cfg.scheduler.seed, record.id, now, act.message_id
        )
        .as_bytes(),
    ));
    memory.stats.turns += 1;
    let plan = match decide(rt, act, &record, &persona.interests, memory, &mut rng).await {
        Ok(p) => p,
        Err(e) => {
            note_platform_error(rt, &record, "decide", &e);
            Plan::Silent
        }
    };
    let mut out = TurnRecord {
        answered: act.trigger_author,
        ..Default::default()
    };
    let mut brain_time = Duration::ZERO;
    // A small local model is slow: spend it on people who asked; the rest of
    // the gossip is written extractively (and marked so).
    let human_asked =
        matches!(act.reason, Reason::Mention | Reason::Reply) && act.trigger_author.is_none();
    let brain_name = if record.brain == "local" && !human_asked && !rt.cfg.local_for_background {
        "extractive"
    } else {
        record.brain.as_str()
    };
    match plan {
        Plan::Silent => {
            memory.stats.silent += 1;
            rt.counters.silent.fetch_add(1, Ordering::Relaxed);
        }
        Plan::React { trigger } => {
            let emoji = REACTIONS[rng.gen_range(0..REACTIONS.len())];
            match rt
                .platform
                .react(&record.id, &trigger.message_id, emoji)
                .await
            {
                Ok(()) => {
                    memory.stats.reactions += 1;
                    rt.counters.reactions.fetch_add(1, Ordering::Relaxed);
                }
                Err(e) => note_platform_error(rt, &record, "react", &e),
            }
            // The server spends the mark on every reaction attempt.
            rt.marks.clear(&record.id);
            remember(memory, &trigger);
        }
        Plan::Post { channel, topic } => {
            // Half the time the agent takes up a section of its documents it
            // was handed before and has not talked about, so over a day it
            // works through its documents instead of circling the few its
            // standing interests retrieve. Only a section the channel may
            // read becomes a topic (the topic is named in the post).
            let topic = if rng.gen_bool(LEAD_SHARE) {
                memory.take_lead(&channel.label).unwrap_or(topic)
            } else {
                topic
            };
            let thread = recent(rt, &record, &channel, memory, now).await;
            let (posted, tokens, bt) = compose_and_post(
                rt,
                &record,
                brain_name,
                persona,
                memory,
                &channel,
                Intent::Post,
                topic,
                thread,
                None,
                now,
            )
            .await;
            brain_time = bt;
            out.tokens = tokens;
            out.answered = None;
            out.posted = posted.map(|id| (id, None));
        }
        Plan::Reply {
            channel,
            trigger,
            root,
        } => {
            let topic = persona
                .interests
                .iter()
                .find(|i| trigger.body.to_lowercase().contains(i.as_str()))
                .cloned()
                .unwrap_or_else(|| first_words(&trigger.body, 12));
            let mut thread = Vec::new();
            if root != trigger.message_id {
                if let Ok(r) = rt.platform.message(&record.id, &root).await {
                    rt.marks.raise(&record.id, &r.label);
                    thread.push(r);
                }
            }
            thread.push(trigger.clone());
            for m in &thread {
                rt.heard.hear(&channel.id, now, &m.body);
            }
            let (posted, tokens, bt) = compose_and_post(
                rt,
                &record,
                brain_name,
                persona,
                memory,
                &channel,
                Intent::Reply,
                topic,
                thread,
                Some(root.clone()),
                now,
            )
            .await;
            brain_time = bt;
            out.tokens = tokens;
            out.posted = posted.map(|id| (id, Some(root)));
            remember(memory, &trigger);
        }
    }
    (out, brain_time)
}

/// The idempotency key of a turn's post: the same for the same agent, turn,
/// intent and place (channel and thread), so a post retried after its answer
/// was lost, or a turn replayed after a restart from the last saved memory,
/// is stored once; two turns never share a key. Nothing random goes in.
fn idempotency_key(
    agent: &str,
    turn: u64,
    intent: Intent,
    channel: &str,
    thread_root: Option<&str>,
) -> String {
    let intent = match intent {
        Intent::Post => "post",
        Intent::Reply => "reply",
    };
    let place = fnv1a(format!("{channel}|{}", thread_root.unwrap_or("")).as_bytes());
    format!("{agent}:{turn}:{intent}:{place:016x}")
}

fn note_platform_error(rt: &Runtime, record: &AgentRecord, what: &str, e: &PlatformError) {
    match e {
        PlatformError::Forbidden(_) | PlatformError::Rejected { .. } => {
            rt.counters.refused.fetch_add(1, Ordering::Relaxed);
            tracing::info!(agent = %record.handle, action = what, error = %e, "refused");
        }
        PlatformError::RateLimited => {
            rt.counters.rate_limited.fetch_add(1, Ordering::Relaxed);
        }
        _ => {
            rt.counters.platform_errors.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(agent = %record.handle, action = what, error = %e, "platform error");
        }
    }
}

fn remember(memory: &mut Memory, m: &Observed) {
    memory.remember(Note {
        channel_id: m.channel_id.clone(),
        message_id: m.message_id.clone(),
        author: m.author_handle.clone(),
        text: m.body.clone(),
        label: m.label.clone(),
    });
    memory.advance(&m.channel_id, m.seq);
}

fn first_words(text: &str, n: usize) -> String {
    text.split_whitespace()
        .take(n)
        .collect::<Vec<_>>()
        .join(" ")
}

async fn channel_info(
    rt: &Runtime,
    agent: &str,
    channel_id: &str,
) -> Result<ChannelInfo, PlatformError> {
    if let Some(c) = rt
        .channels
        .read()
        .expect("channel cache lock")
        .get(channel_id)
    {
        return Ok(c.clone());
    }
    let list = rt.platform.channels(agent).await?;
    let mut cache = rt.channels.write().expect("channel cache lock");
    for c in &list {
        let mut shared = c.clone();
        shared.is_member = false; // membership is per agent; the scheduler tracks it
        cache.insert(c.id.clone(), shared);
    }
    cache
        .get(channel_id)
        .cloned()
        .ok_or_else(|| PlatformError::NotFound(format!("channel {channel_id}")))
}

async fn decide(
    rt: &Runtime,
    act: &Activation,
    record: &AgentRecord,
    interests: &[String],
    memory: &Memory,
    rng: &mut StdRng,
) -> Result<Plan, PlatformError> {
    match act.reason {
        Reason::Mention | Reason::Reply | Reason::Interest => {
            let (Some(channel_id), Some(message_id)) = (&act.channel_id, &act.message_id) else {
                return Ok(Plan::Silent);
            };
            // Whether to let an interest pass is settled before reading it:
            // what an agent reads counts toward its next post, and a read
            // that leads to no act would keep it silent in lower channels.
            let roll: Option<f64> = (act.reason == Reason::Interest).then(|| rng.gen());
            if roll.is_some_and(|r| (0.25..0.35).contains(&r)) {
                return Ok(Plan::Silent);
            }
            let trigger = match rt.platform.message(&record.id, message_id).await {
                Ok(m) => {
                    rt.marks.raise(&record.id, &m.label);
                    m
                }
                // Not readable by this agent (label, membership): it never saw it.
                Err(PlatformError::NotFound(_)) | Err(PlatformError::Forbidden(_)) => {
                    return Ok(Plan::Silent)
                }
                Err(e) => return Err(e),
            };
            let channel = channel_info(rt, &record.id, channel_id).await?;
            let root = trigger
                .thread_root
                .clone()
                .unwrap_or_else(|| trigger.message_id.clone());
            if roll.is_some_and(|r| r < 0.25) {
                return Ok(Plan::React { trigger });
            }
            Ok(Plan::Reply {
                channel,
                trigger,
                root,
            })
        }
        Reason::Spontaneous => {
            let channels = rt
                .sched
                .lock()
                .expect("scheduler lock")
                .channels_of(act.agent);
            let topic = if interests.is_empty() {
                "our work".to_string()
            } else {
                // Rotate through interests so an agent does not repeat itself.
                interests[(memory.stats.turns as usize + rng.gen_range(0..interests.len()))
                    % interests.len()]
                .clone()
            };
            let roll: f64 = rng.gen();
            if roll < 0.03 || channels.is_empty() {
                if let Some(c) = explore(rt, act, record, &topic, rng).await? {
                    return Ok(Plan::Post { channel: c, topic });
                }
            }
            if channels.is_empty() {
                return Ok(Plan::Silent);
            }
            let id = channels[rng.gen_range(0..channels.len())].clone();
            let channel = channel_info(rt, &record.id, &id).await?;
            Ok(Plan::Post { channel, topic })
        }
    }
}

/// Join a channel the agent is not in yet, or (rarely) create one for a topic.
async fn explore(
    rt: &Runtime,
    act: &Activation,
    record: &AgentRecord,
    topic: &str,
    rng: &mut StdRng,
) -> Result<Option<ChannelInfo>, PlatformError> {
    let mine = rt
        .sched
        .lock()
        .expect("scheduler lock")
        .channels_of(act.agent);
    let others: Vec<ChannelInfo> = rt
        .platform
        .channels(&record.id)
        .await?
        .into_iter()
        .filter(|c| !c.is_member && !mine.iter().any(|m| **m == *c.id))
        .collect();
    if !others.is_empty() && (rng.gen_bool(0.8) || !rt.cfg.allow_create_channels) {
        let c = others[rng.gen_range(0..others.len())].clone();
        match rt.platform.join(&record.id, &c.id).await {
            Ok(()) => {
                rt.counters.joins.fetch_add(1, Ordering::Relaxed);
                rt.sched
                    .lock()
                    .expect("scheduler lock")
                    .joined(act.agent, &c.id);
                return Ok(Some(c));
            }
            // Not cleared for it, or not allowed to see it: look elsewhere.
            Err(PlatformError::Forbidden(_)) | Err(PlatformError::NotFound(_)) => return Ok(None),
            Err(e) => return Err(e),
        }
    }
    if !rt.cfg.allow_create_channels {
        return Ok(None);
    }
    let name = format!("{}-watch", slug(topic));
    let label = Label::level(Level::Internal);
    match rt
        .platform
        .create_channel(&record.id, &name, &format!("Watching {topic}"), &label)
        .await
    {
        Ok(c) => {
            rt.counters.channels_created.fetch_add(1, Ordering::Relaxed);
            rt.sched
                .lock()
                .expect("scheduler lock")
                .joined(act.agent, &c.id);
            rt.channels
                .write()
                .expect("channel cache lock")
                .insert(c.id.clone(), c.clone());
            Ok(Some(c))
        }
        Err(PlatformError::Rejected { .. }) | Err(PlatformError::Forbidden(_)) => Ok(None),
        Err(e) => Err(e),
    }
}

fn slug(s: &str) -> String {
    let mut out: String = s
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    out.truncate(40);
    out.trim_matches('-').to_string()
}

/// The newest messages of a channel the agent has not read yet.
async fn recent(
    rt: &Runtime,
    record: &AgentRecord,
    channel: &ChannelInfo,
    memory: &mut Memory,
    now: Millis,
) -> Vec<Observed> {
    let after = memory.cursor(&channel.id);
    match rt
        .platform
        .observe(&record.id, &channel.id, after, rt.cfg.observe_limit)
        .await
    {
        Ok(list) => {
            for m in &list {
                rt.marks.raise(&record.id, &m.label);
                remember(memory, m);
                rt.heard.hear(&channel.id, now, &m.body);
            }
            // Answer-worthy context: the last couple of messages by others.
            let mut others: Vec<Observed> = list
                .into_iter()
                .filter(|m| m.author_id != record.id)
                .collect();
            let skip = others.len().saturating_sub(2);
            others.drain(..skip);
            others
        }
        Err(e) => {
            note_platform_error(rt, record, "observe", &e);
            Vec::new()
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn compose_and_post(
    rt: &Runtime,
    record: &AgentRecord,
    brain_name: &str,
    persona: crate::persona::Persona,
    memory: &mut Memory,
    channel: &ChannelInfo,
    intent: Intent,
    topic: String,
    thread: Vec<Observed>,
    thread_root: Option<String>,
    now: Millis,
) -> (Option<String>, u32, Duration) {
    let query = match thread.last() {
        Some(m) => format!("{topic} {}", first_words(&m.body, 40)),
        None => topic.clone(),
    };
    let evidence: Vec<Evidence> = match rt
        .platform
        .retrieve(&record.id, &query, rt.cfg.retrieve_k, &channel.label)
        .await
    {
        Ok(ev) => {
            rt.counters.retrievals.fetch_add(1, Ordering::Relaxed);
            memory.stats.retrievals += 1;
            for e in &ev {
                rt.marks.raise(&record.id, &e.label);
                memory.lead(&section_topic(e), &e.label);
            }
            // Only what the channel may receive goes into the context.
            ev.into_iter()
                .filter(|e| e.label.within(&channel.label))
                .collect()
        }
        Err(e) => {
            note_platform_error(rt, record, "retrieve", &e);
            Vec::new()
        }
    };
    let thread: Vec<Observed> = thread
        .into_iter()
        .filter(|m| m.label.within(&channel.label))
        .collect();
    // The server raises a post to everything it handed this agent since its
    // last post; when that is above the channel, posting would be refused:
    // stay silent (the mark lapses, or a post where it fits spends it).
    let mark = rt.marks.get(&record.id);
    if mark.as_ref().is_some_and(|m| !m.within(&channel.label)) {
        memory.stats.silent += 1;
        rt.counters.silent.fetch_add(1, Ordering::Relaxed);
        return (None, 0, Duration::ZERO);
    }
    let summary_fits = memory
        .summary_label
        .as_ref()
        .is_none_or(|l| l.within(&channel.label));
    let mem_text = if summary_fits {
        memory.summary.clone()
    } else {
        String::new()
    };
    let req = Compose {
        persona,
        intent,
        topic,
        thread: thread.clone(),
        evidence: evidence.clone(),
        memory: mem_text,
        max_tokens: rt.cfg.max_tokens,
        heard: rt.heard.recent(&channel.id, now),
        said: memory.said.iter().copied().collect(),
    };
    let brain = rt.brains.get(brain_name);
    let started = Instant::now();
    let mut result = brain.compose(&req).await;
    let mut brain_kind = brain.kind();
    // A failed model, or a model's message that does not rest on what it was
    // given (a small model's greeting, apology or invented event), is
    // written extractively instead, from the same evidence.
    let write_extractively = match &result {
        Err(BrainError::Unavailable(e) | BrainError::Failed(e)) => {
            tracing::warn!(agent = %record.handle, brain = brain_kind, error = %e, "brain failed; writing extractively");
            rt.counters.brain_errors.fetch_add(1, Ordering::Relaxed);
            true
        }
        Ok(c) if brain_kind != "extractive" && !crate::brain::grounded(&c.text, &req) => {
            tracing::debug!(agent = %record.handle, brain = brain_kind, text = %c.text, "model text not grounded in its sources; writing extractively");
            rt.counters.ungrounded.fetch_add(1, Ordering::Relaxed);
            true
        }
        _ => false,
    };
    if write_extractively {
        let fallback = rt.brains.fallback();
        brain_kind = fallback.kind();
        result = fallback.compose(&req).await;
    }
    let brain_time = started.elapsed();
    let composed = match result {
        Ok(c) => c,
        Err(_) => {
            memory.stats.silent += 1;
            rt.counters.silent.fetch_add(1, Ordering::Relaxed);
            return (None, 0, brain_time);
        }
    };
    let tokens = composed.prompt_tokens + composed.completion_tokens;
    memory.stats.tokens += tokens as u64;
    let body = sanitize(&composed.text);
    if body.is_empty() {
        memory.stats.silent += 1;
        rt.counters.silent.fetch_add(1, Ordering::Relaxed);
        return (None, tokens, brain_time);
    }
    // The label: the join of everything the brain saw.
    let mut label = Label::level(Level::Public);
    for m in &thread {
        label = label.join(&m.label);
    }
    let mut citations = Vec::new();
    for i in &composed.used_evidence {
        if let Some(e) = evidence.get(*i) {
            label = label.join(&e.label);
            citations.push(e.chunk_id.clone());
        }
    }
    if !req.memory.is_empty() {
        if let Some(l) = &memory.summary_label {
            label = label.join(l);
        }
    }
    // Claim what the server will apply anyway (checked within the channel above).
    if let Some(m) = &mark {
        label = label.join(m);
    }
    let body_posted = body.clone();
    let key = idempotency_key(
        &record.id,
        memory.stats.turns,
        intent,
        &channel.id,
        thread_root.as_deref(),
    );
    let draft = Draft {
        channel_id: channel.id.clone(),
        body,
        thread_root,
        label,
        citations,
        idempotency_key: key,
        brain: brain_kind.to_string(),
    };
    let is_reply = draft.thread_root.is_some();
    // Another agent may have posted the same quote while this one composed:
    // take the quotes for the channel atomically, or stay silent. A person's
    // question is answered whatever the channel heard.
    if req.answers_person() {
        rt.heard.hear(&channel.id, now, &body_posted);
    } else if !rt.heard.claim(&channel.id, now, &body_posted) {
        memory.stats.silent += 1;
        rt.counters.silent.fetch_add(1, Ordering::Relaxed);
        return (None, tokens, brain_time);
    }
    rt.marks.clear(&record.id);
    match rt.platform.post(&record.id, draft).await {
        Ok(p) => {
            memory.advance(&channel.id, p.seq);
            memory.said(stated(&body_posted).into_iter().map(sentence_key));
            if is_reply {
                memory.stats.replies += 1;
                rt.counters.replies.fetch_add(1, Ordering::Relaxed);
            } else {
                memory.stats.posts += 1;
                rt.counters.posts.fetch_add(1, Ordering::Relaxed);
            }
            (Some(p.message_id), tokens, brain_time)
        }
        Err(e) => {
            if matches!(
                e,
                PlatformError::Forbidden(_) | PlatformError::Rejected { .. }
            ) {
                memory.stats.refused += 1;
            }
            note_platform_error(rt, record, "post", &e);
            (None, tokens, brain_time)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idempotency_key_is_deterministic_per_agent_turn_intent_and_place() {
        let agent = "0190a0b2-7c3d-7e4f-8a9b-0c1d2e3f4a5b";
        let key = |turn, intent, root| idempotency_key(agent, turn, intent, "ch-1", root);
        // A retried or replayed turn posts with the same key.
        assert_eq!(key(7, Intent::Post, None), key(7, Intent::Post, None));
        assert_eq!(
            key(7, Intent::Reply, Some("m-1")),
            key(7, Intent::Reply, Some("m-1"))
        );
        // Anything else that differs makes a different key.
        let all = [
            key(7, Intent::Post, None),
            key(8, Intent::Post, None),
            key(7, Intent::Reply, Some("m-1")),
            key(7, Intent::Reply, Some("m-2")),
            idempotency_key(agent, 7, Intent::Post, "ch-2", None),
            idempotency_key("another-agent", 7, Intent::Post, "ch-1", None),
        ];
        let distinct: std::collections::HashSet<_> = all.iter().collect();
        assert_eq!(distinct.len(), all.len(), "{all:?}");
        // The server accepts 1-128 printable ASCII characters.
        let longest = idempotency_key(agent, u64::MAX, Intent::Reply, "ch-1", Some("m-1"));
        assert!(longest.len() <= 128 && longest.bytes().all(|b| b.is_ascii_graphic()));
    }
}
