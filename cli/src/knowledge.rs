//! `warroom ingest` and `warroom reindex`.

use std::path::PathBuf;

use warroom::authz::Actor;
use warroom::config::Settings;
use warroom::ops::{collect_files, display_path, offline_knowledge, say};

#[derive(clap::Args)]
pub struct IngestArgs {
    /// Files or directories.
    #[arg(required = true)]
    paths: Vec<PathBuf>,
    /// Collection to put the documents in.
    #[arg(long, default_value = "company")]
    collection: String,
    /// Label when the front matter has none (e.g. `confidential:hr`); default `internal`.
    #[arg(long)]
    label: Option<String>,
    /// Department when the front matter has none; default: the file's parent folder name.
    #[arg(long)]
    department: Option<String>,
    /// Tag (repeatable) when the front matter has none.
    #[arg(long = "tag")]
    tags: Vec<String>,
}

pub async fn ingest(settings: Settings, args: IngestArgs) -> anyhow::Result<()> {
    use indicatif::{ProgressBar, ProgressStyle};
    let files = collect_files(&args.paths)?;
    if files.is_empty() {
        anyhow::bail!("no .md, .txt, .html or .pdf files under the given paths");
    }
    let knowledge = offline_knowledge(&settings).await?;
    let bar = ProgressBar::new(files.len() as u64);
    bar.set_style(
        ProgressStyle::with_template(
            "{bar:40} {pos}/{len} files {elapsed_precise} eta {eta} {wide_msg}",
        )
        .expect("static template"),
    );
    let (mut created, mut updated, mut unchanged, mut chunks) = (0, 0, 0, 0);
    let mut failures = Vec::new();
    for file in &files {
        bar.set_message(file.display().to_string());
        // The folder a file sits in names its department only when neither
        // --department nor the file's front matter does.
        let folder = file
            .parent()
            .and_then(|d| d.file_name())
            .map(|n| n.to_string_lossy().to_ascii_lowercase());
        let meta = warroom::knowledge::IngestMeta {
            collection: Some(args.collection.clone()),
            label: args.label.clone(),
            department: args.department.clone(),
            fallback_department: folder,
            tags: args.tags.clone(),
        };
        let result = match std::fs::read(file) {
            Ok(bytes) => knowledge
                .ingest(
                    Actor::Server,
                    &display_path(file, &args.paths),
                    &bytes,
                    &meta,
                )
                .await
                .map_err(|e| format!("{e} ({})", warroom::error::Failure::code(&e))),
            Err(e) => Err(format!("cannot read: {e}")),
        };
        match result {
            Ok(o) => {
                chunks += o.chunks;
                match o.status {
                    "created" => created += 1,
                    "updated" => updated += 1,
                    _ => unchanged += 1,
                }
            }
            Err(why) => {
                say(&bar, format!("  failed {}: {why}", file.display()));
                failures.push(file.clone());
            }
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    println!(
        "ingested {} files: {created} created, {updated} updated, {unchanged} unchanged, {} failed; {chunks} chunks",
        files.len(),
        failures.len()
    );
    if !failures.is_empty() {
        anyhow::bail!(
            "{} file(s) were not ingested (reasons above); fix them and run ingest again: unchanged files are skipped",
            failures.len()
        );
    }
    Ok(())
}

/// `warroom reindex`: every stored chunk embedded and indexed again, with progress.
pub async fn reindex(settings: Settings) -> anyhow::Result<()> {
    let knowledge = offline_knowledge(&settings).await?;
    let bar = indicatif::ProgressBar::new(0);
    let n = knowledge
        .reindex(|done, total| {
            bar.set_length(total as u64);
            bar.set_position(done as u64);
        })
        .await
        .map_err(warroom::ops::api)?;
    bar.finish_and_clear();
    println!("re-indexed {n} chunks");
    Ok(())
}
