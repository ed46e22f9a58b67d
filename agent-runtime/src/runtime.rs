//! The runtime: loads a shard's agents from the platform, feeds the
//! scheduler with the activity stream, and runs the turns it hands out with
//! bounded concurrency, in real time or in virtual time (tests, evaluation,
//! benchmarks). Memory is cached (bounded) and saved after every turn.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, Semaphore};

use crate::brain::extractive::ExtractiveBrain;
use crate::brain::Brain;
use crate::memory::Memory;
use crate::persona::{builtin_templates, Template};
use crate::platform::{Activity, ChannelInfo, Platform, PlatformError, Shard};
use crate::scheduler::{Activation, Millis, SchedStats, Scheduler, SchedulerConfig};

/// How long a channel remembers a quote: an hour, the span a reader scrolls
/// back through before answering.
const HEARD_WINDOW: Millis = 3_600_000;

/// Runtime settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct RuntimeConfig {
    pub scheduler: SchedulerConfig,
    /// Turns in flight at once.
    pub max_concurrent_turns: usize,
    /// Chunks retrieved per turn.
    pub retrieve_k: usize,
    /// Recent messages read per turn.
    pub observe_limit: usize,
    /// Longest message a brain may write, in tokens.
    pub max_tokens: u32,
    /// Memories kept in memory (others are loaded from the platform when needed).
    pub memory_cache: usize,
    /// Turns started per scheduling step at most.
    pub max_turns_per_step: usize,
    /// Whether agents may create channels.
    pub allow_create_channels: bool,
    /// Save memory after every turn.
    pub save_memory: bool,
    /// Let agents with the `local` brain use it for every turn; by default
    /// only answers to people do, the rest is written extractively.
    pub local_for_background: bool,
    /// How long agents do not repeat, on their own initiative, a quote their
    /// channel carries (answers to people may). 0 lets them repeat: for load
    /// tests whose few documents cannot fill an hour of distinct talk.
    pub repeat_window_ms: Millis,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        Self {
            scheduler: SchedulerConfig::default(),
            max_concurrent_turns: 64,
            retrieve_k: 4,
            observe_limit: 8,
            max_tokens: 120,
            memory_cache: 50_000,
            max_turns_per_step: 4096,
            allow_create_channels: true,
            save_memory: true,
            local_for_background: false,
            repeat_window_ms: HEARD_WINDOW,
        }
    }
}

/// The brains a runtime can use, by name; `extractive` is always there and
/// takes over when an agent's brain is missing or fails.
#[derive(Clone)]
pub struct Brains {
    by_name: HashMap<String, Arc<dyn Brain>>,
}

impl Default for Brains {
    fn default() -> Self {
        let mut by_name: HashMap<String, Arc<dyn Brain>> = HashMap::new();
        by_name.insert("extractive".into(), Arc::new(ExtractiveBrain));
        Self { by_name }
    }
}

impl Brains {
    /// Add a brain under its kind's name.
    pub fn with(mut self, brain: Arc<dyn Brain>) -> Self {
        self.by_name.insert(brain.kind().to_string(), brain);
        self
    }

    /// The brain called `name`, or the extractive one.
    pub fn get(&self, name: &str) -> Arc<dyn Brain> {
        self.by_name
            .get(name)
            .or_else(|| self.by_name.get("extractive"))
            .cloned()
            .expect("the extractive brain is always registered")
    }

    /// The extractive brain.
    pub fn fallback(&self) -> Arc<dyn Brain> {
        self.get("extractive")
    }

    /// Names of the brains available.
    pub fn names(&self) -> Vec<String> {
        let mut v: Vec<String> = self.by_name.keys().cloned().collect();
        v.sort();
        v
    }
}

/// Counters of what turns did.
#[derive(Debug, Default)]
pub struct TurnCounters {
    pub turns: AtomicU64,
    pub posts: AtomicU64,
    pub replies: AtomicU64,
    pub reactions: AtomicU64,
    pub joins: AtomicU64,
    pub channels_created: AtomicU64,
    pub silent: AtomicU64,
    pub refused: AtomicU64,
    pub rate_limited: AtomicU64,
    pub brain_errors: AtomicU64,
    /// Model-written messages not grounded in what the model was given
    /// ([`crate::brain::grounded`]), written extractively instead.
    pub ungrounded: AtomicU64,
    pub platform_errors: AtomicU64,
    pub retrievals: AtomicU64,
}

/// A snapshot of the runtime's counters.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct RuntimeStats {
    pub agents: usize,
    pub turns: u64,
    pub posts: u64,
    pub replies: u64,
    pub reactions: u64,
    pub joins: u64,
    pub channels_created: u64,
    pub silent: u64,
    pub refused: u64,
    pub rate_limited: u64,
    pub brain_errors: u64,
    #[serde(default)]
    pub ungrounded: u64,
    pub platform_errors: u64,
    pub retrievals: u64,
    pub scheduler: SchedStats,
}

/// Per-turn timings: the whole turn and the part spent in the brain.
#[derive(Debug, Default)]
pub struct Timings {
    samples: Mutex<Vec<(u32, u32)>>,
}

impl Timings {
    const KEEP: usize = 200_000;

    fn record(&self, total: Duration, brain: Duration) {
        let mut s = self.samples.lock().expect("timings lock");
        if s.len() < Self::KEEP {
            s.push((total.as_micros() as u32, brain.as_micros() as u32));
        }
    }

    /// Platform overhead per turn (everything but the brain) at quantiles, in ms.
    pub fn overhead_ms(&self, quantiles: &[f64]) -> Vec<f64> {
        let s = self.samples.lock().expect("timings lock");
        let mut o: Vec<u32> = s.iter().map(|(t, b)| t.saturating_sub(*b)).collect();
        o.sort_unstable();
        quantiles
            .iter()
            .map(|q| {
                if o.is_empty() {
                    0.0
                } else {
                    let i = ((o.len() - 1) as f64 * q).round() as usize;
                    o[i] as f64 / 1000.0
                }
            })
            .collect()
    }

    /// Forget samples so far.
    pub fn clear(&self) {
        self.samples.lock().expect("timings lock").clear();
    }
}

/// The runtime.
pub struct Runtime {
    pub(crate) platform: Arc<dyn Platform>,
    pub(crate) brains: Brains,
    pub(crate) cfg: RuntimeConfig,
    pub(crate) sched: Mutex<Scheduler>,
    memories: Mutex<HashMap<u32, Memory>>,
    pub(crate) channels: std::sync::RwLock<HashMap<String, ChannelInfo>>,
    feed: tokio::sync::Mutex<mpsc::Receiver<Activity>>,
    pub(crate) counters: TurnCounters,
    pub(crate) timings: Timings,
    shard: Shard,
    turns_gate: Arc<Semaphore>,
    /// What each channel heard in the last hour, so agents do not repeat it.
    pub(crate) heard: crate::heard::Heard,
    /// What the platform handed each agent since its last post attempt.
    pub(crate) marks: crate::marks::Marks,
}

/// Why the runtime could not start.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("platform: {0}")]
    Platform(#[from] PlatformError),
    #[error("{0}")]
    Invalid(String),
}

impl Runtime {
    /// Load the shard's agents and subscribe to activity.
    pub async fn start(
        platform: Arc<dyn Platform>,
        brains: Brains,
        cfg: RuntimeConfig,
        shard: Shard,
        now: Millis,
    ) -> Result<Arc<Self>, RuntimeError> {
        Self::start_with_templates(platform, brains, cfg, shard, builtin_templates(), now).await
    }

    /// As [`Runtime::start`], with a custom template set.
    pub async fn start_with_templates(
        platform: Arc<dyn Platform>,
        brains: Brains,
        cfg: RuntimeConfig,
        shard: Shard,
        templates: Vec<Template>,
        now: Millis,
    ) -> Result<Arc<Self>, RuntimeError> {
        let mut sched = Scheduler::new(cfg.scheduler.clone(), templates);
        // Subscribe before listing agents, so nothing posted meanwhile is missed.
        let feed = platform.activity(sched.interest_words()).await?;
        for record in platform.agents(shard).await? {
            if let Err(e) = sched.upsert(record, now) {
                tracing::warn!(error = %e, "agent skipped");
            }
        }
        tracing::info!(agents = sched.len(), shard = ?shard, "agent runtime loaded");
        let repeat_window = cfg.repeat_window_ms;
        Ok(Arc::new(Self {
            platform,
            brains,
            turns_gate: Arc::new(Semaphore::new(cfg.max_concurrent_turns.max(1))),
            cfg,
            sched: Mutex::new(sched),
            memories: Mutex::new(HashMap::new()),
            channels: std::sync::RwLock::new(HashMap::new()),
            feed: tokio::sync::Mutex::new(feed),
            counters: TurnCounters::default(),
            timings: Timings::default(),
            shard,
            heard: crate::heard::Heard::new(repeat_window),
            marks: crate::marks::Marks::default(),
        }))
    }

    /// Re-read the shard's agents: new spawns join, pauses and retirements apply.
    pub async fn refresh_agents(&self, now: Millis) -> Result<usize, RuntimeError> {
        let records = self.platform.agents(self.shard).await?;
        let live: std::collections::HashSet<String> =
            records.iter().map(|r| r.id.clone()).collect();
        let mut sched = self.sched.lock().expect("scheduler lock");
        for record in records {
            if let Err(e) = sched.upsert(record, now) {
                tracing::warn!(error = %e, "agent skipped");
            }
        }
        // Retired agents vanish from the list: pause them here.
        for idx in 0..sched.len() as u32 {
            if !live.contains(&sched.record(idx).id) {
                sched.set_paused(idx, true);
            }
        }
        Ok(sched.len())
    }

    /// Counters so far.
    pub fn stats(&self) -> RuntimeStats {
        let c = &self.counters;
        let sched = self.sched.lock().expect("scheduler lock");
        RuntimeStats {
            agents: sched.len(),
            turns: c.turns.load(Ordering::Relaxed),
            posts: c.posts.load(Ordering::Relaxed),
            replies: c.replies.load(Ordering::Relaxed),
            reactions: c.reactions.load(Ordering::Relaxed),
            joins: c.joins.load(Ordering::Relaxed),
            channels_created: c.channels_created.load(Ordering::Relaxed),
            silent: c.silent.load(Ordering::Relaxed),
            refused: c.refused.load(Ordering::Relaxed),
            rate_limited: c.rate_limited.load(Ordering::Relaxed),
            brain_errors: c.brain_errors.load(Ordering::Relaxed),
            ungrounded: c.ungrounded.load(Ordering::Relaxed),
            platform_errors: c.platform_errors.load(Ordering::Relaxed),
            retrievals: c.retrievals.load(Ordering::Relaxed),
            scheduler: sched.stats().clone(),
        }
    }

    /// Per-turn timings.
    pub fn timings(&self) -> &Timings {
        &self.timings
    }

    /// Feed pending activity to the scheduler; returns how many records.
    pub async fn drain_activity(&self) -> usize {
        let mut feed = self.feed.lock().await;
        let mut n = 0;
        let mut batch = Vec::new();
        while let Ok(a) = feed.try_recv() {
            batch.push(a);
            if batch.len() >= 1024 {
                n += self.apply_activity(&mut batch);
            }
        }
        n + self.apply_activity(&mut batch)
    }

    fn apply_activity(&self, batch: &mut Vec<Activity>) -> usize {
        let n = batch.len();
        if n > 0 {
            let mut sched = self.sched.lock().expect("scheduler lock");
            for a in batch.drain(..) {
                sched.on_activity(&a);
            }
        }
        n
    }

    /// Run every turn due at `now`, concurrently up to the limit, and wait for them.
    pub async fn step(self: &Arc<Self>, now: Millis) -> usize {
        self.drain_activity().await;
        let due = self
            .sched
            .lock()
            .expect("scheduler lock")
            .due(now, self.cfg.max_turns_per_step);
        let n = due.len();
        let mut tasks = tokio::task::JoinSet::new();
        for act in due {
            tasks.spawn(self.slot_for(act, now).await);
        }
        while tasks.join_next().await.is_some() {}
        n
    }

    /// Simulate `[from, to)` in virtual time with steps of `tick` ms. The
    /// activity of each step is delivered before the next. Returns turns run.
    pub async fn run_virtual(self: &Arc<Self>, from: Millis, to: Millis, tick: Millis) -> usize {
        let mut now = from;
        let mut total = 0;
        while now < to {
            total += self.step(now).await;
            // Let the platform publish what this step posted.
            for _ in 0..3 {
                tokio::task::yield_now().await;
            }
            now += tick.max(1);
        }
        self.drain_activity().await;
        total
    }

    /// Run in virtual time as fast as the platform absorbs turns, until the
    /// wall clock reaches `until`: turns start whenever a slot is free, and
    /// the clock moves on by `tick` when nothing is due. Turns of consecutive
    /// ticks overlap, so this measures throughput rather than replaying
    /// exactly. Returns the virtual time reached.
    pub async fn run_flat_out(
        self: &Arc<Self>,
        from: Millis,
        tick: Millis,
        until: Instant,
    ) -> Millis {
        let mut now = from;
        let mut tasks = tokio::task::JoinSet::new();
        while Instant::now() < until {
            self.drain_activity().await;
            let free = self.turns_gate.available_permits();
            let due = if free == 0 {
                Vec::new()
            } else {
                self.sched.lock().expect("scheduler lock").due(now, free)
            };
            if due.is_empty() {
                if free == 0 {
                    // Wait for a slot.
                    let _ = tasks.join_next().await;
                } else {
                    now += tick.max(1);
                    tokio::task::yield_now().await;
                }
                continue;
            }
            for act in due {
                tasks.spawn(self.slot_for(act, now).await);
            }
            while tasks.try_join_next().is_some() {}
        }
        while tasks.join_next().await.is_some() {}
        now
    }

    /// Run in real time until `stop` turns true. The clock starts at `offset`.
    pub async fn run_realtime(
        self: &Arc<Self>,
        offset: Millis,
        tick: Duration,
        refresh: Duration,
        mut stop: tokio::sync::watch::Receiver<bool>,
    ) {
        let started = Instant::now();
        let mut last_refresh = Instant::now();
        let mut ticker = tokio::time::interval(tick);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticker.tick() => {}
                _ = stop.changed() => {}
            }
            if *stop.borrow() {
                break;
            }
            let now = offset + started.elapsed().as_millis() as Millis;
            if last_refresh.elapsed() >= refresh {
                last_refresh = Instant::now();
                if let Err(e) = self.refresh_agents(now).await {
                    tracing::warn!(error = %e, "could not refresh agents");
                }
            }
            // Turns run in the background so slow brains do not delay scheduling.
            self.drain_activity().await;
            let due = self
                .sched
                .lock()
                .expect("scheduler lock")
                .due(now, self.turns_gate.available_permits().max(1));
            for act in due {
                tokio::spawn(self.slot_for(act, now).await);
            }
        }
        // Wait for turns in flight.
        let _ = self
            .turns_gate
            .acquire_many(self.cfg.max_concurrent_turns.max(1) as u32)
            .await;
    }

    /// Wait for a free turn slot; returns the turn, which frees the slot when done.
    async fn slot_for(
        self: &Arc<Self>,
        act: Activation,
        now: Millis,
    ) -> impl std::future::Future<Output = ()> + Send + 'static {
        let permit = self
            .turns_gate
            .clone()
            .acquire_owned()
            .await
            .expect("the turn gate is never closed");
        let rt = self.clone();
        async move {
            rt.run_turn(act, now).await;
            drop(permit);
        }
    }

    async fn run_turn(&self, act: Activation, now: Millis) {
        let started = Instant::now();
        let idx = act.agent;
        let mut memory = self.memory_of(idx).await;
        let (record, brain_time) = crate::turn::take_turn(self, &act, &mut memory, now).await;
        self.sched
            .lock()
            .expect("scheduler lock")
            .finished(idx, &record, now);
        memory.last_turn = Some(now / 1000);
        if self.cfg.save_memory {
            let id = self
                .sched
                .lock()
                .expect("scheduler lock")
                .record(idx)
                .id
                .clone();
            if let Err(e) = self.platform.save_memory(&id, &memory).await {
                tracing::warn!(agent = %id, error = %e, "memory not saved");
            }
        }
        self.put_memory(idx, memory);
        self.counters.turns.fetch_add(1, Ordering::Relaxed);
        self.timings.record(started.elapsed(), brain_time);
    }

    async fn memory_of(&self, idx: u32) -> Memory {
        if let Some(m) = self.memories.lock().expect("memory lock").remove(&idx) {
            return m;
        }
        let id = self
            .sched
            .lock()
            .expect("scheduler lock")
            .record(idx)
            .id
            .clone();
        match self.platform.load_memory(&id).await {
            Ok(m) => m.unwrap_or_default(),
            Err(e) => {
                tracing::warn!(agent = %id, error = %e, "memory not loaded; starting empty");
                Memory::default()
            }
        }
    }

    fn put_memory(&self, idx: u32, memory: Memory) {
        let mut m = self.memories.lock().expect("memory lock");
        if m.len() >= self.cfg.memory_cache {
            // Saved memories can be dropped; drop an arbitrary one.
            if let Some(k) = m.keys().next().copied() {
                m.remove(&k);
            }
        }
        m.insert(idx, memory);
    }
}
