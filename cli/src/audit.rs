//! `warroom audit`.

use clap::Subcommand;
use warroom::config::Settings;

#[derive(Subcommand)]
pub enum AuditCommand {
    /// Check the audit log: every record's keyed hash and link, and its head
    /// against the signed checkpoint in the data directory (run it with the
    /// server's configuration, which says where the audit key is).
    Verify,
}

/// Records that do not verify printed by `audit verify` at most; the rest
/// are counted (one rewritten record can break every link after it).
const AUDIT_PROBLEMS_SHOWN: usize = 20;

/// `warroom audit verify`: report every problem found, exit non-zero if any.
async fn audit_verify(settings: &Settings) -> anyhow::Result<()> {
    let db = warroom::storage::connect(settings).await?;
    let dir = &settings.storage.data_dir;
    let v = warroom::audit::verify(&db, dir).await?;
    // A cut-off tail or a bad checkpoint first: they are easy to miss behind
    // a long list of records that no longer verify.
    let (broken, others): (Vec<_>, Vec<_>) = v
        .problems
        .iter()
        .partition(|p| matches!(p, warroom::audit::Problem::Broken { .. }));
    if let Some(first) = others.first().or(broken.first()) {
        for p in &others {
            eprintln!("  - {p}");
        }
        for p in broken.iter().take(AUDIT_PROBLEMS_SHOWN) {
            eprintln!("  - {p}");
        }
        if broken.len() > AUDIT_PROBLEMS_SHOWN {
            eprintln!(
                "  ... and {} more records that do not verify",
                broken.len() - AUDIT_PROBLEMS_SHOWN
            );
        }
        anyhow::bail!(
            "the audit log failed verification ({} problem(s)); first: {first}. Keep a copy of \
             the database and the data directory as evidence before changing anything",
            v.problems.len()
        );
    }
    let mut line = format!("audit chain intact: {} records", v.records);
    if v.legacy > 0 {
        line.push_str(&format!(
            " ({} legacy records, written before the chain was keyed, are checked with their \
             plain SHA-256 hashes and signed by the first keyed record or checkpoint after them)",
            v.legacy
        ));
    }
    println!("{line}");
    match v.checkpoint {
        Some(seq) => {
            println!("signed checkpoint at record {seq} verified: the tail is complete up to it")
        }
        None if v.records > 0 => println!(
            "no checkpoint in {}: a removed tail cannot be detected here; run verify with the \
             server's data directory",
            dir.display()
        ),
        None => {}
    }
    Ok(())
}

/// Run an audit command.
pub async fn run(settings: Settings, command: AuditCommand) -> anyhow::Result<()> {
    match command {
        AuditCommand::Verify => audit_verify(&settings).await,
    }
}
