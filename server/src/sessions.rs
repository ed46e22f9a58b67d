//! Sessions: refresh tokens stored per session family, issued at login,
//! rotated once each (reuse revokes the family), revoked at logout or
//! deactivation; ending a session refuses its access tokens and closes its
//! sockets.

use std::net::IpAddr;

use sea_orm::{ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, Set};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use std::sync::Arc;

use sea_orm::DatabaseConnection;

use crate::audit::Audit;
use crate::auth::Auth;
use crate::auth::{new_refresh_token, refresh_hash};
use crate::directory::Directory;

use crate::metrics::Metrics;
use crate::principal::Principal;
use crate::realtime::Hub;
use crate::realtime::{CloseReason, CLOSE_REVOKED};
use crate::storage::entities::refresh_token;
use crate::storage::WriteGate;

crate::error::service_error! {
    /// Why logging in, refreshing or logging out failed.
    pub enum SessionError / SessionResult {
    }
    from {
    }
}

/// Credentials.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    pub handle: String,
    pub password: String,
}

/// Tokens issued at login and refresh.
#[derive(Serialize, ToSchema)]
pub struct TokenResponse {
    pub access_token: String,
    pub refresh_token: String,
    /// Seconds until the access token expires.
    pub expires_in: u64,
    pub token_type: &'static str,
}

/// Revoke every refresh token of a user.
pub async fn revoke_user(
    db: &sea_orm::DatabaseConnection,
    user_id: &crate::ids::UserId,
) -> SessionResult<()> {
    revoke_where(db, refresh_token::Column::UserId.eq(user_id)).await
}

async fn revoke_where(
    db: &sea_orm::DatabaseConnection,
    which: sea_orm::sea_query::SimpleExpr,
) -> SessionResult<()> {
    refresh_token::Entity::update_many()
        .col_expr(
            refresh_token::Column::Revoked,
            sea_orm::sea_query::Expr::value(true),
        )
        .filter(which)
        .exec(db)
        .await?;
    Ok(())
}

/// The sessions service: login, refresh rotation with reuse detection,
/// logout and revocation. Cloning is cheap: every handle is shared.
#[derive(Clone)]
pub struct Sessions {
    db: DatabaseConnection,
    auth: Arc<Auth>,
    audit: Arc<Audit>,
    directory: Arc<Directory>,
    hub: Arc<Hub>,
    metrics: Arc<Metrics>,
    gate: WriteGate,
}

/// What [`Sessions::new`] is built from.
pub struct SessionsParts {
    pub db: DatabaseConnection,
    pub auth: Arc<Auth>,
    pub audit: Arc<Audit>,
    pub directory: Arc<Directory>,
    pub hub: Arc<Hub>,
    pub metrics: Arc<Metrics>,
    pub gate: WriteGate,
}

impl Sessions {
    /// A sessions service over these handles.
    pub fn new(p: SessionsParts) -> Self {
        Self {
            db: p.db,
            auth: p.auth,
            audit: p.audit,
            directory: p.directory,
            hub: p.hub,
            metrics: p.metrics,
            gate: p.gate,
        }
    }
}

impl Sessions {
    /// Store a refresh token of session `family` (through `db`, which may be a
    /// transaction) and return it with an access token of the same session.
    async fn issue<C: ConnectionTrait>(
        &self,
        db: &C,
        user_id: &str,
        family: &str,
    ) -> SessionResult<TokenResponse> {
        let (token, hash) = new_refresh_token();
        let now = chrono::Utc::now();
        refresh_token::ActiveModel {
            id: Set(uuid::Uuid::now_v7().to_string()),
            user_id: Set(user_id.into()),
            family_id: Set(family.into()),
            token_hash: Set(hash),
            expires_at: Set(now + self.auth.refresh_ttl()),
            used: Set(false),
            revoked: Set(false),
            created_at: Set(now),
        }
        .insert(db)
        .await?;
        Ok(TokenResponse {
            access_token: self
                .auth
                .issue_session_access(&crate::ids::UserId::from_trusted(user_id), family),
            refresh_token: token,
            expires_in: self.auth.access_ttl(),
            token_type: "Bearer",
        })
    }

    /// Log in with a handle and password from `client`: throttled per address,
    /// and per handle from that address. A refusal for throttling carries the
    /// seconds to wait.
    pub async fn login(
        &self,
        client: IpAddr,
        req: LoginRequest,
    ) -> Result<TokenResponse, (SessionError, Option<u64>)> {
        if req.handle.len() > 64 || req.password.len() > 1024 {
            return Err((SessionError::invalid("handle or password too long"), None));
        }
        // Throttled per address, and per handle from that address: failures
        // elsewhere never lock this client out (SECURITY-CASES 29).
        let attempt = match self.auth.admit_login(&req.handle, client) {
            Ok(attempt) => attempt,
            Err(throttled) => {
                self.metrics.logins.with_label_values(&["throttled"]).inc();
                return Err((
                    SessionError::rate_limited(throttled.message()),
                    Some(throttled.retry_after().as_secs()),
                ));
            }
        };
        let row = self
            .directory
            .row_by_handle(&req.handle)
            .await
            .map_err(|e| (SessionError::from(e), None))?;
        let stored = row.as_ref().and_then(|r| r.password_hash.clone());
        let password = req.password;
        let auth = self.auth.clone();
        // argon2id is CPU-heavy: off the async runtime. Unknown users pay the same cost.
        let ok =
            tokio::task::spawn_blocking(move || auth.check_password(&password, stored.as_deref()))
                .await
                .map_err(|e| (SessionError::internal(e), None))?;
        let user = match row {
            Some(u) if ok && u.active => u,
            _ => {
                attempt.failed();
                self.metrics.logins.with_label_values(&["failed"]).inc();
                self.audit
                    .record(
                        None,
                        "auth.login",
                        &format!("handle:{}", req.handle.to_lowercase()),
                        "failed",
                        serde_json::json!({"ip": client.to_string()}),
                    )
                    .await;
                return Err((
                    SessionError::unauthenticated("wrong handle or password"),
                    None,
                ));
            }
        };
        attempt.succeeded();
        self.metrics.logins.with_label_values(&["ok"]).inc();
        self.audit
            .record(
                Some(&user.id),
                "auth.login",
                &format!("user:{}", user.id),
                "ok",
                serde_json::json!({}),
            )
            .await;
        let session = uuid::Uuid::new_v4().to_string();
        self.issue(&self.db, &user.id, &session)
            .await
            .map_err(|e| (e, None))
    }

    /// Claim `row` and store its successor in one transaction; `None` when the
    /// token was already claimed. A concurrent refresh with the same token
    /// either waits for this transaction and then finds the token used, or
    /// finds it used after the successor is stored: either way its family
    /// revocation includes the successor, so no token of a reused family lives.
    async fn rotate(&self, row: &refresh_token::Model) -> SessionResult<Option<TokenResponse>> {
        let _gate = self.gate.enter().await;
        let txn = crate::storage::begin_write(&self.db).await?;
        let claimed = refresh_token::Entity::update_many()
            .col_expr(
                refresh_token::Column::Used,
                sea_orm::sea_query::Expr::value(true),
            )
            .filter(refresh_token::Column::Id.eq(row.id.as_str()))
            .filter(refresh_token::Column::Used.eq(false))
            .filter(refresh_token::Column::Revoked.eq(false))
            .exec(&txn)
            .await?;
        if claimed.rows_affected != 1 {
            txn.rollback().await?;
            return Ok(None);
        }
        let tokens = self.issue(&txn, &row.user_id, &row.family_id).await?;
        txn.commit().await?;
        Ok(Some(tokens))
    }

    /// A spent or revoked refresh token came back: whoever holds the family may
    /// be an attacker, so revoke it, end its session (access tokens refused,
    /// sockets closed) and record it.
    async fn family_reused(&self, row: &refresh_token::Model) -> SessionResult<()> {
        self.revoke_family(&row.family_id).await?;
        self.end_sessions(
            &row.user_id,
            std::slice::from_ref(&row.family_id),
            "refresh token reused: log in again",
        );
        self.audit
            .record(
                Some(&row.user_id),
                "auth.refresh_reuse",
                &format!("family:{}", row.family_id),
                "revoked",
                serde_json::json!({}),
            )
            .await;
        tracing::warn!(user = %row.user_id, family = %row.family_id, "refresh token reuse: family revoked");
        Ok(())
    }

    /// Refuse the access tokens of `sessions` and close the sockets they opened.
    fn end_sessions(&self, user_id: &str, sessions: &[String], why: &str) {
        for sid in sessions {
            self.auth.end_session(sid);
            self.hub.close_session(
                &crate::ids::UserId::from_trusted(user_id),
                sid,
                CloseReason {
                    code: CLOSE_REVOKED,
                    reason: why.into(),
                },
            );
        }
    }

    async fn revoke_family(&self, family: &str) -> SessionResult<()> {
        revoke_where(&self.db, refresh_token::Column::FamilyId.eq(family)).await
    }

    /// When the oldest access token that may still be accepted was issued.
    fn oldest_live_access(&self) -> chrono::DateTime<chrono::Utc> {
        // The extra minute covers validation leeway and clock steps.
        chrono::Utc::now() - chrono::Duration::seconds(self.auth.access_ttl() as i64 + 60)
    }

    /// Sessions of `user_id` whose access tokens may not have expired yet.
    async fn recent_sessions(&self, user_id: &str) -> SessionResult<Vec<String>> {
        let rows = refresh_token::Entity::find()
            .filter(refresh_token::Column::UserId.eq(user_id))
            .filter(refresh_token::Column::CreatedAt.gt(self.oldest_live_access()))
            .all(&self.db)
            .await?;
        let mut families: Vec<String> = rows.into_iter().map(|r| r.family_id).collect();
        families.sort();
        families.dedup();
        Ok(families)
    }

    /// After a restart, end again the sessions revoked within the last
    /// access-token lifetime: the set of ended sessions lives in memory, and
    /// their access tokens would otherwise work again until they expire.
    pub async fn restore_ended_sessions(&self) -> Result<usize, sea_orm::DbErr> {
        let rows = refresh_token::Entity::find()
            .filter(refresh_token::Column::Revoked.eq(true))
            .filter(refresh_token::Column::CreatedAt.gt(self.oldest_live_access()))
            .all(&self.db)
            .await?;
        let mut families: Vec<String> = rows.into_iter().map(|r| r.family_id).collect();
        families.sort();
        families.dedup();
        for sid in &families {
            self.auth.end_session(sid);
        }
        Ok(families.len())
    }

    /// Exchange a refresh token for new tokens. Each refresh token works once;
    /// presenting a used one revokes its whole family and ends its session.
    pub async fn refresh(&self, token: &str) -> SessionResult<TokenResponse> {
        let bad = || SessionError::unauthenticated("invalid refresh token; log in again");
        if token.len() > 256 {
            return Err(bad());
        }
        let hash = refresh_hash(token);
        let Some(row) = refresh_token::Entity::find()
            .filter(refresh_token::Column::TokenHash.eq(hash))
            .one(&self.db)
            .await?
        else {
            return Err(bad());
        };
        if row.used || row.revoked {
            self.family_reused(&row).await?;
            return Err(bad());
        }
        if row.expires_at < chrono::Utc::now() {
            return Err(bad());
        }
        match self
            .directory
            .get(&crate::ids::UserId::from_trusted(row.user_id.as_str()))
            .await?
        {
            Some(p) if p.active => {}
            _ => return Err(SessionError::unauthenticated("account is not active")),
        }
        match self.rotate(&row).await? {
            Some(tokens) => Ok(tokens),
            None => {
                // A concurrent refresh claimed this token first: that is reuse.
                self.family_reused(&row).await?;
                Err(bad())
            }
        }
    }

    /// Log out: end the caller's session (`own_session`, the one its access
    /// token belongs to) and the given refresh token's, or every session of the
    /// caller when no refresh token is given. Ended sessions lose their refresh
    /// and access tokens at once, and their sockets close with code 4003.
    pub async fn logout(
        &self,
        p: &Principal,
        own_session: Option<String>,
        token: Option<String>,
    ) -> SessionResult<()> {
        let mut ended: Vec<String> = own_session.into_iter().collect();
        let everywhere = token.is_none();
        match token {
            Some(t) => {
                let row = refresh_token::Entity::find()
                    .filter(refresh_token::Column::TokenHash.eq(refresh_hash(&t)))
                    .one(&self.db)
                    .await?;
                if let Some(row) = row.filter(|r| r.user_id == p.id) {
                    ended.push(row.family_id);
                }
                ended.sort();
                ended.dedup();
                for family in &ended {
                    self.revoke_family(family).await?;
                }
            }
            None => {
                ended.extend(self.recent_sessions(&p.id).await?);
                ended.sort();
                ended.dedup();
                revoke_user(&self.db, &p.user_id()).await?;
            }
        }
        self.end_sessions(&p.id, &ended, "logged out: log in again");
        if everywhere {
            // Sockets opened with tokens of no session (or of sessions older
            // than an access token's life) close too.
            self.hub.close_user(
                &p.id,
                CloseReason {
                    code: CLOSE_REVOKED,
                    reason: "logged out everywhere: log in again".into(),
                },
            );
        }
        self.audit
            .record(
                Some(&p.id),
                "auth.logout",
                &format!("user:{}", p.id),
                "ok",
                serde_json::json!({"sessions_ended": ended.len(), "everywhere": everywhere}),
            )
            .await;
        Ok(())
    }
}
