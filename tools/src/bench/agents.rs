//! `warroom bench agents`: the agent platform's own cost. For each N, a fresh
//! server (SQLite) with the sample company ingested through an instant
//! loopback embedding endpoint, N registered agents spread over the
//! templates (500 per channel), all scheduled at the templates' activity
//! levels, driven in virtual time as fast as the machine allows with the
//! extractive brain. Every turn observes, retrieves and posts through the
//! in-process adapter (the same authorization as the API). Reported: turns/s,
//! platform overhead per turn (everything but the brain), resident memory per
//! registered idle agent. Then the local brain's prefill and decode rates
//! beside llama.cpp's on the same GGUF file, when llama-cpp-python is installed.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use warroom_agent_runtime::persona::builtin_templates;
use warroom_agent_runtime::platform::Shard;
use warroom_agent_runtime::runtime::{Brains, Runtime, RuntimeConfig};
use warroom_agent_runtime::scheduler::SchedulerConfig;

use warroom::agents::SpawnRequest;

/// Options of `warroom bench agents`.
#[derive(clap::Args, Debug, Clone)]
pub struct AgentsBenchArgs {
    /// Registered agents, one run per value.
    #[arg(long, value_delimiter = ',', default_value = "10000,100000")]
    pub agents: Vec<usize>,
    /// Wall-clock seconds of measured simulation per run.
    #[arg(long, default_value_t = 30)]
    pub seconds: u64,
    /// Write the results here as JSON.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Skip the local brain and llama.cpp rates.
    #[arg(long)]
    pub skip_brain: bool,
    /// Python with llama-cpp-python for the reference (default: the venv under ~/.cache/warroom).
    #[arg(long)]
    pub llamacpp_python: Option<PathBuf>,
    /// Agents per channel.
    #[arg(long, default_value_t = 500)]
    pub per_channel: usize,
    /// Turns in flight at once.
    #[arg(long, default_value_t = 256)]
    pub concurrency: usize,
}

/// Resident set size of this process, bytes.
pub fn rss_bytes() -> u64 {
    proc_status_bytes("VmRSS:")
}

/// A size field of `/proc/self/status` (`VmRSS:`, `VmHWM:`), bytes; 0 off Linux.
pub fn proc_status_bytes(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map(|kb| kb * 1024)
        .unwrap_or(0)
}

/// Run the benchmark.
pub async fn run(args: AgentsBenchArgs) -> anyhow::Result<()> {
    let mut runs = Vec::new();
    for &n in &args.agents {
        let r = one_run(n, &args).await?;
        println!(
            "agents {:>9}: {:>8.0} turns/s ({} active), overhead p50 {:.2} ms p99 {:.2} ms, rss {} MiB, {:.0} B per idle agent",
            n,
            r["turns_per_s"].as_f64().unwrap_or(0.0),
            r["active"],
            r["overhead_p50_ms"].as_f64().unwrap_or(0.0),
            r["overhead_p99_ms"].as_f64().unwrap_or(0.0),
            r["rss_bytes"].as_u64().unwrap_or(0) >> 20,
            r["rss_bytes_per_idle_agent"].as_f64().unwrap_or(0.0),
        );
        runs.push(r);
    }
    let (local, reference) = if args.skip_brain {
        (Value::Null, Value::Null)
    } else {
        brain_rates(&args).await
    };
    let tokens = local["decode_tokens_per_s"].as_f64();
    let out = json!({
        "machine": {"cores": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)},
        "brain": "extractive",
        "embedding": "loopback OpenAI-compatible endpoint (hashed bag of words, instant)",
        "local_brain_tokens_per_s": tokens,
        "local_brain": local,
        "llama_cpp": reference,
        "decode_ratio_vs_llama_cpp": ratio(&local, &reference, "decode_tokens_per_s"),
        "prefill_ratio_vs_llama_cpp": ratio(&local, &reference, "prefill_tokens_per_s"),
        "runs": runs,
    });
    if let Some(t) = tokens {
        println!(
            "local brain: decode {:.1} tokens/s, prefill {:.1} tokens/s",
            t,
            local["prefill_tokens_per_s"].as_f64().unwrap_or(0.0)
        );
    }
    match reference["decode_tokens_per_s"].as_f64() {
        Some(r) => println!(
            "llama.cpp:   decode {:.1} tokens/s, prefill {:.1} tokens/s; ratio decode {:.2}, prefill {:.2}",
            r,
            reference["prefill_tokens_per_s"].as_f64().unwrap_or(0.0),
            out["decode_ratio_vs_llama_cpp"].as_f64().unwrap_or(0.0),
            out["prefill_ratio_vs_llama_cpp"].as_f64().unwrap_or(0.0)
        ),
        None if !args.skip_brain => println!("llama.cpp:   not measured ({})", reference["error"].as_str().unwrap_or("unavailable")),
        None => {}
    }
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&out)?)?;
        println!("wrote {}", path.display());
    }
    Ok(())
}

fn ratio(a: &Value, b: &Value, key: &str) -> Value {
    match (a[key].as_f64(), b[key].as_f64()) {
        (Some(x), Some(y)) if y > 0.0 => json!(x / y),
        _ => Value::Null,
    }
}

async fn one_run(n: usize, args: &AgentsBenchArgs) -> anyhow::Result<Value> {
    let dir = tempfile::tempdir()?;
    let mut settings = warroom::config::Settings::default();
    settings.storage.data_dir = dir.path().to_path_buf();
    settings.server.bind = "127.0.0.1:0".into();
    // The platform, not the posting limiter, is what is measured.
    settings.limits.posts_per_second = 1_000.0;
    settings.limits.post_burst = 1_000.0;
    crate::loopback_embed::use_in(&mut settings).await?;
    let app = warroom::app::AppState::build(settings)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let admin = app.users.ensure_first_admin(dir.path()).await?;
    let _ = admin;
    warroom::demo::seed_sample_company(&app).await?;
    let actor = {
        let row = app
            .directory
            .row_by_handle("admin")
            .await
            .map_err(warroom::ops::api)?;
        let id = row
            .map(|r| r.id)
            .ok_or_else(|| anyhow::anyhow!("no admin"))?;
        app.directory
            .get(&warroom::ids::UserId::from_trusted(id))
            .await
            .map_err(warroom::ops::api)?
            .expect("admin exists")
    };
    let templates = builtin_templates();
    let bar = indicatif::ProgressBar::new(n as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "  {bar:40} {pos}/{len} agents spawned {elapsed_precise} eta {eta}",
        )
        .expect("static template"),
    );
    let spawn_started = Instant::now();
    let mut spawned = 0usize;
    let mut k = 0usize;
    while spawned < n {
        let count = args.per_channel.min(n - spawned);
        let t = &templates[k % templates.len()];
        let req = SpawnRequest {
            template: t.name.clone(),
            count: count as u32,
            scope: None,
            brain: Some(warroom::choice::Brain::Extractive),
            activity: None,
            channels: Some(vec![format!("bench-{k}")]),
            tokens_per_hour: None,
            turns_per_hour: None,
        };
        app.agents
            .spawn(&actor, req, u32::MAX, &|_, _| {})
            .await
            .map_err(warroom::ops::api)?;
        spawned += count;
        k += 1;
        bar.set_position(spawned as u64);
    }
    bar.finish_and_clear();
    let spawn_s = spawn_started.elapsed().as_secs_f64();
    app.agents.flush_memory().await;
    let cfg = RuntimeConfig {
        scheduler: SchedulerConfig {
            interest_wakes: 1,
            ..Default::default()
        },
        max_concurrent_turns: args.concurrency.max(1),
        max_turns_per_step: 2048,
        ..Default::default()
    };
    let rss_before = rss_bytes();
    let rt = Runtime::start(
        Arc::new(app.platform()),
        Brains::default(),
        cfg,
        Shard::ALL,
        0,
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    let rss_loaded = rss_bytes();
    // Warm up for a virtual minute, then measure.
    let mut now = 0u64;
    let tick = 1_000u64;
    while now < 60_000 {
        rt.step(now).await;
        now += tick;
    }
    rt.timings().clear();
    let before = rt.stats().turns;
    let started = Instant::now();
    let end = rt
        .run_flat_out(now, tick, started + Duration::from_secs(args.seconds))
        .await;
    let virtual_s = (end - now) / 1000;
    let wall = started.elapsed().as_secs_f64();
    let stats = rt.stats();
    let turns = stats.turns - before;
    let q = rt.timings().overhead_ms(&[0.5, 0.99]);
    let rss = rss_bytes();
    app.agents.flush_memory().await;
    let result = json!({
        "agents": n,
        "active": stats.scheduler.activations.min(n as u64),
        "turns": turns,
        "virtual_seconds": virtual_s,
        "wall_seconds": wall,
        "turns_per_s": turns as f64 / wall,
        "posts": stats.posts,
        "replies": stats.replies,
        "reactions": stats.reactions,
        "overhead_p50_ms": q[0],
        "overhead_p99_ms": q[1],
        "rss_bytes": rss,
        "rss_bytes_per_idle_agent": rss_loaded.saturating_sub(rss_before) as f64 / n as f64,
        "spawn_seconds": spawn_s,
        "scheduler": stats.scheduler,
    });
    // The vector store flushes into the data directory when its last handle
    // goes, and background tasks (the message embedder) let go of theirs a
    // little after `app`: the directory is removed only once they have.
    let knowledge = Arc::downgrade(&app.knowledge);
    drop(rt);
    drop(app);
    let deadline = Instant::now() + Duration::from_secs(10);
    while knowledge.strong_count() > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(result)
}

async fn brain_rates(args: &AgentsBenchArgs) -> (Value, Value) {
    use warroom_agent_runtime::brain::local::{LocalBrain, SMOLLM2};
    let models = warroom_knowledge::models::default_models_dir();
    let gguf_dir = warroom_knowledge::models::model_dir(&models, &SMOLLM2);
    let loaded = tokio::task::spawn_blocking(move || {
        let b = LocalBrain::load_default(&models)?;
        b.measure(128, 64)
    })
    .await;
    let local = match loaded {
        Ok(Ok(r)) => {
            json!({"prefill_tokens_per_s": r.prefill_tokens_per_s, "decode_tokens_per_s": r.decode_tokens_per_s, "engine": "candle"})
        }
        Ok(Err(e)) => json!({"error": e.to_string()}),
        Err(e) => json!({"error": e.to_string()}),
    };
    let python = args.llamacpp_python.clone().unwrap_or_else(|| {
        std::env::var_os("HOME")
            .map(PathBuf::from)
            .unwrap_or_default()
            .join(".cache/warroom/llamacpp-venv/bin/python")
    });
    let gguf = std::fs::read_dir(&gguf_dir).ok().and_then(|d| {
        d.filter_map(|e| e.ok().map(|e| e.path()))
            .find(|p| p.extension().is_some_and(|x| x == "gguf"))
    });
    let reference = match gguf {
        None => json!({"error": "GGUF file not found"}),
        Some(gguf) => {
            let out = tokio::process::Command::new(&python)
                .arg("scripts/llamacpp_reference.py")
                .arg("--gguf")
                .arg(&gguf)
                .args([
                    "--prompt-tokens",
                    "128",
                    "--decode-tokens",
                    "64",
                    "--threads",
                    "2",
                ])
                .output()
                .await;
            match out {
                Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout)
                    .lines()
                    .last()
                    .and_then(|l| serde_json::from_str(l).ok())
                    .unwrap_or_else(|| json!({"error": "unreadable output"})),
                Ok(o) => {
                    json!({"error": String::from_utf8_lossy(&o.stderr).trim().chars().take(300).collect::<String>()})
                }
                Err(e) => {
                    json!({"error": format!("{}: {e} (install llama-cpp-python in that venv)", python.display())})
                }
            }
        }
    };
    (local, reference)
}
