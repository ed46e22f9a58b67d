//! The demo's sample company, people and agents, seeded once on first start,
//! and the first digest it announces.

use crate::authz::Actor;
use crate::ids::UserId;
use std::path::PathBuf;

use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};

use crate::ops::{admin, api, collect_files, display_path, say};

/// The demo's first digest: once the agents have said enough (or after a few
/// minutes), unless one exists already.
pub fn first_digest(app: crate::app::App, url: String) {
    tokio::spawn(async move {
        let lena = app.directory.row_by_handle("lena").await.ok().flatten();
        let started = std::time::Instant::now();
        loop {
            tokio::time::sleep(std::time::Duration::from_secs(15)).await;
            if app.settings.storage.data_dir.join(".first-digest").exists() {
                return;
            }
            let cited = crate::storage::entities::message::Entity::find()
                .filter(crate::storage::entities::message::Column::Brain.is_not_null())
                .count(&app.db)
                .await
                .unwrap_or(0);
            if cited < 60 && started.elapsed() < std::time::Duration::from_secs(240) {
                continue;
            }
            let period = crate::insights::Period::ending(
                chrono::Utc::now(),
                app.settings.insights.period_days,
            );
            let lena = lena
                .as_ref()
                .and_then(|u| crate::principal::Principal::try_from(u).ok());
            let actor = match &lena {
                Some(p) => Actor::Principal(p),
                None => Actor::Server,
            };
            match app
                .insights
                .run(period, crate::insights::Trigger::Demo, actor, &|_| {})
                .await
            {
                Ok(d) => {
                    let _ =
                        std::fs::write(app.settings.storage.data_dir.join(".first-digest"), &d.id);
                    println!(
                        "  First digest ready: {} risks and {} opportunities from {} messages. Log in as lena and open {url}/#/digests/{}",
                        d.insights.iter().filter(|i| i.kind == "risk").count(),
                        d.insights.iter().filter(|i| i.kind == "opportunity").count(),
                        d.stats.messages,
                        d.id
                    );
                }
                Err(e) => eprintln!("warning: the first digest failed: {e}"),
            }
            return;
        }
    });
}

/// The demo's people and agents, once: a leader and two employees, three
/// agents per department (analyst, manager, lead) scoped to their department,
/// and a first question from the leader in #war-room. Returns a line for the
/// console saying who is talking and how to log in.
pub async fn seed_demo_agents(
    app: &crate::app::App,
    data_dir: &std::path::Path,
    brain: warroom_types::Brain,
) -> anyhow::Result<(String, Option<Kickoff>)> {
    let mut kickoff = None;
    let logins = data_dir.join("demo-logins.txt");
    let (existing, _) = app
        .agents
        .list(Actor::Server, None, None, 0, 1)
        .await
        .map_err(api)?;
    let departments: Vec<String> = app
        .knowledge
        .scopes(Actor::Server)
        .await
        .map_err(api)?
        .into_iter()
        .filter_map(|s| s.spec.name.strip_prefix("dept-").map(str::to_string))
        .collect();
    if !existing.is_empty() {
        return Ok((
            format!(
                "  Agents are running; people's logins are in {}",
                logins.display()
            ),
            None,
        ));
    }
    let admin = admin(app, "admin").await?;
    let password = crate::auth::random_password(16);
    let mut people = Vec::new();
    for (handle, role, dept, clearance) in [
        ("lena", "leader", None, "confidential"),
        ("sam", "member", Some("sales"), "internal"),
        ("erin", "member", Some("engineering"), "internal"),
    ] {
        let req = crate::users::users_create_request(
            handle.into(),
            role.into(),
            None,
            dept.map(str::to_string),
            Some(clearance.into()),
            Some(password.clone()),
        );
        let new = crate::users::new_user_from(req).await.map_err(api)?;
        let row = app.directory.create(new).await.map_err(api)?;
        people.push(row.id);
    }
    crate::storage::write_private(
        &logins,
        format!("lena (leader), sam (sales), erin (engineering): password {password}\n").as_bytes(),
    )?;
    let mut leads = Vec::new();
    let mut spawned = 0;
    for d in &departments {
        for role in ["analyst", "manager", "lead"] {
            let template = format!("{d}-{role}");
            if warroom_agent_runtime::persona::template(&template).is_none() {
                continue;
            }
            let req = crate::agents::SpawnRequest {
                template,
                count: 1,
                scope: None,
                brain: Some(brain),
                activity: Some("high".into()),
                channels: None,
                tokens_per_hour: None,
                turns_per_hour: None,
            };
            let out = app
                .agents
                .spawn(&admin, req, 10, &|_, _| {})
                .await
                .map_err(api)?;
            spawned += out.spawned;
            if role == "lead" {
                leads.extend(out.agents.iter().map(|a| a.handle.clone()));
            }
        }
    }
    let war_room = crate::storage::entities::channel::Entity::find()
        .filter(crate::storage::entities::channel::Column::Name.eq("war-room"))
        .one(&app.db)
        .await?;
    if let Some(war_room) = war_room {
        for id in &people {
            let p = app
                .directory
                .get(&UserId::from_trusted(id.as_str()))
                .await
                .map_err(api)?
                .expect("just created");
            app.chat
                .join(
                    &p,
                    &crate::ids::ChannelId::from_trusted(war_room.id.clone()),
                )
                .await
                .map_err(api)?;
        }
        let asked: Vec<String> = leads.iter().take(4).map(|h| format!("@{h}")).collect();
        let body = format!(
            "{} What risks and opportunities do you see in your area this quarter? Numbers and dates, please.",
            asked.join(" ")
        );
        kickoff = Some(Kickoff {
            author: people[0].clone(),
            channel: crate::ids::ChannelId::from_trusted(war_room.id),
            body,
        });
    }
    Ok((format!(
        "  Agents: {spawned} agents in {} departments talk in #war-room and their department channels (brain: {brain}).\n  People: lena (leader), sam, erin; password in {}",
        departments.len(),
        logins.display()
    ), kickoff))
}

/// The demo's first question, posted once the agents listen.
pub struct Kickoff {
    author: String,
    channel: crate::ids::ChannelId,
    body: String,
}

impl Kickoff {
    /// Post it.
    pub async fn post(self, app: &crate::app::App) -> anyhow::Result<()> {
        let lena = app
            .directory
            .get(&UserId::from_trusted(self.author.as_str()))
            .await
            .map_err(api)?
            .expect("demo user exists");
        let req = crate::chat::PostMessage {
            body: self.body,
            thread_root: None,
            idempotency_key: Some("demo-kickoff".into()),
            label: None,
            citations: vec![],
            brain: None,
        };
        app.chat
            .post(&lena, &self.channel, req)
            .await
            .map_err(api)?;
        Ok(())
    }
}

/// The demo's sample company: its documents ingested and a scope per department, once.
pub async fn seed_sample_company(app: &crate::app::App) -> anyhow::Result<()> {
    let dir = std::env::var_os("WARROOM_SAMPLES")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("samples/company"));
    if app
        .knowledge
        .document_count()
        .await
        .map_err(crate::ops::api)?
        > 0
    {
        return Ok(());
    }
    if !dir.is_dir() {
        anyhow::bail!(
            "{} not found: run the demo from the repository root, or set WARROOM_SAMPLES",
            dir.display()
        );
    }
    load_corpus(app, &dir).await?;
    Ok(())
}

/// Ingest a corpus (one folder per department; files at the top such as a
/// README or an answer key are skipped) into the `company` collection, and
/// create a `dept-<name>` scope per department and `company-internal`
/// (assigned to the admin). Returns the departments.
pub async fn load_corpus(
    app: &crate::app::App,
    dir: &std::path::Path,
) -> anyhow::Result<std::collections::BTreeSet<String>> {
    use indicatif::{ProgressBar, ProgressStyle};
    let dir = dir.to_path_buf();
    // Documents live in one folder per department; files at the top (README) are not.
    let files: Vec<PathBuf> = collect_files(std::slice::from_ref(&dir))?
        .into_iter()
        .filter(|f| f.parent() != Some(dir.as_path()))
        .collect();
    println!("  Loading documents from {} ...", dir.display());
    app.knowledge.engine().await.map_err(crate::ops::api)?;
    let bar = ProgressBar::new(files.len() as u64);
    bar.set_style(
        ProgressStyle::with_template("  {bar:40} {pos}/{len} documents {wide_msg}")
            .expect("static template"),
    );
    let mut departments = std::collections::BTreeSet::new();
    for file in &files {
        let rel = display_path(file, std::slice::from_ref(&dir));
        bar.set_message(rel.clone());
        let meta = crate::knowledge::IngestMeta {
            collection: Some("company".into()),
            ..Default::default()
        };
        match app
            .knowledge
            .ingest(Actor::Server, &rel, &std::fs::read(file)?, &meta)
            .await
        {
            Ok(_) => {
                if let Some(d) = rel.split('/').next().filter(|_| rel.contains('/')) {
                    departments.insert(d.to_string());
                }
            }
            Err(e) => say(&bar, format!("  skipped {rel}: {e}")),
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    let admin_id = app
        .directory
        .row_by_handle("admin")
        .await
        .map_err(crate::ops::api)?
        .map(|u| u.id);
    for d in &departments {
        let spec = crate::knowledge::scope::ScopeSpec {
            name: format!("dept-{d}"),
            description: format!(
                "What a {d} employee may read: their department's documents up to confidential"
            ),
            collections: None,
            departments: Some(vec![d.clone()]),
            tags: None,
            exclude_collections: vec![],
            exclude_departments: vec![],
            exclude_tags: vec![],
            max_label: format!("confidential:{d}"),
        };
        let _ = app.knowledge.put_scope(Actor::Server, None, spec).await;
    }
    let company = crate::knowledge::scope::ScopeSpec {
        name: "company-internal".into(),
        description: "Every department's documents up to internal".into(),
        collections: None,
        departments: None,
        tags: None,
        exclude_collections: vec![],
        exclude_departments: vec![],
        exclude_tags: vec![],
        max_label: "internal".into(),
    };
    let _ = app.knowledge.put_scope(Actor::Server, None, company).await;
    if let Some(id) = admin_id {
        let _ = app
            .knowledge
            .assign_scope(
                Actor::Server,
                &UserId::from_trusted(id),
                Some(&crate::ids::ScopeId::from_trusted("company-internal")),
            )
            .await;
    }
    println!(
        "  Loaded {} documents; scopes dept-<name> for {} departments and company-internal (assigned to admin).",
        files.len(),
        departments.len()
    );
    Ok(departments)
}
