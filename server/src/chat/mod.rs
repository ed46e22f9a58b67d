//! The chat service: channels, memberships, messages, threads, reactions,
//! mentions, unread counts and search. Every operation is authorized by Cedar
//! before it touches storage; sequenced writes go through the [`writer`].

pub mod cache;
pub mod events;
pub mod views;
pub mod writer;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect, Set, Statement, Value,
};
use serde::Deserialize;
use utoipa::ToSchema;

use crate::app::AppState;
use crate::authz::{ChannelAction, ChannelCtx};
use crate::error::{ServiceError, ServiceResult};
use crate::label::Label;
use crate::principal::{ChannelAttrs, Principal, Role, UserKind, Visibility};
use crate::storage::entities::{channel, membership, message, reaction};
use views::{ChannelView, MessageView, ReactionView};
use writer::{Change, ChannelChange, NewPost, PostOutcome};

/// Request to create a channel.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateChannel {
    /// 1-64 characters: a-z, 0-9, '-', '_' or '.'.
    pub name: String,
    /// `public` or `private` (direct channels are made with `POST /dms`).
    pub visibility: String,
    /// Highest label messages may carry; default `internal`.
    pub label: Option<String>,
    pub topic: Option<String>,
}

/// Request to post a message.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PostMessage {
    pub body: String,
    /// Reply in the thread of this top-level message.
    pub thread_root: Option<String>,
    /// Retrying with the same key returns the original message.
    pub idempotency_key: Option<String>,
    /// The message's label; default the channel's label. Must be within it, and at
    /// least the label of every cited chunk.
    pub label: Option<String>,
    /// Ids of document chunks the message cites (at most 20). The poster must be allowed
    /// to retrieve each one.
    #[serde(default)]
    pub citations: Vec<String>,
    /// Agents only: which brain wrote the body (`extractive`, `local` or `openai`).
    pub brain: Option<String>,
}

/// Which messages to list.
#[derive(Debug, Deserialize, Default, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// Only messages with a greater sequence (oldest first).
    pub after_seq: Option<i64>,
    /// Only messages with a smaller sequence (newest page, returned oldest first).
    pub before_seq: Option<i64>,
    /// Page size (default 50).
    pub limit: Option<u64>,
    /// Leave out thread replies.
    pub top_level: Option<bool>,
}

fn check_channel_name(name: &str) -> ServiceResult<String> {
    let n = name.trim().to_ascii_lowercase();
    let ok = (1..=64).contains(&n.len())
        && n.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-_.".contains(&b));
    if ok {
        Ok(n)
    } else {
        Err(ServiceError::invalid(
            "channel name must be 1-64 characters: a-z, 0-9, '-', '_' or '.'",
        ))
    }
}

fn check_topic(topic: &str) -> ServiceResult<String> {
    if topic.chars().count() > 250 || topic.contains('\0') {
        return Err(ServiceError::invalid(
            "topic must be at most 250 characters",
        ));
    }
    Ok(topic.trim().to_string())
}

/// Parse a label from input, with a 400 on error.
pub fn parse_label(raw: &str) -> ServiceResult<Label> {
    raw.parse()
        .map_err(|e| ServiceError::invalid(format!("label: {e}")))
}

fn check_body(app: &AppState, body: &str) -> ServiceResult<String> {
    let trimmed = body.trim_end();
    if trimmed.trim().is_empty() {
        return Err(ServiceError::invalid("message body is empty"));
    }
    let max = app.settings.limits.max_message_chars;
    if trimmed.chars().count() > max {
        return Err(ServiceError::new(
            crate::error::ErrorKind::TooLarge,
            "message_too_long",
            format!("message body is longer than {max} characters"),
        ));
    }
    if trimmed.contains('\0') {
        return Err(ServiceError::invalid(
            "message body contains a NUL character",
        ));
    }
    Ok(trimmed.to_string())
}

/// `rows` groups of `cols` numbered placeholders, `($1, $2), ($3, $4)`, for
/// multi-row `VALUES`; with `cols == 0`, one flat list `$1, $2, ...` of
/// `rows` for `IN (...)`.
pub fn placeholders(rows: usize, cols: usize) -> String {
    let mut out = String::new();
    let per = cols.max(1);
    for r in 0..rows {
        if r > 0 {
            out.push_str(", ");
        }
        if cols > 0 {
            out.push('(');
        }
        for c in 0..per {
            if c > 0 {
                out.push_str(", ");
            }
            out.push_str(&format!("${}", r * per + c + 1));
        }
        if cols > 0 {
            out.push(')');
        }
    }
    out
}

/// Turn `$1, $2...` into the backend's placeholders.
pub fn stmt(backend: DbBackend, sql: &str, values: Vec<Value>) -> Statement {
    let sql = if backend == DbBackend::Postgres {
        sql.to_string()
    } else {
        sql.replace('$', "?")
    };
    Statement::from_sql_and_values(backend, sql, values)
}

/// A channel with its policy view and the caller's relation to it.
pub struct ChannelFacts {
    pub row: channel::Model,
    pub attrs: ChannelAttrs,
    pub membership: Option<membership::Model>,
}

impl ChannelFacts {
    /// The Cedar context for `p` acting on this channel.
    pub fn ctx(&self, p: &Principal) -> ChannelCtx {
        ChannelCtx {
            is_member: self.membership.is_some(),
            is_owner: self.row.created_by == p.id,
            ..Default::default()
        }
    }
}

/// Load a channel and `p`'s membership; 404 if it does not exist.
pub async fn channel_facts(app: &AppState, p: &Principal, id: &str) -> ServiceResult<ChannelFacts> {
    let Some(row) = channel::Entity::find_by_id(id.to_string())
        .one(&app.db)
        .await?
    else {
        return Err(ServiceError::not_found("channel"));
    };
    let attrs = ChannelAttrs::try_from(&row).map_err(ServiceError::internal)?;
    let membership = membership::Entity::find_by_id((id.to_string(), p.id.clone()))
        .one(&app.db)
        .await?;
    Ok(ChannelFacts {
        row,
        attrs,
        membership,
    })
}

/// Decide with Cedar; a denial is audited and becomes a 403, or a 404 when
/// the caller may not even know the channel exists.
pub async fn require(
    app: &AppState,
    p: &Principal,
    action: ChannelAction,
    f: &ChannelFacts,
    ctx: &ChannelCtx,
) -> ServiceResult<()> {
    if app.authz.channel(p, action, &f.attrs, ctx) {
        return Ok(());
    }
    app.audit
        .record(
            Some(&p.id),
            &format!("{action:?}"),
            &format!("channel:{}", f.row.id),
            "denied",
            serde_json::json!({ "msg_label": ctx.msg_label.as_ref().map(|l| l.to_string()) }),
        )
        .await;
    let visible = action != ChannelAction::Read
        && app
            .authz
            .channel(p, ChannelAction::Read, &f.attrs, &f.ctx(p));
    if visible {
        Err(ServiceError::forbidden(format!(
            "not allowed to {}",
            action_words(action)
        )))
    } else {
        Err(ServiceError::not_found("channel"))
    }
}

fn action_words(a: ChannelAction) -> &'static str {
    match a {
        ChannelAction::Create => "create this channel",
        ChannelAction::Read => "read this channel",
        ChannelAction::Join => {
            "join this channel (check your clearance and the channel's visibility)"
        }
        ChannelAction::Leave => "leave this channel",
        ChannelAction::Invite => "invite to this channel",
        ChannelAction::Update => "change this channel",
        ChannelAction::Archive => "archive this channel",
        ChannelAction::Post => "post this message here (membership, archive state or label)",
        ChannelAction::ReadMessage => "read this message",
        ChannelAction::Edit => "edit this message",
        ChannelAction::Delete => "delete this message",
        ChannelAction::React => "react here",
    }
}

/// Create a public or private channel; the creator becomes its first member.
pub async fn create_channel(
    app: &AppState,
    p: &Principal,
    req: CreateChannel,
) -> ServiceResult<ChannelView> {
    let name = check_channel_name(&req.name)?;
    let visibility: Visibility = req.visibility.parse().map_err(ServiceError::invalid)?;
    if visibility == Visibility::Direct {
        return Err(ServiceError::invalid(
            "create direct channels with POST /api/v1/dms",
        ));
    }
    let label = parse_label(req.label.as_deref().unwrap_or("internal"))?;
    let topic = check_topic(req.topic.as_deref().unwrap_or(""))?;
    let id = uuid::Uuid::now_v7().to_string();
    let attrs = ChannelAttrs {
        id: id.clone(),
        visibility,
        label: label.clone(),
        archived: false,
        created_by: p.id.clone(),
    };
    let ctx = ChannelCtx {
        is_owner: true,
        ..Default::default()
    };
    if !app.authz.channel(p, ChannelAction::Create, &attrs, &ctx) {
        app.audit
            .record(
                Some(&p.id),
                "channel.create",
                &format!("channel:{name}"),
                "denied",
                serde_json::json!({"label": label.to_string(), "visibility": visibility.as_str()}),
            )
            .await;
        return Err(ServiceError::forbidden(
            "not allowed to create this channel (your role, or a label above your clearance)",
        ));
    }
    // Names are unique among the channels the creator can read. A channel
    // they cannot read does not answer "exists": that would reveal hidden
    // names (SECURITY-CASES 24).
    let same_name = channel::Entity::find()
        .filter(channel::Column::Name.eq(name.as_str()))
        .filter(channel::Column::Visibility.ne("direct"))
        .all(&app.db)
        .await?;
    for c in same_name {
        let f = channel_facts(app, p, &c.id).await?;
        if app
            .authz
            .channel(p, ChannelAction::Read, &f.attrs, &f.ctx(p))
        {
            return Err(ServiceError::conflict(format!(
                "a channel named {name:?} exists"
            )));
        }
    }
    let now = chrono::Utc::now();
    let row = channel::Model {
        id: id.clone(),
        name: name.clone(),
        visibility: visibility.as_str().into(),
        label: label.to_string(),
        topic,
        created_by: p.id.clone(),
        archived: false,
        last_seq: 0,
        history_floor: 0,
        dm_key: None,
        created_at: now,
    };
    let txn = crate::storage::begin_write(&app.db).await?;
    channel::ActiveModel::from(row.clone()).insert(&txn).await?;
    membership::ActiveModel {
        channel_id: Set(id.clone()),
        user_id: Set(p.id.clone()),
        last_read_seq: Set(0),
        joined_at: Set(now),
    }
    .insert(&txn)
    .await?;
    txn.commit().await?;
    app.audit
        .record(
            Some(&p.id),
            "channel.create",
            &format!("channel:{id}"),
            "ok",
            serde_json::json!({"name": name, "label": label.to_string()}),
        )
        .await;
    let mut view = ChannelView::new(&row);
    view.is_member = true;
    view.last_read_seq = Some(0);
    if visibility == Visibility::Public {
        let json = serde_json::json!({ "type": "channel.created", "channel": view }).to_string();
        let authz = app.authz.clone();
        app.hub.notify_where(json.into(), |viewer| {
            authz.channel(viewer, ChannelAction::Read, &attrs, &ChannelCtx::default())
        });
    }
    Ok(view)
}

/// Channels `p` belongs to, plus (for non-guests) public channels, with unread counts.
pub async fn list_channels(app: &AppState, p: &Principal) -> ServiceResult<Vec<ChannelView>> {
    let mine: HashMap<String, membership::Model> = membership::Entity::find()
        .filter(membership::Column::UserId.eq(p.id.as_str()))
        .all(&app.db)
        .await?
        .into_iter()
        .map(|m| (m.channel_id.clone(), m))
        .collect();
    let mut cond = sea_orm::Condition::any().add(channel::Column::Id.is_in(mine.keys().cloned()));
    if p.role != Role::Guest {
        cond = cond.add(channel::Column::Visibility.eq("public"));
    }
    let rows = channel::Entity::find()
        .filter(cond)
        .order_by_asc(channel::Column::Name)
        .all(&app.db)
        .await?;
    let unread = unread_counts(app, p).await?;
    let mut out = Vec::new();
    for row in rows {
        let attrs = ChannelAttrs::try_from(&row).map_err(ServiceError::internal)?;
        let m = mine.get(&row.id);
        let ctx = ChannelCtx {
            is_member: m.is_some(),
            is_owner: row.created_by == p.id,
            ..Default::default()
        };
        if !app.authz.channel(p, ChannelAction::Read, &attrs, &ctx) {
            continue;
        }
        let mut v = ChannelView::new(&row);
        v.is_member = m.is_some();
        v.last_read_seq = m.map(|m| m.last_read_seq);
        v.unread = unread.get(&row.id).copied().unwrap_or(0);
        out.push(v);
    }
    Ok(out)
}

async fn unread_counts(app: &AppState, p: &Principal) -> ServiceResult<HashMap<String, i64>> {
    let backend = app.db.get_database_backend();
    let rows = app
        .db
        .query_all_raw(stmt(
            backend,
            "SELECT m.channel_id AS channel_id, COUNT(*) AS n FROM messages m \
             JOIN memberships mb ON mb.channel_id = m.channel_id AND mb.user_id = $1 \
             WHERE m.seq > mb.last_read_seq AND m.author_id <> $1 AND m.deleted = false \
             GROUP BY m.channel_id",
            vec![p.id.clone().into()],
        ))
        .await?;
    let mut out = HashMap::new();
    for r in rows {
        out.insert(
            r.try_get::<String>("", "channel_id")?,
            r.try_get::<i64>("", "n")?,
        );
    }
    Ok(out)
}

/// One channel, if `p` may read it.
pub async fn get_channel(app: &AppState, p: &Principal, id: &str) -> ServiceResult<ChannelView> {
    let f = channel_facts(app, p, id).await?;
    require(app, p, ChannelAction::Read, &f, &f.ctx(p)).await?;
    let mut v = ChannelView::new(&f.row);
    v.is_member = f.membership.is_some();
    v.last_read_seq = f.membership.as_ref().map(|m| m.last_read_seq);
    Ok(v)
}

/// Join a channel (public channels; private ones need an invitation).
pub async fn join(app: &AppState, p: &Principal, id: &str) -> ServiceResult<ChannelView> {
    let f = channel_facts(app, p, id).await?;
    if f.membership.is_none() {
        require(app, p, ChannelAction::Join, &f, &f.ctx(p)).await?;
        app.writer
            .change(ChannelChange {
                channel_id: id.into(),
                actor_id: p.id.clone(),
                change: Change::Join {
                    user_id: p.id.clone(),
                },
            })
            .await?;
    }
    get_channel(app, p, id).await
}

/// Leave a channel.
pub async fn leave(app: &AppState, p: &Principal, id: &str) -> ServiceResult<()> {
    let f = channel_facts(app, p, id).await?;
    require(app, p, ChannelAction::Leave, &f, &f.ctx(p)).await?;
    app.writer
        .change(ChannelChange {
            channel_id: id.into(),
            actor_id: p.id.clone(),
            change: Change::Leave {
                user_id: p.id.clone(),
            },
        })
        .await?;
    Ok(())
}

/// Add another user to a channel. Both the inviter's right to invite and the
/// invitee's clearance for the channel are checked.
pub async fn invite(
    app: &AppState,
    p: &Principal,
    id: &str,
    invitee: &Principal,
) -> ServiceResult<()> {
    let f = channel_facts(app, p, id).await?;
    require(app, p, ChannelAction::Invite, &f, &f.ctx(p)).await?;
    let ctx = ChannelCtx {
        invited: true,
        ..Default::default()
    };
    if !app
        .authz
        .channel(invitee, ChannelAction::Join, &f.attrs, &ctx)
    {
        app.audit
            .record(
                Some(&p.id),
                "channel.invite",
                &format!("channel:{id}"),
                "denied",
                serde_json::json!({"invitee": invitee.id, "reason": "invitee not cleared"}),
            )
            .await;
        return Err(ServiceError::forbidden(format!(
            "{} is not cleared for this channel's label {} (or cannot join it)",
            invitee.handle, f.attrs.label
        )));
    }
    let seq = app
        .writer
        .change(ChannelChange {
            channel_id: id.into(),
            actor_id: p.id.clone(),
            change: Change::Join {
                user_id: invitee.id.clone(),
            },
        })
        .await?;
    app.audit
        .record(
            Some(&p.id),
            "channel.invite",
            &format!("channel:{id}"),
            "ok",
            serde_json::json!({"invitee": invitee.id, "added": seq.is_some()}),
        )
        .await;
    if seq.is_some() {
        let mut view = ChannelView::new(&f.row);
        view.is_member = true;
        let json = serde_json::json!({ "type": "channel.added", "channel": view }).to_string();
        app.hub.notify_user(&invitee.id, json.into());
    }
    Ok(())
}

/// Archive a channel: it stays readable, and nothing more can be posted.
pub async fn archive(app: &AppState, p: &Principal, id: &str) -> ServiceResult<()> {
    let f = channel_facts(app, p, id).await?;
    require(app, p, ChannelAction::Archive, &f, &f.ctx(p)).await?;
    app.writer
        .change(ChannelChange {
            channel_id: id.into(),
            actor_id: p.id.clone(),
            change: Change::Archive,
        })
        .await?;
    app.audit
        .record(
            Some(&p.id),
            "channel.archive",
            &format!("channel:{id}"),
            "ok",
            serde_json::json!({}),
        )
        .await;
    Ok(())
}

/// Change a channel's topic.
pub async fn set_topic(
    app: &AppState,
    p: &Principal,
    id: &str,
    topic: &str,
) -> ServiceResult<ChannelView> {
    let topic = check_topic(topic)?;
    let f = channel_facts(app, p, id).await?;
    require(app, p, ChannelAction::Update, &f, &f.ctx(p)).await?;
    app.writer
        .change(ChannelChange {
            channel_id: id.into(),
            actor_id: p.id.clone(),
            change: Change::Update { topic },
        })
        .await?;
    get_channel(app, p, id).await
}

/// Members of a channel `p` may read.
pub async fn members(
    app: &AppState,
    p: &Principal,
    id: &str,
) -> ServiceResult<Vec<views::AuthorView>> {
    let f = channel_facts(app, p, id).await?;
    require(app, p, ChannelAction::Read, &f, &f.ctx(p)).await?;
    let rows = membership::Entity::find()
        .filter(membership::Column::ChannelId.eq(id))
        .all(&app.db)
        .await?;
    let mut out = Vec::new();
    for m in rows {
        if let Some(u) = app.directory.get(&m.user_id).await? {
            out.push(views::AuthorView::from(u.as_ref()));
        }
    }
    Ok(out)
}

/// Record that `p` has read up to `seq`.
pub async fn mark_read(app: &AppState, p: &Principal, id: &str, seq: i64) -> ServiceResult<i64> {
    let f = channel_facts(app, p, id).await?;
    require(app, p, ChannelAction::Read, &f, &f.ctx(p)).await?;
    let Some(m) = f.membership else {
        return Err(ServiceError::forbidden("only members track read position"));
    };
    let seq = seq.clamp(0, f.row.last_seq).max(m.last_read_seq);
    let mut am: membership::ActiveModel = m.into();
    am.last_read_seq = Set(seq);
    am.update(&app.db).await?;
    Ok(seq)
}

/// Open (or return) the direct channel between `p` and `peer`. Its label is
/// the meet of both clearances, so neither can receive what they are not
/// cleared for.
pub async fn open_direct(
    app: &AppState,
    p: &Principal,
    peer: &Principal,
) -> ServiceResult<(ChannelView, bool)> {
    if !app.authz.direct_message(p, peer) {
        return Err(ServiceError::forbidden(
            "not allowed to message this user directly",
        ));
    }
    let mut pair = [p.id.clone(), peer.id.clone()];
    pair.sort();
    let key = pair.join(":");
    if let Some(row) = channel::Entity::find()
        .filter(channel::Column::DmKey.eq(key.as_str()))
        .one(&app.db)
        .await?
    {
        let mut v = ChannelView::new(&row);
        v.is_member = true;
        return Ok((v, false));
    }
    let now = chrono::Utc::now();
    let mut handles = [p.handle.clone(), peer.handle.clone()];
    handles.sort();
    let row = channel::Model {
        id: uuid::Uuid::now_v7().to_string(),
        name: format!("dm:{}", handles.join(",")),
        visibility: "direct".into(),
        label: p.clearance.meet(&peer.clearance).to_string(),
        topic: String::new(),
        created_by: p.id.clone(),
        archived: false,
        last_seq: 0,
        history_floor: 0,
        dm_key: Some(key),
        created_at: now,
    };
    let txn = crate::storage::begin_write(&app.db).await?;
    channel::ActiveModel::from(row.clone()).insert(&txn).await?;
    for uid in [&p.id, &peer.id] {
        membership::ActiveModel {
            channel_id: Set(row.id.clone()),
            user_id: Set(uid.clone()),
            last_read_seq: Set(0),
            joined_at: Set(now),
        }
        .insert(&txn)
        .await?;
    }
    txn.commit().await?;
    let mut v = ChannelView::new(&row);
    v.is_member = true;
    let json = serde_json::json!({ "type": "channel.added", "channel": v }).to_string();
    app.hub.notify_user(&peer.id, json.into());
    Ok((v, true))
}

/// Post a message. Returns the stored message and whether it was created now.
pub async fn post(
    app: &AppState,
    p: &Arc<Principal>,
    channel_id: &str,
    req: PostMessage,
) -> ServiceResult<(MessageView, bool)> {
    let (outcome, req_citations) = post_stored(app, p, channel_id, req).await?;
    let author = app
        .directory
        .get(&outcome.message.author_id)
        .await?
        .ok_or_else(|| ServiceError::internal("author vanished"))?;
    let mut view = MessageView::new(&outcome.message, &author);
    view.citations = if outcome.created {
        // Just stored: they are the ones checked.
        req_citations
    } else {
        app.knowledge
            .citations_of(std::slice::from_ref(&view.id))
            .await?
            .remove(&view.id)
            .unwrap_or_default()
    };
    Ok((view, outcome.created))
}

/// Check, authorize and store a post; returns the stored row (not rendered)
/// and the ids of the chunks it cites. Agents post through this.
pub async fn post_stored(
    app: &AppState,
    p: &Arc<Principal>,
    channel_id: &str,
    req: PostMessage,
) -> ServiceResult<(PostOutcome, Vec<String>)> {
    // Every post attempt spends the agent's read mark, whatever becomes of
    // it, exactly as the runtime counts (SECURITY-CASES 28).
    let mark = app.marks.take(&p.id);
    let body = check_body(app, &req.body)?;
    if let Some(k) = &req.idempotency_key {
        if k.is_empty() || k.len() > 128 || !k.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(ServiceError::invalid(
                "idempotency_key must be 1-128 printable ASCII characters",
            ));
        }
    }
    if let Some(b) = &req.brain {
        if p.kind != UserKind::Agent {
            return Err(ServiceError::invalid(
                "only agents say which brain wrote a message",
            ));
        }
        if !["extractive", "local", "openai"].contains(&b.as_str()) {
            return Err(ServiceError::invalid(
                "brain must be extractive, local or openai",
            ));
        }
    }
    if !app.post_limiter.allow(&p.id) {
        return Err(ServiceError::rate_limited(
            "posting too fast; slow down and retry",
        ));
    }
    // Hot path: policy facts from the channel cache; the full (audited)
    // decision path runs only when the cached facts deny.
    let cached = app
        .channels
        .get(&app.db, channel_id)
        .await?
        .ok_or_else(|| ServiceError::not_found("channel"))?;
    let mut label = match &req.label {
        Some(l) => parse_label(l)?,
        None => cached.attrs.label.clone(),
    };
    // An agent's post carries at least what the server saw it read since its
    // last post, whatever label it claims (SECURITY-CASES 28).
    if let Some(mark) = mark {
        if !mark.within(&label) {
            tracing::debug!(agent = %p.id, claimed = %label, mark = %mark, "post label raised to what the agent read");
            label = label.join(&mark);
        }
    }
    let (citations, cited) = app
        .knowledge
        .check_citations(p, &req.citations, &app.audit)
        .await?;
    let req_citations: Vec<String> = citations.iter().map(|(c, _)| c.clone()).collect();
    if let Some(cited) = &cited {
        if !cited.within(&label) {
            app.audit
                .record(
                    Some(&p.id),
                    "Post",
                    &format!("channel:{channel_id}"),
                    "denied",
                    serde_json::json!({"reason": "label_below_citations", "label": label.to_string(), "cited": cited.to_string()}),
                )
                .await;
            return Err(ServiceError::new(
                crate::error::ErrorKind::Unprocessable,
                "label_below_citations",
                format!("the message cites material labelled {cited}; label it at least {cited}"),
            ));
        }
    }
    let ctx = ChannelCtx {
        is_member: cached.members.contains(&p.id),
        is_owner: cached.attrs.created_by == p.id,
        msg_label: Some(label.clone()),
        ..Default::default()
    };
    if !app
        .authz
        .channel(p, ChannelAction::Post, &cached.attrs, &ctx)
    {
        let f = channel_facts(app, p, channel_id).await?;
        let ctx = ChannelCtx {
            msg_label: Some(label.clone()),
            ..f.ctx(p)
        };
        require(app, p, ChannelAction::Post, &f, &ctx).await?;
    }
    if let Some(root) = &req.thread_root {
        let ok = message::Entity::find_by_id(root.clone())
            .one(&app.db)
            .await?
            .is_some_and(|m| m.channel_id == channel_id && m.thread_root.is_none() && !m.deleted);
        if !ok {
            return Err(ServiceError::invalid(
                "thread_root must be a top-level message of this channel",
            ));
        }
    }
    let mention_ids = mention_ids(app, &body).await?;
    let outcome: PostOutcome = app
        .writer
        .post(NewPost {
            id: uuid::Uuid::now_v7().to_string(),
            channel_id: channel_id.into(),
            author: p.clone(),
            thread_root: req.thread_root,
            body,
            label,
            idempotency_key: req.idempotency_key,
            mention_ids,
            citations,
            brain: req.brain,
            direct: cached.attrs.visibility == Visibility::Direct,
        })
        .await?;
    if outcome.message.channel_id != channel_id {
        return Err(ServiceError::conflict(
            "idempotency_key was already used for a message in another channel",
        ));
    }
    Ok((outcome, req_citations))
}

async fn mention_ids(app: &AppState, body: &str) -> ServiceResult<Vec<String>> {
    let handles = crate::render::mentions(body);
    if handles.is_empty() {
        return Ok(Vec::new());
    }
    let handles: Vec<String> = handles.into_iter().take(50).collect();
    Ok(app
        .directory
        .by_handles(&handles)
        .await?
        .into_iter()
        .map(|u| u.id)
        .collect())
}

/// Fill in authors, reactions and reply counts, dropping messages whose label
/// `p` may not read.
pub async fn views_for(
    app: &AppState,
    p: &Principal,
    f: &ChannelFacts,
    rows: Vec<message::Model>,
) -> ServiceResult<Vec<MessageView>> {
    let rows = readable_in(app, p, &f.attrs, &f.ctx(p), rows)?;
    observed(app, p, &rows);
    decorate(app, rows).await
}

/// An agent was handed these messages: their labels count toward its next
/// post, as what it retrieves does (SECURITY-CASES 28). A no-op for people.
fn observed(app: &AppState, p: &Principal, rows: &[message::Model]) {
    app.marks
        .raise_stored(p, rows.iter().map(|m| m.label.as_str()));
}

/// The newest `limit` messages after `after_seq` that `p` may read, oldest
/// first, without reactions or reply counts: what an agent reads in a turn.
pub async fn read_recent(
    app: &AppState,
    p: &Principal,
    channel_id: &str,
    after_seq: i64,
    limit: u64,
) -> ServiceResult<Vec<message::Model>> {
    // Hot path: policy facts from the channel cache, as posting does; the
    // full (audited) decision runs only when the cached facts deny.
    let cached = app
        .channels
        .get(&app.db, channel_id)
        .await?
        .ok_or_else(|| ServiceError::not_found("channel"))?;
    let mut ctx = ChannelCtx {
        is_member: cached.members.contains(&p.id),
        is_owner: cached.attrs.created_by == p.id,
        ..Default::default()
    };
    let mut attrs = cached.attrs.clone();
    if !app.authz.channel(p, ChannelAction::Read, &attrs, &ctx) {
        let f = channel_facts(app, p, channel_id).await?;
        require(app, p, ChannelAction::Read, &f, &f.ctx(p)).await?;
        ctx = f.ctx(p);
        attrs = f.attrs;
    }
    let mut rows = message::Entity::find()
        .filter(message::Column::ChannelId.eq(channel_id))
        .filter(message::Column::Seq.gt(after_seq))
        .filter(message::Column::Deleted.eq(false))
        .order_by_desc(message::Column::Seq)
        .limit(limit.clamp(1, app.settings.limits.max_page))
        .all(&app.db)
        .await?;
    rows.reverse();
    let rows = readable_in(app, p, &attrs, &ctx, rows)?;
    observed(app, p, &rows);
    Ok(rows)
}

/// The messages whose label `p` may read.
fn readable_in(
    app: &AppState,
    p: &Principal,
    attrs: &ChannelAttrs,
    base: &ChannelCtx,
    rows: Vec<message::Model>,
) -> ServiceResult<Vec<message::Model>> {
    let mut decisions: HashMap<String, bool> = HashMap::new();
    let mut kept = Vec::new();
    for m in rows {
        let allowed = match decisions.get(&m.label) {
            Some(d) => *d,
            None => {
                let label = parse_label(&m.label)?;
                let ctx = ChannelCtx {
                    msg_label: Some(label),
                    ..base.clone()
                };
                let d = app
                    .authz
                    .channel(p, ChannelAction::ReadMessage, attrs, &ctx);
                decisions.insert(m.label.clone(), d);
                d
            }
        };
        if allowed {
            kept.push(m);
        }
    }
    Ok(kept)
}

async fn decorate(app: &AppState, rows: Vec<message::Model>) -> ServiceResult<Vec<MessageView>> {
    let ids: Vec<String> = rows.iter().map(|m| m.id.clone()).collect();
    let mut reactions: HashMap<String, BTreeMap<String, Vec<String>>> = HashMap::new();
    let mut replies: HashMap<String, i64> = HashMap::new();
    if !ids.is_empty() {
        for r in reaction::Entity::find()
            .filter(reaction::Column::MessageId.is_in(ids.clone()))
            .order_by_asc(reaction::Column::CreatedAt)
            .all(&app.db)
            .await?
        {
            reactions
                .entry(r.message_id)
                .or_default()
                .entry(r.emoji)
                .or_default()
                .push(r.user_id);
        }
        let counts: Vec<(Option<String>, i64)> = message::Entity::find()
            .select_only()
            .column(message::Column::ThreadRoot)
            .column_as(message::Column::Id.count(), "n")
            .filter(message::Column::ThreadRoot.is_in(ids.clone()))
            .filter(message::Column::Deleted.eq(false))
            .group_by(message::Column::ThreadRoot)
            .into_tuple()
            .all(&app.db)
            .await?;
        for (root, n) in counts {
            if let Some(root) = root {
                replies.insert(root, n);
            }
        }
    }
    let mut citations = app.knowledge.citations_of(&ids).await?;
    let mut out = Vec::with_capacity(rows.len());
    for m in rows {
        let Some(author) = app.directory.get(&m.author_id).await? else {
            continue;
        };
        let mut v = MessageView::new(&m, &author);
        v.citations = citations.remove(&m.id).unwrap_or_default();
        if let Some(r) = reactions.remove(&m.id) {
            v.reactions = r
                .into_iter()
                .map(|(emoji, user_ids)| ReactionView {
                    emoji,
                    count: user_ids.len(),
                    user_ids,
                })
                .collect();
        }
        v.reply_count = replies.get(&m.id).copied().unwrap_or(0);
        out.push(v);
    }
    Ok(out)
}

/// A page of a channel's messages, oldest first.
pub async fn list_messages(
    app: &AppState,
    p: &Principal,
    channel_id: &str,
    q: ListQuery,
) -> ServiceResult<Vec<MessageView>> {
    let f = channel_facts(app, p, channel_id).await?;
    require(app, p, ChannelAction::Read, &f, &f.ctx(p)).await?;
    let limit = q.limit.unwrap_or(50).clamp(1, app.settings.limits.max_page);
    let mut find = message::Entity::find().filter(message::Column::ChannelId.eq(channel_id));
    if q.top_level.unwrap_or(false) {
        find = find.filter(message::Column::ThreadRoot.is_null());
    }
    let rows = match (q.after_seq, q.before_seq) {
        (Some(_), Some(_)) => {
            return Err(ServiceError::invalid(
                "give after_seq or before_seq, not both",
            ))
        }
        (Some(after), None) => {
            find.filter(message::Column::Seq.gt(after))
                .order_by_asc(message::Column::Seq)
                .limit(limit)
                .all(&app.db)
                .await?
        }
        (None, before) => {
            let mut f2 = find;
            if let Some(b) = before {
                f2 = f2.filter(message::Column::Seq.lt(b));
            }
            let mut rows = f2
                .order_by_desc(message::Column::Seq)
                .limit(limit)
                .all(&app.db)
                .await?;
            rows.reverse();
            rows
        }
    };
    views_for(app, p, &f, rows).await
}

/// Load a message and its channel facts for `p`.
pub async fn message_facts(
    app: &AppState,
    p: &Principal,
    message_id: &str,
) -> ServiceResult<(message::Model, ChannelFacts)> {
    let Some(m) = message::Entity::find_by_id(message_id.to_string())
        .one(&app.db)
        .await?
    else {
        return Err(ServiceError::not_found("message"));
    };
    let f = channel_facts(app, p, &m.channel_id).await?;
    let ctx = ChannelCtx {
        msg_label: Some(parse_label(&m.label)?),
        ..f.ctx(p)
    };
    if !app
        .authz
        .channel(p, ChannelAction::ReadMessage, &f.attrs, &ctx)
    {
        return Err(ServiceError::not_found("message"));
    }
    Ok((m, f))
}

/// One message as stored, if `p` may read it (404 otherwise), decided on
/// the cached channel facts: what an agent reads when it is woken.
pub async fn read_message(
    app: &AppState,
    p: &Principal,
    message_id: &str,
) -> ServiceResult<message::Model> {
    let Some(m) = message::Entity::find_by_id(message_id.to_string())
        .one(&app.db)
        .await?
    else {
        return Err(ServiceError::not_found("message"));
    };
    let cached = app
        .channels
        .get(&app.db, &m.channel_id)
        .await?
        .ok_or_else(|| ServiceError::not_found("message"))?;
    let ctx = ChannelCtx {
        is_member: cached.members.contains(&p.id),
        is_owner: cached.attrs.created_by == p.id,
        msg_label: Some(parse_label(&m.label)?),
        ..Default::default()
    };
    if m.deleted
        || !app
            .authz
            .channel(p, ChannelAction::ReadMessage, &cached.attrs, &ctx)
    {
        return Err(ServiceError::not_found("message"));
    }
    observed(app, p, std::slice::from_ref(&m));
    Ok(m)
}

/// One message.
pub async fn get_message(
    app: &AppState,
    p: &Principal,
    message_id: &str,
) -> ServiceResult<MessageView> {
    let (m, _f) = message_facts(app, p, message_id).await?;
    observed(app, p, std::slice::from_ref(&m));
    decorate(app, vec![m])
        .await?
        .pop()
        .ok_or_else(|| ServiceError::not_found("message"))
}

/// A thread: its root and replies, oldest first.
pub async fn thread(
    app: &AppState,
    p: &Principal,
    root_id: &str,
) -> ServiceResult<Vec<MessageView>> {
    let (root, f) = message_facts(app, p, root_id).await?;
    let root = match root.thread_root.clone() {
        Some(r) => message_facts(app, p, &r).await?.0,
        None => root,
    };
    let mut rows = vec![root.clone()];
    rows.extend(
        message::Entity::find()
            .filter(message::Column::ThreadRoot.eq(root.id.as_str()))
            .order_by_asc(message::Column::Seq)
            .limit(1000)
            .all(&app.db)
            .await?,
    );
    views_for(app, p, &f, rows).await
}

/// Edit one's own message.
pub async fn edit(
    app: &AppState,
    p: &Principal,
    message_id: &str,
    body: &str,
) -> ServiceResult<MessageView> {
    let body = check_body(app, body)?;
    let (m, f) = message_facts(app, p, message_id).await?;
    if m.deleted {
        return Err(ServiceError::not_found("message"));
    }
    let ctx = ChannelCtx {
        is_author: m.author_id == p.id,
        msg_label: Some(parse_label(&m.label)?),
        ..f.ctx(p)
    };
    require(app, p, ChannelAction::Edit, &f, &ctx).await?;
    let mention_ids = mention_ids(app, &body).await?;
    app.writer
        .change(ChannelChange {
            channel_id: m.channel_id.clone(),
            actor_id: p.id.clone(),
            change: Change::Edit {
                message_id: m.id.clone(),
                body,
                mention_ids,
            },
        })
        .await?;
    get_message(app, p, message_id).await
}

/// Delete a message (its author, or an admin). The body is erased.
pub async fn delete(app: &AppState, p: &Principal, message_id: &str) -> ServiceResult<()> {
    let (m, f) = message_facts(app, p, message_id).await?;
    if m.deleted {
        return Ok(());
    }
    let ctx = ChannelCtx {
        is_author: m.author_id == p.id,
        msg_label: Some(parse_label(&m.label)?),
        ..f.ctx(p)
    };
    require(app, p, ChannelAction::Delete, &f, &ctx).await?;
    app.writer
        .change(ChannelChange {
            channel_id: m.channel_id.clone(),
            actor_id: p.id.clone(),
            change: Change::Delete {
                message_id: m.id.clone(),
            },
        })
        .await?;
    Ok(())
}

fn check_emoji(emoji: &str) -> ServiceResult<String> {
    let e = emoji.trim();
    let ok = !e.is_empty()
        && e.chars().count() <= 32
        && e.chars().all(|c| {
            !c.is_whitespace() && !c.is_control() && c != '<' && c != '>' && c != '"' && c != '&'
        });
    if ok {
        Ok(e.to_string())
    } else {
        Err(ServiceError::invalid(
            "emoji must be 1-32 visible characters (a name like 'thumbsup' or an emoji)",
        ))
    }
}

/// Add or remove `p`'s reaction.
pub async fn react(
    app: &AppState,
    p: &Principal,
    message_id: &str,
    emoji: &str,
    add: bool,
) -> ServiceResult<()> {
    // A reaction ends an agent's turn as a post attempt does: it spends what
    // the agent read for it (SECURITY-CASES 28).
    app.marks.take(&p.id);
    let emoji = check_emoji(emoji)?;
    let (m, f) = message_facts(app, p, message_id).await?;
    let ctx = ChannelCtx {
        msg_label: Some(parse_label(&m.label)?),
        ..f.ctx(p)
    };
    require(app, p, ChannelAction::React, &f, &ctx).await?;
    let change = if add {
        Change::ReactionAdd {
            message_id: m.id.clone(),
            emoji,
        }
    } else {
        Change::ReactionRemove {
            message_id: m.id.clone(),
            emoji,
        }
    };
    app.writer
        .change(ChannelChange {
            channel_id: m.channel_id.clone(),
            actor_id: p.id.clone(),
            change,
        })
        .await?;
    Ok(())
}
/// What one author posted lately, newest first, as far as `p` may read it:
/// only channels `p` may read, and only messages cleared for them.
pub async fn by_author(
    app: &AppState,
    p: &Principal,
    author_id: &str,
    limit: u64,
) -> ServiceResult<Vec<MessageView>> {
    let rows = message::Entity::find()
        .filter(message::Column::AuthorId.eq(author_id))
        .order_by_desc(message::Column::CreatedAt)
        .limit(limit)
        .all(&app.db)
        .await?;
    let mut by_channel: BTreeMap<String, Vec<message::Model>> = BTreeMap::new();
    for r in rows {
        by_channel.entry(r.channel_id.clone()).or_default().push(r);
    }
    let mut out = Vec::new();
    for (channel_id, rows) in by_channel {
        let f = channel_facts(app, p, &channel_id).await?;
        let ctx = f.ctx(p);
        if !app.authz.channel(p, ChannelAction::Read, &f.attrs, &ctx) {
            continue;
        }
        out.extend(views_for(app, p, &f, rows).await?);
    }
    out.sort_by_key(|m| std::cmp::Reverse(m.created_at));
    Ok(out)
}

/// Messages that mention `p`, newest first, that `p` may read.
pub async fn mentions(
    app: &AppState,
    p: &Principal,
    limit: u64,
) -> ServiceResult<Vec<MessageView>> {
    let limit = limit.clamp(1, app.settings.limits.max_page);
    let ids: Vec<String> = crate::storage::entities::mention::Entity::find()
        .filter(crate::storage::entities::mention::Column::UserId.eq(p.id.as_str()))
        .order_by_desc(crate::storage::entities::mention::Column::Seq)
        .limit(limit * 2)
        .all(&app.db)
        .await?
        .into_iter()
        .map(|m| m.message_id)
        .collect();
    readable(app, p, ids, limit).await
}

async fn readable(
    app: &AppState,
    p: &Principal,
    ids: Vec<String>,
    limit: u64,
) -> ServiceResult<Vec<MessageView>> {
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    for id in ids {
        if out.len() as u64 >= limit || !seen.insert(id.clone()) {
            continue;
        }
        if let Ok(v) = get_message(app, p, &id).await {
            if !v.deleted {
                out.push(v);
            }
        }
    }
    Ok(out)
}

/// Full-text search over messages `p` may read (FTS5 on SQLite, PostgreSQL
/// full-text otherwise). Every hit is re-checked by policy.
pub async fn search(
    app: &AppState,
    p: &Principal,
    q: &str,
    limit: u64,
) -> ServiceResult<Vec<MessageView>> {
    let q = q.trim();
    if q.is_empty() || q.chars().count() > 200 {
        return Err(ServiceError::invalid(
            "search query must be 1-200 characters",
        ));
    }
    let limit = limit.clamp(1, app.settings.limits.max_page);
    let backend = app.db.get_database_backend();
    let public = if p.role == Role::Guest {
        ""
    } else {
        " OR m.channel_id IN (SELECT id FROM channels WHERE visibility = 'public')"
    };
    let scope = format!(
        "(m.channel_id IN (SELECT channel_id FROM memberships WHERE user_id = $2){public})"
    );
    let sql = match backend {
        DbBackend::Postgres => format!(
            "SELECT m.id AS id FROM messages m WHERE to_tsvector('simple', m.body) @@ plainto_tsquery('simple', $1) \
             AND m.deleted = false AND {scope} ORDER BY ts_rank(to_tsvector('simple', m.body), plainto_tsquery('simple', $1)) DESC, m.created_at DESC LIMIT $3"
        ),
        _ => format!(
            "SELECT m.id AS id FROM messages_fts JOIN messages m ON m.rowid = messages_fts.rowid \
             WHERE messages_fts MATCH $1 AND m.deleted = false AND {scope} ORDER BY bm25(messages_fts), m.created_at DESC LIMIT $3"
        ),
    };
    let query = match backend {
        DbBackend::Postgres => q.to_string(),
        // Quote every word so FTS5 syntax in user input is just text.
        _ => {
            let words: Vec<String> = q
                .split(|c: char| !c.is_alphanumeric())
                .filter(|w| !w.is_empty())
                .map(|w| format!("\"{w}\""))
                .collect();
            if words.is_empty() {
                return Ok(Vec::new());
            }
            words.join(" ")
        }
    };
    let rows = app
        .db
        .query_all_raw(stmt(
            backend,
            &sql,
            vec![
                query.into(),
                p.id.clone().into(),
                ((limit * 3) as i64).into(),
            ],
        ))
        .await?;
    let ids: Vec<String> = rows
        .iter()
        .filter_map(|r| r.try_get::<String>("", "id").ok())
        .collect();
    readable(app, p, ids, limit).await
}
