//! `warroom insights`.

use std::path::PathBuf;
use warroom::insights::InsightKind;

use clap::Subcommand;
use warroom::config::Settings;
use warroom::ops::{api, offline_app, parse_when, reader};

#[derive(Subcommand)]
pub enum InsightsCommand {
    /// Mine a period's transcripts and store a new digest version.
    Run {
        /// Start (RFC 3339 or YYYY-MM-DD); default `--to` minus the configured period.
        #[arg(long)]
        from: Option<String>,
        /// End (RFC 3339 or YYYY-MM-DD); default now.
        #[arg(long)]
        to: Option<String>,
        /// Who runs it (a leader or admin).
        #[arg(long = "as", default_value = "admin")]
        actor: String,
        /// Also write the digest here (`.md`, `.html` or `.json`).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// List stored digests.
    List {
        #[arg(long = "as", default_value = "admin")]
        actor: String,
    },
    /// Print or write one digest (id or `latest`), redacted for the reader.
    Show {
        #[arg(default_value = "latest")]
        id: String,
        /// `md`, `html` or `json`.
        #[arg(long, default_value = "md")]
        format: String,
        #[arg(long = "as", default_value = "admin")]
        actor: String,
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

fn write_digest(d: &warroom::insights::Digest, out: &std::path::Path) -> anyhow::Result<()> {
    use warroom::insights::render::{render, Format};
    let ext = out.extension().and_then(|e| e.to_str()).unwrap_or("");
    let format = Format::parse(ext)
        .ok_or_else(|| anyhow::anyhow!("{}: name the file .md, .html or .json", out.display()))?;
    let tmp = out.with_extension(format!("{ext}.tmp"));
    std::fs::write(&tmp, render(d, format))?;
    std::fs::rename(&tmp, out)?;
    Ok(())
}

pub async fn run(settings: Settings, command: InsightsCommand) -> anyhow::Result<()> {
    use warroom::insights::render::{render, Format};
    let app = offline_app(settings).await?;
    match command {
        InsightsCommand::Run {
            from,
            to,
            actor,
            out,
        } => {
            if let Some(o) = &out {
                let ext = o.extension().and_then(|e| e.to_str()).unwrap_or("");
                if Format::parse(ext).is_none() {
                    anyhow::bail!("--out {}: name the file .md, .html or .json", o.display());
                }
            }
            let p = reader(&app, &actor).await?;
            if !app
                .authz
                .system(&p, warroom::authz::SystemAction::InsightsRun)
            {
                anyhow::bail!("{actor} may not run the job: act as a leader or admin with --as");
            }
            let from = from.as_deref().map(parse_when).transpose()?;
            let to = to.as_deref().map(parse_when).transpose()?;
            let period = warroom::api::insights_routes::resolve_period(&app, from, to);
            let bar = indicatif::ProgressBar::new_spinner();
            bar.enable_steady_tick(std::time::Duration::from_millis(120));
            let d = app
                .insights
                .run(
                    period,
                    warroom::insights::Trigger::Cli,
                    warroom::authz::Actor::Principal(&p),
                    &|m| bar.set_message(m.to_string()),
                )
                .await
                .map_err(api)?;
            bar.finish_and_clear();
            let d = app.insights.redact_now(d, &p).await.map_err(api)?;
            println!(
                "digest {} version {} for {} to {}: {} risks, {} opportunities (label {}), {} messages read in {:.1} s",
                d.id,
                d.version,
                d.period.from.format("%Y-%m-%d %H:%M"),
                d.period.to.format("%Y-%m-%d %H:%M"),
                d.insights.iter().filter(|i| i.kind == InsightKind::Risk).count(),
                d.insights.iter().filter(|i| i.kind == InsightKind::Opportunity).count(),
                d.label,
                d.stats.messages,
                d.stats.seconds
            );
            if let Some(o) = out {
                write_digest(&d, &o)?;
                println!("written to {}", o.display());
            }
            Ok(())
        }
        InsightsCommand::List { actor } => {
            let p = reader(&app, &actor).await?;
            let list = app.insights.list(&p, 100).await.map_err(api)?;
            if list.is_empty() {
                println!("no digests yet: run `warroom insights run`");
            }
            for d in list {
                println!(
                    "{}  v{}  {} .. {}  risks {}  opportunities {}  {}{}",
                    d.id,
                    d.version,
                    d.period.from.format("%Y-%m-%d"),
                    d.period.to.format("%Y-%m-%d"),
                    d.counts.get("risk").unwrap_or(&0),
                    d.counts.get("opportunity").unwrap_or(&0),
                    d.label,
                    if d.redacted {
                        " (redacted for you)"
                    } else {
                        ""
                    }
                );
            }
            Ok(())
        }
        InsightsCommand::Show {
            id,
            format,
            actor,
            out,
        } => {
            let f = Format::parse(&format)
                .ok_or_else(|| anyhow::anyhow!("--format must be md, html or json"))?;
            let p = reader(&app, &actor).await?;
            let which: warroom::insights::DigestRef = id.parse().map_err(api)?;
            let d = app.insights.get(&p, &which).await.map_err(api)?;
            match out {
                Some(o) => {
                    write_digest(&d, &o)?;
                    println!("written to {}", o.display());
                }
                None => println!("{}", render(&d, f)),
            }
            Ok(())
        }
    }
}
