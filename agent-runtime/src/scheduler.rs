//! The scheduler decides which agent takes a turn when. Agents wake on their
//! own (a Poisson process at their activity level), when mentioned, when
//! someone replies to their post, and when a new post matches their
//! interests. Every wake passes budgets (turns and tokens per agent per hour,
//! tokens globally per hour), a per-agent rate limit, and loop damping: two
//! agents answering each other too often, or a thread where agents keep
//! talking among themselves, stop waking each other for a while.
//!
//! Per-agent state is a few dozen bytes so a million registered agents fit in
//! memory; the scheduler is synchronous and driven by the runtime's clock
//! (real or virtual), which makes it deterministic under test.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::sync::Arc;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::persona::{ActivityLevel, Template};
use crate::platform::{fnv1a, is_matchable, Activity, AgentRecord};

/// Milliseconds on the runtime's clock.
pub type Millis = u64;

const HOUR: Millis = 3_600_000;

/// Limits and knobs.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct SchedulerConfig {
    /// Turns per agent per hour, unless the agent has its own.
    pub turns_per_hour: u32,
    /// Tokens per agent per hour, unless the agent has its own.
    pub tokens_per_hour: u32,
    /// Tokens per hour for all agents together (0: unlimited).
    pub global_tokens_per_hour: u64,
    /// Sustained turns per minute per agent (token bucket rate).
    pub turns_per_minute: f32,
    /// Token bucket size.
    pub burst: f32,
    /// Window in which exchanges between two agents are counted.
    pub loop_window_ms: Millis,
    /// Exchanges between one pair within the window that count as a loop.
    pub loop_max_exchanges: u32,
    /// Agent replies in one thread within the window before it stops waking agents.
    pub thread_max_agent_replies: u32,
    /// How long a damped pair or thread stays quiet.
    pub loop_cooldown_ms: Millis,
    /// Agents woken by interest per new message.
    pub interest_wakes: usize,
    /// Reactive wakes waiting at most (older ones are dropped).
    pub max_pending: usize,
    /// Seed for spontaneous wake times and interest picks.
    pub seed: u64,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        Self {
            turns_per_hour: 30,
            tokens_per_hour: 20_000,
            global_tokens_per_hour: 0,
            turns_per_minute: 2.0,
            burst: 3.0,
            loop_window_ms: 10 * 60_000,
            loop_max_exchanges: 6,
            thread_max_agent_replies: 12,
            loop_cooldown_ms: 30 * 60_000,
            interest_wakes: 2,
            max_pending: 100_000,
            seed: 7,
        }
    }
}

/// Why an agent woke.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Hash)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    Mention,
    Reply,
    Interest,
    Spontaneous,
}

/// A turn to take.
#[derive(Debug, Clone, PartialEq)]
pub struct Activation {
    /// Index of the agent in the scheduler.
    pub agent: u32,
    pub reason: Reason,
    /// The channel and message that caused it (none for spontaneous turns).
    pub channel_id: Option<Arc<str>>,
    pub message_id: Option<String>,
    /// Thread the trigger belongs to (its root), if any.
    pub thread_root: Option<String>,
    /// Who wrote the trigger.
    pub trigger_author: Option<u32>,
}

/// Counters of scheduling decisions.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct SchedStats {
    pub activations: u64,
    pub mentions: u64,
    pub replies: u64,
    pub interests: u64,
    pub spontaneous: u64,
    pub paused_skips: u64,
    pub budget_denied: u64,
    pub global_budget_denied: u64,
    pub rate_limited: u64,
    pub damped: u64,
    pub loops_detected: u64,
    pub dropped_pending: u64,
    pub tokens: u64,
}

/// An agent as the scheduler keeps it.
struct Slot {
    record: AgentRecord,
    template: u16,
    channels: Box<[u32]>,
    window_start: Millis,
    turns_used: u32,
    tokens_used: u32,
    bucket: f32,
    bucket_at: Millis,
}

#[derive(Default)]
struct PairState {
    window_start: Millis,
    count: u32,
    damped_until: Millis,
}

/// What the runtime reports after a turn.
#[derive(Debug, Clone, Default)]
pub struct TurnRecord {
    pub tokens: u32,
    /// The message posted, if any: (message id, thread root or itself if top-level).
    pub posted: Option<(String, Option<String>)>,
    /// The agent this turn answered (for loop detection).
    pub answered: Option<u32>,
}

/// The scheduler.
pub struct Scheduler {
    cfg: SchedulerConfig,
    templates: Vec<Template>,
    slots: Vec<Slot>,
    by_id: HashMap<u64, u32>,
    channel_ids: Vec<Arc<str>>,
    channel_index: HashMap<Arc<str>, u32>,
    /// channel → template → member agents.
    members: HashMap<u32, HashMap<u16, Vec<u32>>>,
    /// The interest words registered with the activity feed (id = position).
    vocabulary: Vec<String>,
    /// Interest id → templates interested in it.
    interests: Vec<Vec<u16>>,
    spontaneous: BinaryHeap<Reverse<(Millis, u32)>>,
    pending: VecDeque<Activation>,
    urgent: VecDeque<Activation>,
    /// Recent top-level posts by our agents: message id → author.
    authored: HashMap<String, u32>,
    authored_order: VecDeque<String>,
    pairs: HashMap<(u32, u32), PairState>,
    threads: HashMap<String, PairState>,
    global_window: Millis,
    global_tokens: u64,
    rng: StdRng,
    stats: SchedStats,
}

const AUTHORED_KEEP: usize = 200_000;

impl Scheduler {
    /// An empty scheduler over these templates.
    pub fn new(cfg: SchedulerConfig, templates: Vec<Template>) -> Self {
        let vocabulary = interest_words(&templates);
        let mut interests: Vec<Vec<u16>> = vec![Vec::new(); vocabulary.len()];
        for (i, t) in templates.iter().enumerate() {
            for w in &t.interests {
                let w = w.to_lowercase();
                if let Some(id) = vocabulary.iter().position(|v| *v == w) {
                    interests[id].push(i as u16);
                }
            }
        }
        Self {
            rng: StdRng::seed_from_u64(cfg.seed),
            cfg,
            templates,
            slots: Vec::new(),
            by_id: HashMap::new(),
            channel_ids: Vec::new(),
            channel_index: HashMap::new(),
            members: HashMap::new(),
            vocabulary,
            interests,
            spontaneous: BinaryHeap::new(),
            pending: VecDeque::new(),
            urgent: VecDeque::new(),
            authored: HashMap::new(),
            authored_order: VecDeque::new(),
            pairs: HashMap::new(),
            threads: HashMap::new(),
            global_window: 0,
            global_tokens: 0,
            stats: SchedStats::default(),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &SchedulerConfig {
        &self.cfg
    }

    /// The interest words to register with the activity feed: the feed
    /// reports matches as positions in this list.
    pub fn interest_words(&self) -> &[String] {
        &self.vocabulary
    }

    /// Counters so far.
    pub fn stats(&self) -> &SchedStats {
        &self.stats
    }

    /// Number of agents.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// Whether there are no agents.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// The record of agent `idx`.
    pub fn record(&self, idx: u32) -> &AgentRecord {
        &self.slots[idx as usize].record
    }

    /// The template of agent `idx`.
    pub fn template_of(&self, idx: u32) -> &Template {
        &self.templates[self.slots[idx as usize].template as usize]
    }

    /// Index of an agent by id.
    pub fn index_of(&self, id: &str) -> Option<u32> {
        self.by_id
            .get(&fnv1a(id.as_bytes()))
            .copied()
            .filter(|i| self.slots[*i as usize].record.id == id)
    }

    fn channel_idx(&mut self, id: &str) -> u32 {
        if let Some(i) = self.channel_index.get(id) {
            return *i;
        }
        let arc: Arc<str> = Arc::from(id);
        let i = self.channel_ids.len() as u32;
        self.channel_ids.push(arc.clone());
        self.channel_index.insert(arc, i);
        i
    }

    /// Add an agent (or update it if known); it first wakes after a random
    /// delay at its activity level. Agents of unknown templates are refused.
    pub fn upsert(&mut self, record: AgentRecord, now: Millis) -> Result<u32, String> {
        let template = self
            .templates
            .iter()
            .position(|t| t.name == record.template)
            .ok_or_else(|| {
                format!(
                    "agent {} has unknown template {:?}",
                    record.handle, record.template
                )
            })? as u16;
        let channels: Box<[u32]> = record
            .channels
            .iter()
            .map(|c| self.channel_idx(c))
            .collect();
        if let Some(idx) = self.index_of(&record.id) {
            let old: Vec<u32> = self.slots[idx as usize].channels.to_vec();
            for c in old {
                self.remove_member(c, idx);
            }
            for c in channels.iter() {
                self.add_member(*c, template, idx);
            }
            let slot = &mut self.slots[idx as usize];
            slot.record = record;
            slot.template = template;
            slot.channels = channels;
            return Ok(idx);
        }
        let idx = self.slots.len() as u32;
        for c in channels.iter() {
            self.add_member(*c, template, idx);
        }
        self.by_id.insert(fnv1a(record.id.as_bytes()), idx);
        let first = now + self.next_gap(record.activity);
        self.spontaneous.push(Reverse((first, idx)));
        self.slots.push(Slot {
            record,
            template,
            channels,
            window_start: now,
            turns_used: 0,
            tokens_used: 0,
            bucket: self.cfg.burst,
            bucket_at: now,
        });
        Ok(idx)
    }

    fn add_member(&mut self, channel: u32, template: u16, idx: u32) {
        let list = self
            .members
            .entry(channel)
            .or_default()
            .entry(template)
            .or_default();
        if !list.contains(&idx) {
            list.push(idx);
        }
    }

    fn remove_member(&mut self, channel: u32, idx: u32) {
        if let Some(by_t) = self.members.get_mut(&channel) {
            for list in by_t.values_mut() {
                list.retain(|i| *i != idx);
            }
        }
    }

    /// Record that agent `idx` joined a channel.
    pub fn joined(&mut self, idx: u32, channel_id: &str) {
        let c = self.channel_idx(channel_id);
        let slot = &self.slots[idx as usize];
        if slot.channels.contains(&c) {
            return;
        }
        let template = slot.template;
        let mut chans = slot.channels.to_vec();
        chans.push(c);
        self.slots[idx as usize].channels = chans.into_boxed_slice();
        self.slots[idx as usize]
            .record
            .channels
            .push(channel_id.to_string());
        self.add_member(c, template, idx);
    }

    /// Pause or resume an agent.
    pub fn set_paused(&mut self, idx: u32, paused: bool) {
        self.slots[idx as usize].record.paused = paused;
    }

    fn next_gap(&mut self, level: ActivityLevel) -> Millis {
        // Exponential inter-arrival times: a Poisson process per agent.
        let u: f64 = self.rng.gen_range(f64::EPSILON..1.0);
        let mean_ms = HOUR as f64 / level.turns_per_hour();
        (-u.ln() * mean_ms) as Millis + 1
    }

    /// Wake agents for a new message.
    pub fn on_activity(&mut self, a: &Activity) {
        let author = self.index_of(&a.author_id);
        let channel: Arc<str> = match self.channel_index.get(a.channel_id.as_str()) {
            Some(i) => self.channel_ids[*i as usize].clone(),
            None => Arc::from(a.channel_id.as_str()),
        };
        let thread_root = a.thread_root.clone().or_else(|| Some(a.message_id.clone()));
        let mut woken: Vec<u32> = Vec::new();
        for m in &a.mentions {
            if let Some(idx) = self.index_of(m) {
                if Some(idx) != author && !woken.contains(&idx) {
                    woken.push(idx);
                    self.enqueue(Activation {
                        agent: idx,
                        reason: Reason::Mention,
                        channel_id: Some(channel.clone()),
                        message_id: Some(a.message_id.clone()),
                        thread_root: thread_root.clone(),
                        trigger_author: author,
                    });
                }
            }
        }
        if let Some(root) = &a.thread_root {
            let owner = a
                .thread_author_id
                .as_deref()
                .and_then(|id| self.index_of(id))
                .or_else(|| self.authored.get(root).copied());
            if let Some(owner) = owner {
                if Some(owner) != author
                    && !woken.contains(&owner)
                    && !self.same_department(author, owner)
                {
                    woken.push(owner);
                    self.enqueue(Activation {
                        agent: owner,
                        reason: Reason::Reply,
                        channel_id: Some(channel.clone()),
                        message_id: Some(a.message_id.clone()),
                        thread_root: thread_root.clone(),
                        trigger_author: author,
                    });
                }
            }
        }
        self.wake_interested(a, author, &channel, thread_root, &mut woken);
    }

    /// Whether two of our agents belong to one department.
    fn same_department(&self, a: Option<u32>, b: u32) -> bool {
        a.is_some_and(|a| self.template_of(a).department == self.template_of(b).department)
    }

    fn wake_interested(
        &mut self,
        a: &Activity,
        author: Option<u32>,
        channel: &Arc<str>,
        thread_root: Option<String>,
        woken: &mut Vec<u32>,
    ) {
        if self.cfg.interest_wakes == 0 {
            return;
        }
        let Some(cidx) = self.channel_index.get(a.channel_id.as_str()).copied() else {
            return;
        };
        let mut templates: Vec<u16> = Vec::new();
        for id in &a.interests {
            if let Some(ts) = self.interests.get(*id as usize) {
                for x in ts {
                    if !templates.contains(x) {
                        templates.push(*x);
                    }
                }
            }
        }
        // Colleagues of one department hold the same documents: one answering
        // another only echoes them. Other departments answer.
        if let Some(a) = author {
            let dept = &self.template_of(a).department;
            templates.retain(|t| self.templates[*t as usize].department != *dept);
        }
        // Start at a random template so no department always answers first.
        if !templates.is_empty() {
            let start = self.rng.gen_range(0..templates.len());
            templates.rotate_left(start);
        }
        // A new claim by one of our agents is also put to departments whose
        // words did not match, in random order after those that did: their
        // documents may hold the other half in other words. They answer only
        // if their own evidence is about the same thing (the brain decides).
        if let (Some(by), None) = (author, &a.thread_root) {
            let dept = self.template_of(by).department.clone();
            if let Some(by_t) = self.members.get(&cidx) {
                let mut others: Vec<u16> = by_t
                    .iter()
                    .filter(|(t, list)| {
                        !list.is_empty()
                            && !templates.contains(t)
                            && self.templates[**t as usize].department != dept
                    })
                    .map(|(t, _)| *t)
                    .collect();
                others.sort_unstable();
                for i in (1..others.len()).rev() {
                    others.swap(i, self.rng.gen_range(0..=i));
                }
                templates.extend(others);
            }
        }
        if templates.is_empty() {
            return;
        }
        let mut picked = 0;
        for t in templates {
            if picked >= self.cfg.interest_wakes {
                break;
            }
            let Some(list) = self.members.get(&cidx).and_then(|m| m.get(&t)) else {
                continue;
            };
            if list.is_empty() {
                continue;
            }
            let idx = list[self.rng.gen_range(0..list.len())];
            if Some(idx) == author || woken.contains(&idx) {
                continue;
            }
            woken.push(idx);
            picked += 1;
            self.enqueue(Activation {
                agent: idx,
                reason: Reason::Interest,
                channel_id: Some(channel.clone()),
                message_id: Some(a.message_id.clone()),
                thread_root: thread_root.clone(),
                trigger_author: author,
            });
        }
    }

    fn enqueue(&mut self, act: Activation) {
        let queue = if act.reason == Reason::Interest {
            &mut self.pending
        } else {
            &mut self.urgent
        };
        queue.push_back(act);
        if self.pending.len() + self.urgent.len() > self.cfg.max_pending {
            // Drop the least important: interest wakes first.
            if self.pending.pop_front().is_none() {
                self.urgent.pop_front();
            }
            self.stats.dropped_pending += 1;
        }
    }

    /// Whether exchanges between two agents, or agent replies in a thread, are damped now.
    fn damped(&self, act: &Activation, now: Millis) -> bool {
        if act.reason == Reason::Spontaneous {
            return false;
        }
        if let Some(other) = act.trigger_author {
            let key = (act.agent.min(other), act.agent.max(other));
            if self.pairs.get(&key).is_some_and(|p| p.damped_until > now) {
                return true;
            }
        }
        act.thread_root
            .as_ref()
            .and_then(|r| self.threads.get(r))
            .is_some_and(|t| t.damped_until > now)
    }

    /// Turns due at `now`, at most `max`: mentions and replies first, then
    /// interest wakes, then spontaneous ones. Each passes pause, damping,
    /// budgets and the rate limit.
    pub fn due(&mut self, now: Millis, max: usize) -> Vec<Activation> {
        if now.saturating_sub(self.global_window) >= HOUR {
            self.global_window = now;
            self.global_tokens = 0;
        }
        let mut out = Vec::new();
        while out.len() < max {
            let Some(act) = self.urgent.pop_front().or_else(|| self.pending.pop_front()) else {
                break;
            };
            if self.admit(&act, now) {
                out.push(act);
            }
        }
        while out.len() < max {
            match self.spontaneous.peek() {
                Some(Reverse((t, _))) if *t <= now => {}
                _ => break,
            }
            let Reverse((_, idx)) = self.spontaneous.pop().expect("peeked");
            let level = self.slots[idx as usize].record.activity;
            let gap = self.next_gap(level);
            self.spontaneous.push(Reverse((now + gap, idx)));
            let act = Activation {
                agent: idx,
                reason: Reason::Spontaneous,
                channel_id: None,
                message_id: None,
                thread_root: None,
                trigger_author: None,
            };
            if self.admit(&act, now) {
                out.push(act);
            }
        }
        out
    }

    fn admit(&mut self, act: &Activation, now: Millis) -> bool {
        let global_limit = self.cfg.global_tokens_per_hour;
        let default_turns = self.cfg.turns_per_hour;
        let default_tokens = self.cfg.tokens_per_hour;
        let (rate, burst) = (self.cfg.turns_per_minute, self.cfg.burst);
        if self.slots[act.agent as usize].record.paused {
            self.stats.paused_skips += 1;
            return false;
        }
        if self.damped(act, now) {
            self.stats.damped += 1;
            return false;
        }
        if global_limit > 0 && self.global_tokens >= global_limit {
            self.stats.global_budget_denied += 1;
            return false;
        }
        let slot = &mut self.slots[act.agent as usize];
        if now.saturating_sub(slot.window_start) >= HOUR {
            slot.window_start = now;
            slot.turns_used = 0;
            slot.tokens_used = 0;
        }
        let turns_cap = nonzero(slot.record.turns_per_hour, default_turns);
        let tokens_cap = nonzero(slot.record.tokens_per_hour, default_tokens);
        if slot.turns_used >= turns_cap || slot.tokens_used >= tokens_cap {
            self.stats.budget_denied += 1;
            return false;
        }
        let elapsed_min = now.saturating_sub(slot.bucket_at) as f32 / 60_000.0;
        slot.bucket = (slot.bucket + elapsed_min * rate).min(burst);
        slot.bucket_at = now;
        if slot.bucket < 1.0 {
            self.stats.rate_limited += 1;
            return false;
        }
        slot.bucket -= 1.0;
        slot.turns_used += 1;
        self.stats.activations += 1;
        match act.reason {
            Reason::Mention => self.stats.mentions += 1,
            Reason::Reply => self.stats.replies += 1,
            Reason::Interest => self.stats.interests += 1,
            Reason::Spontaneous => self.stats.spontaneous += 1,
        }
        true
    }

    /// Account for a finished turn: tokens against budgets, the post for
    /// reply wakes, and the exchange for loop detection.
    pub fn finished(&mut self, idx: u32, rec: &TurnRecord, now: Millis) {
        let slot = &mut self.slots[idx as usize];
        slot.tokens_used = slot.tokens_used.saturating_add(rec.tokens);
        self.global_tokens += rec.tokens as u64;
        self.stats.tokens += rec.tokens as u64;
        let Some((message_id, thread_root)) = &rec.posted else {
            return;
        };
        if thread_root.is_none() {
            self.authored.insert(message_id.clone(), idx);
            self.authored_order.push_back(message_id.clone());
            if self.authored_order.len() > AUTHORED_KEEP {
                if let Some(old) = self.authored_order.pop_front() {
                    self.authored.remove(&old);
                }
            }
        }
        let (window, max_pair, max_thread, cooldown) = (
            self.cfg.loop_window_ms,
            self.cfg.loop_max_exchanges,
            self.cfg.thread_max_agent_replies,
            self.cfg.loop_cooldown_ms,
        );
        if let Some(other) = rec.answered.filter(|o| *o != idx) {
            let p = self
                .pairs
                .entry((idx.min(other), idx.max(other)))
                .or_default();
            if bump(p, now, window, max_pair, cooldown) {
                self.stats.loops_detected += 1;
                tracing::debug!(
                    a = idx,
                    b = other,
                    "two agents are looping on each other; damped"
                );
            }
        }
        if let Some(root) = thread_root {
            let t = self.threads.entry(root.clone()).or_default();
            if bump(t, now, window, max_thread, cooldown) {
                self.stats.loops_detected += 1;
                tracing::debug!(thread = %root, "agents keep talking in one thread; damped");
            }
        }
        if self.pairs.len() > 500_000 {
            self.pairs
                .retain(|_, p| p.damped_until > now || now - p.window_start < window);
        }
        if self.threads.len() > 500_000 {
            self.threads
                .retain(|_, p| p.damped_until > now || now - p.window_start < window);
        }
    }

    /// Index of a channel id's member list size (for tests and stats).
    pub fn members_of(&self, channel_id: &str) -> usize {
        self.channel_index
            .get(channel_id)
            .and_then(|c| self.members.get(c))
            .map(|m| m.values().map(Vec::len).sum())
            .unwrap_or(0)
    }

    /// The channels of agent `idx`.
    pub fn channels_of(&self, idx: u32) -> Vec<Arc<str>> {
        self.slots[idx as usize]
            .channels
            .iter()
            .map(|c| self.channel_ids[*c as usize].clone())
            .collect()
    }
}

/// The distinct, lower-cased interest words of `templates` that can match a
/// message word, in template order.
pub fn interest_words(templates: &[Template]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for w in templates.iter().flat_map(|t| &t.interests) {
        let w = w.to_lowercase();
        if is_matchable(&w) && !out.contains(&w) {
            out.push(w);
        }
    }
    out
}

fn nonzero(v: u32, default: u32) -> u32 {
    if v == 0 {
        default
    } else {
        v
    }
}

/// Count one exchange; true when this one tips the state into damping.
fn bump(p: &mut PairState, now: Millis, window: Millis, max: u32, cooldown: Millis) -> bool {
    if now.saturating_sub(p.window_start) >= window {
        p.window_start = now;
        p.count = 0;
    }
    p.count += 1;
    if p.count > max && p.damped_until <= now {
        p.damped_until = now + cooldown;
        p.count = 0;
        return true;
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::persona::builtin_templates;

    fn agent(i: usize, template: &str, activity: ActivityLevel) -> AgentRecord {
        AgentRecord {
            id: format!("id-{i}"),
            handle: format!("agent-{i}"),
            name: format!("Agent {i}"),
            template: template.into(),
            activity,
            brain: "extractive".into(),
            paused: false,
            tokens_per_hour: 0,
            turns_per_hour: 0,
            channels: vec!["general".into()],
        }
    }

    /// What the server matches for a scheduler over the built-in templates.
    fn matcher() -> crate::platform::InterestMatcher {
        crate::platform::InterestMatcher::new(&interest_words(&builtin_templates()))
            .expect("the built-in vocabulary is valid")
    }

    fn activity(
        author: &str,
        msg: &str,
        root: Option<&str>,
        mentions: &[&str],
        text: &str,
    ) -> Activity {
        Activity {
            channel_id: "general".into(),
            seq: 1,
            message_id: msg.into(),
            author_id: author.into(),
            author_is_agent: true,
            thread_root: root.map(str::to_string),
            thread_author_id: None,
            label: crate::label::Label::level(crate::label::Level::Internal),
            mentions: mentions.iter().map(|s| s.to_string()).collect(),
            interests: matcher().match_text(text),
        }
    }

    #[test]
    fn the_builtin_vocabulary_registers_with_the_feed() {
        let words = interest_words(&builtin_templates());
        assert!(!words.is_empty() && words.len() <= crate::platform::MAX_INTERESTS);
        assert!(crate::platform::InterestMatcher::new(&words).is_ok());
        let s = Scheduler::new(SchedulerConfig::default(), builtin_templates());
        assert_eq!(s.interest_words(), words.as_slice());
    }

    #[test]
    fn interest_ids_the_scheduler_never_registered_wake_nobody() {
        let mut s = low_agents(&["finance-lead"]);
        let mut a = activity("human", "m1", None, &[], "nothing");
        a.interests = vec![u32::MAX, s.interest_words().len() as u32];
        s.on_activity(&a);
        assert!(s.due(1, 10).is_empty());
    }

    #[test]
    fn spontaneous_rate_follows_activity_level() {
        let mut s = Scheduler::new(SchedulerConfig::default(), builtin_templates());
        for i in 0..1000 {
            let level = if i < 500 {
                ActivityLevel::High
            } else {
                ActivityLevel::Low
            };
            s.upsert(agent(i, "sales-analyst", level), 0)
                .expect("upsert");
        }
        let mut high = 0;
        let mut low = 0;
        for minute in 1..=60 {
            for a in s.due(minute * 60_000, usize::MAX) {
                if a.agent < 500 {
                    high += 1
                } else {
                    low += 1
                }
            }
        }
        // Expected about 2,000 and 125 turns in the hour.
        assert!((1700..2300).contains(&high), "high {high}");
        assert!((70..190).contains(&low), "low {low}");
    }

    #[test]
    fn mentions_and_replies_wake_the_right_agents_first() {
        let mut s = Scheduler::new(SchedulerConfig::default(), builtin_templates());
        for i in 0..3 {
            s.upsert(agent(i, "hr-lead", ActivityLevel::Low), 0)
                .expect("upsert");
        }
        s.finished(
            0,
            &TurnRecord {
                tokens: 5,
                posted: Some(("m0".into(), None)),
                answered: None,
            },
            0,
        );
        s.on_activity(&activity("human", "m1", Some("m0"), &["id-2"], "hello"));
        let due = s.due(1, 10);
        assert_eq!(due.len(), 2);
        assert_eq!((due[0].agent, due[0].reason), (2, Reason::Mention));
        assert_eq!((due[1].agent, due[1].reason), (0, Reason::Reply));
    }

    #[test]
    fn interest_wakes_agents_whose_templates_care() {
        let mut s = low_agents(&["hr-lead", "finance-lead"]);
        s.on_activity(&activity(
            "human",
            "m1",
            None,
            &[],
            "The forecast margin looks thin",
        ));
        let due = s.due(1, 10);
        assert_eq!(due.iter().map(|a| a.agent).collect::<Vec<_>>(), vec![1]);
        assert_eq!(due[0].reason, Reason::Interest);
    }

    /// A scheduler with one low-activity agent per template, numbered in order.
    fn low_agents(templates: &[&str]) -> Scheduler {
        let mut s = Scheduler::new(SchedulerConfig::default(), builtin_templates());
        for (i, t) in templates.iter().enumerate() {
            s.upsert(agent(i, t, ActivityLevel::Low), 0)
                .expect("upsert");
        }
        s
    }

    #[test]
    fn colleagues_of_one_department_do_not_answer_each_other() {
        let mut s = low_agents(&["finance-analyst", "finance-lead", "sales-lead"]);
        s.finished(
            1,
            &TurnRecord {
                tokens: 5,
                posted: Some(("m0".into(), None)),
                answered: None,
            },
            0,
        );
        // A finance agent replies to a finance lead's post about the forecast:
        // neither the thread's owner nor another finance agent is woken.
        s.on_activity(&activity(
            "id-0",
            "m1",
            Some("m0"),
            &[],
            "The forecast margin and the quota for the pipeline look thin",
        ));
        let due = s.due(1, 10);
        assert!(due.iter().all(|a| a.agent == 2), "{due:?}");
        assert!(!due.is_empty(), "another department's agent answers");
    }

    #[test]
    fn a_new_claim_is_put_to_other_departments_even_in_other_words() {
        let mut s = low_agents(&["finance-lead", "finance-analyst", "hr-lead"]);
        // No word of the claim is an HR interest, yet HR hears it; finance does not.
        s.on_activity(&activity("id-0", "m1", None, &[], "Zyx qwv plorb"));
        let due = s.due(1, 10);
        assert_eq!(due.iter().map(|a| a.agent).collect::<Vec<_>>(), vec![2]);
        assert_eq!(due[0].reason, Reason::Interest);
    }

    #[test]
    fn budgets_and_rate_limits_hold() {
        let cfg = SchedulerConfig {
            turns_per_hour: 5,
            burst: 2.0,
            turns_per_minute: 1.0,
            ..Default::default()
        };
        let mut s = Scheduler::new(cfg, builtin_templates());
        s.upsert(agent(0, "hr-lead", ActivityLevel::Low), 0)
            .expect("upsert");
        let mut admitted = 0;
        for i in 0..100u64 {
            s.on_activity(&activity("human", &format!("m{i}"), None, &["id-0"], "x"));
            // Ten mentions a minute for ten minutes.
            admitted += s.due(i * 6_000, 10).len();
        }
        assert_eq!(admitted, 5, "turn budget");
        assert!(s.stats().rate_limited > 0);
        assert!(s.stats().budget_denied > 0);
    }

    #[test]
    fn two_agents_mentioning_each_other_are_damped() {
        let mut s = Scheduler::new(
            SchedulerConfig {
                turns_per_minute: 100.0,
                burst: 100.0,
                turns_per_hour: 10_000,
                ..Default::default()
            },
            builtin_templates(),
        );
        s.upsert(agent(0, "hr-lead", ActivityLevel::Low), 0)
            .expect("upsert");
        s.upsert(agent(1, "hr-lead", ActivityLevel::Low), 0)
            .expect("upsert");
        // Agent 0 mentions 1, 1 answers mentioning 0, and so on.
        s.on_activity(&activity("id-0", "m0", None, &["id-1"], "x"));
        let mut turns = 0;
        for step in 0..200u64 {
            let now = 1_000 + step * 1_000;
            let due = s.due(now, 10);
            if due.is_empty() {
                continue;
            }
            for a in due {
                turns += 1;
                let other = 1 - a.agent;
                let msg = format!("r{step}");
                s.finished(
                    a.agent,
                    &TurnRecord {
                        tokens: 10,
                        posted: Some((msg.clone(), Some("m0".into()))),
                        answered: Some(other),
                    },
                    now,
                );
                s.on_activity(&activity(
                    &format!("id-{}", a.agent),
                    &msg,
                    Some("m0"),
                    &[&format!("id-{other}")],
                    "x",
                ));
            }
        }
        assert!(s.stats().loops_detected >= 1);
        assert!(s.stats().damped >= 1);
        assert!(turns <= 8, "the loop ran {turns} turns");
    }
}
