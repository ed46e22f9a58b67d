//! The users service: validating and creating accounts, shared by the API,
//! the command line and the demo.

use serde::Deserialize;
use utoipa::ToSchema;

use std::sync::Arc;

use sea_orm::DatabaseConnection;

use crate::audit::Audit;
use crate::auth::check_password_strength;
use crate::authz::Authz;
use crate::authz::SystemAction;
use crate::chat::parse_label;
use crate::directory::Directory;
use crate::directory::{parse_handle, NewUser};

use crate::principal::{Principal, Role, UserKind};
use crate::realtime::Hub;
use crate::realtime::{CloseReason, CLOSE_REVOKED};
use crate::storage::entities::{audit, user};
use sea_orm::{ActiveModelTrait, EntityTrait, QueryOrder, QuerySelect, Set};

crate::error::service_error! {
    /// Why a users operation failed.
    pub enum UsersError / UsersResult {
        /// A clearance given above the giver's own.
        ClearanceExceeded => Forbidden, "clearance_exceeded";
        /// An admin changing their own role or deactivating themself.
        OwnPermissions => Forbidden, "own_permissions";
        /// The policy directory does not validate; the previous set stays.
        InvalidPolicies => Unprocessable, "invalid_policies";
    }
    from {
        /// Ending a deactivated user's sessions.
        Session(crate::sessions::SessionError),
    }
}

/// Request to create a user (admin).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateUser {
    pub handle: String,
    pub display_name: Option<String>,
    pub role: String,
    /// `human` (default) or `agent`.
    pub kind: Option<String>,
    pub department: Option<String>,
    /// Clearance label; default by role.
    pub clearance: Option<String>,
    /// Required for humans; at least 12 characters.
    pub password: Option<String>,
}

/// Default clearance for a role when none is given.
pub fn default_clearance(role: Role) -> &'static str {
    match role {
        Role::Admin => "restricted",
        Role::Leader => "confidential",
        Role::Member | Role::Agent | Role::Worker => "internal",
        Role::Guest => "public",
    }
}

/// Validate a create-user request into a [`NewUser`] (hashing the password).
pub async fn new_user(req: CreateUser) -> UsersResult<NewUser> {
    let handle = parse_handle(&req.handle)?;
    let role: Role = req.role.parse()?;
    let kind: UserKind = req.kind.as_deref().unwrap_or("human").parse()?;
    if (kind == UserKind::Agent) != (role == Role::Agent) {
        return Err(UsersError::invalid(
            "agents have kind agent and role agent; humans never have role agent",
        ));
    }
    let clearance = parse_label(req.clearance.as_deref().unwrap_or(default_clearance(role)))?;
    let department = req
        .department
        .as_deref()
        .map(parse_department)
        .transpose()?;
    let display_name = req.display_name.unwrap_or_else(|| handle.clone());
    if display_name.trim().is_empty() || display_name.chars().count() > 80 {
        return Err(UsersError::invalid("display_name must be 1-80 characters"));
    }
    let password_hash = match (kind, req.password) {
        (_, Some(pw)) => {
            check_password_strength(&pw).map_err(UsersError::invalid)?;
            Some(
                tokio::task::spawn_blocking(move || crate::auth::hash_password(&pw))
                    .await
                    .map_err(UsersError::internal)?,
            )
        }
        (UserKind::Human, None) => {
            return Err(UsersError::invalid(
                "a password is required for human users",
            ))
        }
        (UserKind::Agent, None) => None,
    };
    Ok(NewUser {
        handle,
        display_name: display_name.trim().to_string(),
        kind,
        role,
        department,
        clearance,
        password_hash,
    })
}

/// Check a department name: 1-32 characters a-z, 0-9, '-' or '_' (lower-cased).
pub fn parse_department(raw: &str) -> UsersResult<String> {
    let d = raw.trim().to_ascii_lowercase();
    let ok = (1..=32).contains(&d.len())
        && d.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    if ok {
        Ok(d)
    } else {
        Err(UsersError::invalid(
            "department must be 1-32 characters a-z, 0-9, '-' or '_'",
        ))
    }
}

/// A create-user request from CLI arguments.
pub fn users_create_request(
    handle: String,
    role: String,
    display_name: Option<String>,
    department: Option<String>,
    clearance: Option<String>,
    password: Option<String>,
) -> CreateUser {
    // Agents are the only users with role agent, and always of kind agent.
    let kind = (role == "agent").then(|| "agent".to_string());
    CreateUser {
        handle,
        display_name,
        role,
        kind,
        department,
        clearance,
        password,
    }
}

/// Validate a create-user request (shared by the API and the CLI).
pub async fn new_user_from(req: CreateUser) -> UsersResult<crate::directory::NewUser> {
    new_user(req).await
}

/// Changes to a user (admin).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateUser {
    pub active: Option<bool>,
    pub role: Option<String>,
    pub clearance: Option<String>,
    pub department: Option<String>,
}

/// An admin grants only clearance they hold themselves (SECURITY-CASES 27):
/// anything wider is granted by someone cleared for it, or by the operator
/// with `warroom users create|update` on the server.
fn grantable(granter: &Principal, clearance: &crate::label::Label) -> UsersResult<()> {
    if clearance.within(&granter.clearance) {
        return Ok(());
    }
    Err(UsersError::ClearanceExceeded(format!(
        "clearance {clearance} is beyond your own ({}): ask someone cleared for it",
        granter.clearance
    )))
}

/// The users service: accounts, their roles and clearances.
#[derive(Clone)]
pub struct Users {
    db: DatabaseConnection,
    authz: Arc<Authz>,
    directory: Arc<Directory>,
    hub: Arc<Hub>,
    audit: Arc<Audit>,
}

impl Users {
    /// The newest `limit` audit records (auditors).
    pub async fn audit_log(&self, p: &Principal, limit: u64) -> UsersResult<Vec<audit::Model>> {
        self.authz.require_system(p, SystemAction::AuditRead)?;
        Ok(crate::audit::latest(&self.db, limit).await?)
    }

    /// Re-read and validate the policy directory; on error the active set
    /// stays (`invalid_policies`). Returns how many policies are active.
    pub async fn reload_policies(&self, p: &Principal) -> UsersResult<usize> {
        self.authz.require_system(p, SystemAction::PolicyReload)?;
        match self.authz.reload() {
            Ok(n) => {
                self.audit
                    .record(
                        Some(&p.id),
                        "policy.reload",
                        "policies",
                        "ok",
                        serde_json::json!({"policies": n, "sha256": self.authz.digest()}),
                    )
                    .await;
                Ok(n)
            }
            Err(e) => {
                self.audit
                    .record(
                        Some(&p.id),
                        "policy.reload",
                        "policies",
                        "rejected",
                        serde_json::json!({"error": e.to_string()}),
                    )
                    .await;
                Err(UsersError::InvalidPolicies(format!(
                    "{e}; the previous policies stay active"
                )))
            }
        }
    }

    /// A users service over these handles.
    pub fn new(
        db: DatabaseConnection,
        authz: Arc<Authz>,
        directory: Arc<Directory>,
        hub: Arc<Hub>,
        audit: Arc<Audit>,
    ) -> Self {
        Self {
            db,
            authz,
            directory,
            hub,
            audit,
        }
    }
}

impl Users {
    /// Create the first admin if there are no users yet; returns how to log in.
    pub async fn ensure_first_admin(&self, data_dir: &std::path::Path) -> anyhow::Result<String> {
        use sea_orm::{EntityTrait, PaginatorTrait};
        let users = crate::storage::entities::user::Entity::find()
            .count(&self.db)
            .await?;
        let file = data_dir.join("first-admin-password.txt");
        if users > 0 {
            return Ok(if file.exists() {
                format!(
                    "Admin login: handle 'admin', password in {}",
                    file.display()
                )
            } else {
                "Log in with an existing account (create more with `warroom users create`).".into()
            });
        }
        let password = crate::auth::random_password(20);
        let req = users_create_request(
            "admin".into(),
            "admin".into(),
            Some("Administrator".into()),
            None,
            None,
            Some(password.clone()),
        );
        let new = new_user(req).await.map_err(|e| anyhow::anyhow!("{e}"))?;
        self.directory
            .create(new)
            .await
            .map_err(|e| anyhow::anyhow!("{}", e.message))?;
        crate::storage::write_private(&file, format!("{password}\n").as_bytes())?;
        Ok(format!(
            "Admin login: handle 'admin', password '{password}' (also saved in {})",
            file.display()
        ))
    }

    /// The user directory, for those allowed to list it (not guests).
    pub async fn list(&self, p: &Principal) -> UsersResult<Vec<Principal>> {
        self.authz.require_system(p, SystemAction::UserList)?;
        let rows = user::Entity::find()
            .order_by_asc(user::Column::Handle)
            .limit(5000)
            .all(&self.db)
            .await?;
        rows.iter()
            .map(|r| Principal::try_from(r).map_err(UsersError::internal))
            .collect()
    }

    /// Create a user (admin), granting at most the creator's own clearance; audited.
    pub async fn create(&self, p: &Principal, req: CreateUser) -> UsersResult<Principal> {
        self.authz.require_system(p, SystemAction::UserManage)?;
        let new = new_user(req).await?;
        grantable(p, &new.clearance)?;
        let row = self.directory.create(new).await?;
        let created = Principal::try_from(&row).map_err(UsersError::internal)?;
        self.audit
            .record(
                Some(&p.id),
                "user.create",
                &format!("user:{}", row.id),
                "ok",
                serde_json::json!({"handle": row.handle, "role": row.role, "clearance": row.clearance}),
            )
            .await;
        Ok(created)
    }

    /// Change a user (admin). Deactivation revokes refresh tokens and closes
    /// sockets; a change of role or clearance closes sockets so they reconnect
    /// with the new rights. Audited.
    pub async fn update(
        &self,
        p: &Principal,
        id: &crate::ids::UserId,
        req: UpdateUser,
    ) -> UsersResult<Principal> {
        self.authz.require_system(p, SystemAction::UserManage)?;
        let Some(row) = user::Entity::find_by_id(id).one(&self.db).await? else {
            return Err(UsersError::not_found("user"));
        };
        if *id == p.id && (req.role.is_some() || req.clearance.is_some()) {
            return Err(UsersError::OwnPermissions(
                "nobody changes their own role or clearance: ask another admin".into(),
            ));
        }
        let mut am: user::ActiveModel = row.clone().into();
        if let Some(role) = &req.role {
            let r: Role = role.parse()?;
            if (r == Role::Agent) != (row.kind == "agent") {
                return Err(UsersError::invalid("only agents have role agent"));
            }
            am.role = Set(r.as_str().into());
        }
        if let Some(c) = &req.clearance {
            let clearance = parse_label(c)?;
            grantable(p, &clearance)?;
            am.clearance = Set(clearance);
        }
        if let Some(d) = &req.department {
            am.department = Set(Some(parse_department(d)?));
        }
        if let Some(active) = req.active {
            if !active && *id == p.id {
                return Err(UsersError::invalid("you cannot deactivate yourself"));
            }
            am.active = Set(active);
        }
        let updated = am.update(&self.db).await?;
        self.directory.invalidate(id);
        // Any change to who someone is invalidates their sessions' view of them.
        if req.active == Some(false) {
            crate::sessions::revoke_user(&self.db, id).await?;
            self.hub.close_user(
                id,
                CloseReason {
                    code: CLOSE_REVOKED,
                    reason: "account deactivated".into(),
                },
            );
        } else if req.role.is_some() || req.clearance.is_some() {
            self.hub.close_user(
                id,
                CloseReason {
                    code: CLOSE_REVOKED,
                    reason: "permissions changed: reconnect".into(),
                },
            );
        }
        self.audit
            .record(
                Some(&p.id),
                "user.update",
                &format!("user:{id}"),
                "ok",
                serde_json::json!({"active": req.active, "role": req.role, "clearance": req.clearance}),
            )
            .await;
        Principal::try_from(&updated).map_err(UsersError::internal)
    }
}
