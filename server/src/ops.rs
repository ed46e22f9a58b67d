//! Offline administration helpers shared by the command line and the
//! tooling: the server's state without a listener, acting as a user by
//! handle, and walking document folders.

use std::path::PathBuf;

use crate::config::Settings;

/// A service's failure as a command-line error: its message and code.
pub fn api(e: impl crate::error::Failure) -> anyhow::Error {
    anyhow::anyhow!("{} ({})", e.message(), e.code())
}

/// The server's state without a listener, for offline administration.
pub async fn offline_app(settings: Settings) -> anyhow::Result<crate::app::App> {
    crate::app::AppState::build(settings)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))
}

/// A user by handle, to act as, who must be allowed `action`.
pub async fn acting_as(
    app: &crate::app::App,
    handle: &str,
    action: crate::authz::SystemAction,
    missing: &str,
    refused: &str,
) -> anyhow::Result<std::sync::Arc<crate::principal::Principal>> {
    let row = app
        .directory
        .row_by_handle(handle)
        .await
        .map_err(api)?
        .ok_or_else(|| anyhow::anyhow!("no user {handle:?}: {missing}"))?;
    let p = app
        .directory
        .get(&crate::ids::UserId::from_trusted(row.id))
        .await
        .map_err(api)?
        .expect("row exists");
    if !app.authz.system(&p, action) {
        anyhow::bail!("{handle} {refused}");
    }
    Ok(p)
}

/// An admin by handle, to act as.
pub async fn admin(
    app: &crate::app::App,
    handle: &str,
) -> anyhow::Result<std::sync::Arc<crate::principal::Principal>> {
    acting_as(
        app,
        handle,
        crate::authz::SystemAction::AgentManage,
        "create an admin first (warroom users create --role admin) or pass --as",
        "may not manage agents: act as an admin with --as",
    )
    .await
}

/// A leader or admin by handle, to read or run insights as.
pub async fn reader(
    app: &crate::app::App,
    handle: &str,
) -> anyhow::Result<std::sync::Arc<crate::principal::Principal>> {
    acting_as(
        app,
        handle,
        crate::authz::SystemAction::InsightsRead,
        "pass --as with a leader or admin handle",
        "may not read digests: act as a leader or admin with --as",
    )
    .await
}

/// `2026-11-23` (midnight UTC) or RFC 3339.
pub fn parse_when(raw: &str) -> anyhow::Result<chrono::DateTime<chrono::Utc>> {
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(raw) {
        return Ok(t.with_timezone(&chrono::Utc));
    }
    if let Ok(d) = chrono::NaiveDate::parse_from_str(raw, "%Y-%m-%d") {
        return Ok(d.and_hms_opt(0, 0, 0).expect("midnight").and_utc());
    }
    anyhow::bail!("{raw:?} is not a date: use YYYY-MM-DD or RFC 3339 (2026-11-23T06:00:00Z)")
}

/// Supported files under `paths`, sorted, with the folder each was found in.
pub fn collect_files(paths: &[PathBuf]) -> anyhow::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut stack: Vec<PathBuf> = paths.to_vec();
    while let Some(p) = stack.pop() {
        let meta = std::fs::metadata(&p).map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))?;
        if meta.is_dir() {
            for entry in std::fs::read_dir(&p)? {
                let path = entry?.path();
                let hidden = path
                    .file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with('.'));
                if !hidden {
                    stack.push(path);
                }
            }
        } else if warroom_knowledge::document::Format::from_path(&p.to_string_lossy()).is_some()
            || paths.contains(&p)
        {
            // Files named explicitly are always tried, so an unsupported one is reported.
            out.push(p);
        }
    }
    out.sort();
    out.dedup();
    Ok(out)
}

/// A line above the progress bar, or on stderr when there is no terminal for the bar.
pub fn say(bar: &indicatif::ProgressBar, line: String) {
    if bar.is_hidden() {
        eprintln!("{line}");
    } else {
        bar.println(line);
    }
}

/// The knowledge service over the configured storage, without a server.
pub async fn offline_knowledge(settings: &Settings) -> anyhow::Result<crate::knowledge::Knowledge> {
    let db = crate::storage::connect(settings).await?;
    let authz = std::sync::Arc::new(crate::authz::Authz::load(
        settings.server.policy_dir.as_deref(),
        std::sync::Arc::new(crate::metrics::Metrics::default()),
    )?);
    let audit = std::sync::Arc::new(crate::audit::Audit::open(
        db.clone(),
        &settings.storage.data_dir,
    )?);
    let knowledge = crate::knowledge::Knowledge::new(
        db,
        settings.knowledge.clone(),
        settings.storage.data_dir.clone(),
        authz,
        audit,
        std::sync::Arc::default(),
    );
    knowledge.engine().await.map_err(crate::ops::api)?;
    Ok(knowledge)
}

/// The path stored for a file: relative to the directory it was found under.
pub fn display_path(file: &std::path::Path, roots: &[PathBuf]) -> String {
    for root in roots {
        if root.is_dir() {
            if let Ok(rel) = file.strip_prefix(root) {
                return rel.to_string_lossy().into_owned();
            }
        }
    }
    file.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| file.display().to_string())
}

pub fn redact(url: &str) -> String {
    match url.split_once('@') {
        Some((left, right)) if left.contains("://") => {
            let scheme = left.split("://").next().unwrap_or("");
            format!("{scheme}://***@{right}")
        }
        _ => url.to_string(),
    }
}
