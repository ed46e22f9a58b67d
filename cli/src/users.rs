//! `warroom users`.

use std::io::BufRead;

use clap::Subcommand;
use warroom::config::Settings;

#[derive(Subcommand)]
pub enum UsersCommand {
    /// Create a user; the password is read from standard input.
    Create {
        #[arg(long)]
        handle: String,
        /// admin, leader, member, guest, or worker (a service account for
        /// `warroom-agents` that may only run agents).
        #[arg(long, default_value = "member")]
        role: String,
        #[arg(long)]
        display_name: Option<String>,
        #[arg(long)]
        department: Option<String>,
        /// Clearance label, e.g. `confidential:hr,finance` (default by role).
        #[arg(long)]
        clearance: Option<String>,
        /// Read the password from the first line of standard input.
        #[arg(long)]
        password_stdin: bool,
    },
}

/// `warroom users create`: the password from standard input, audited as done by the CLI.
pub async fn run(settings: Settings, command: UsersCommand) -> anyhow::Result<()> {
    let UsersCommand::Create {
        handle,
        role,
        display_name,
        department,
        clearance,
        password_stdin,
    } = command;
    let password = if password_stdin {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line)?;
        Some(line.trim_end_matches(['\r', '\n']).to_string())
    } else {
        None
    };
    let db = warroom::storage::connect(&settings).await?;
    let req = warroom::users::users_create_request(
        handle,
        role,
        display_name,
        department,
        clearance,
        password,
    );
    let new = warroom::users::new_user_from(req)
        .await
        .map_err(warroom::ops::api)?;
    let dir = warroom::directory::Directory::new(db.clone());
    let row = dir.create(new).await.map_err(warroom::ops::api)?;
    warroom::audit::Audit::open(db, &settings.storage.data_dir)?
        .record(
            None,
            "user.create",
            &format!("user:{}", row.id),
            "ok",
            serde_json::json!({"handle": row.handle, "role": row.role, "via": "cli"}),
        )
        .await;
    println!(
        "created {} ({}, clearance {}) id {}",
        row.handle, row.role, row.clearance, row.id
    );
    Ok(())
}
