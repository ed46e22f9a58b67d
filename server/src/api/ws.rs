//! `GET /api/v1/ws`: the realtime socket. Authenticated at upgrade (bearer
//! header or `access_token` query parameter), foreign `Origin`s refused before
//! the upgrade, frame and message sizes bounded (an oversized frame closes
//! with 1009). Clients subscribe per channel with the last `seq` they saw;
//! the server replays what they missed from storage, or sends `resync`.
//! Agent workers stream the activity feed here: only messages the operator
//! may read, matched against the operator's registered interest words, never
//! text or a digest of it (SECURITY-CASES 24).

use std::sync::Arc;

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use warroom_agent_runtime::platform::InterestMatcher;

use super::{authenticate, bearer, ApiQuery};
use crate::agents::{ActivityReader, FeedItem};
use crate::api::error::ApiError;
use crate::app::App;
use crate::principal::Principal;
use crate::realtime::{CloseReason, Conn, Outbound};

/// Query parameters of the upgrade request.
#[derive(Deserialize, utoipa::IntoParams)]
pub struct WsQuery {
    /// Access token, for clients that cannot set headers (browsers).
    pub access_token: Option<String>,
}

/// What a client may send.
#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
enum ClientFrame {
    Subscribe {
        channel_id: String,
        last_seq: Option<i64>,
    },
    Unsubscribe {
        channel_id: String,
    },
    Typing {
        channel_id: String,
    },
    /// Operators (admins) running agent workers: stream metadata of new
    /// messages the operator may read, each with the ids (positions) of the
    /// `interests` words it contains; at most `MAX_INTERESTS` words.
    AgentActivity {
        #[serde(default)]
        interests: Vec<String>,
    },
    Ping,
}

/// Close code for a message over the size limit (RFC 6455).
pub const CLOSE_TOO_BIG: u16 = 1009;
/// Close code when the access token expires on an open socket.
pub const CLOSE_TOKEN_EXPIRED: u16 = 4001;

fn origin_allowed(app: &App, headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN) else {
        // Non-browser clients (agents, CLIs) send no Origin; browsers always do.
        return true;
    };
    let Ok(origin) = origin.to_str() else {
        return false;
    };
    if app
        .settings
        .server
        .allowed_origins
        .iter()
        .any(|o| o.eq_ignore_ascii_case(origin))
    {
        return true;
    }
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    let authority = origin.split_once("://").map(|(_, a)| a).unwrap_or("");
    !host.is_empty() && authority.eq_ignore_ascii_case(host)
}

/// Open the realtime socket.
#[utoipa::path(get, path = "/api/v1/ws", params(WsQuery),
    responses((status = 101, description = "switching to the WebSocket protocol"), (status = 401, body = crate::api::error::ErrorBody), (status = 403, body = crate::api::error::ErrorBody)))]
pub async fn ws_upgrade(
    State(app): State<App>,
    headers: HeaderMap,
    ApiQuery(q): ApiQuery<WsQuery>,
    ws: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> Response {
    if !origin_allowed(&app, &headers) {
        return ApiError::forbidden("WebSocket origin not allowed").into_response();
    }
    let Some(token) = bearer(&headers).map(str::to_string).or(q.access_token) else {
        return ApiError::unauthenticated(
            "missing access token (Authorization header or access_token parameter)",
        )
        .into_response();
    };
    let principal = match authenticate(&app, &token).await {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    let claims = app.auth.verify_access(&token).ok();
    let exp = claims.as_ref().map(|c| c.exp).unwrap_or(0);
    let session = claims.and_then(|c| c.sid);
    let ws = match ws {
        Ok(ws) => ws,
        Err(e) => {
            return ApiError::invalid(format!("not a WebSocket upgrade: {e}")).into_response()
        }
    };
    let max = app.settings.limits.max_ws_message_bytes;
    ws.max_message_size(max)
        .max_frame_size(max)
        .on_upgrade(move |socket| run(app, socket, principal, exp, session))
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

async fn run(
    app: App,
    socket: WebSocket,
    principal: Arc<Principal>,
    exp: u64,
    session: Option<String>,
) {
    let (conn, mut rx, mut close_rx) = app
        .hub
        .connect_session(principal.as_ref().clone(), session.clone());
    // A logout between the upgrade request and registering here missed this socket.
    if session.is_some_and(|s| app.auth.session_ended(&s)) {
        conn.close(CloseReason {
            code: crate::realtime::CLOSE_REVOKED,
            reason: "logged out: log in again".into(),
        });
    }
    let (mut sink, mut stream) = socket.split();
    let expires = tokio::time::Instant::now()
        + std::time::Duration::from_secs(exp.saturating_sub(now_secs()));
    let writer = tokio::spawn(async move {
        let expiry = tokio::time::sleep_until(expires);
        tokio::pin!(expiry);
        let reason = loop {
            tokio::select! {
                biased;
                changed = close_rx.changed() => {
                    let r = close_rx.borrow().clone();
                    match (changed, r) {
                        (_, Some(r)) => break r,
                        (Err(_), None) => break CloseReason { code: 1001, reason: "server going away".into() },
                        (Ok(()), None) => continue,
                    }
                }
                _ = &mut expiry => break CloseReason { code: CLOSE_TOKEN_EXPIRED, reason: "access token expired: reconnect with a fresh token".into() },
                out = rx.recv() => {
                    let text = match out {
                        Some(Outbound::Event(ev)) => ev.json.clone(),
                        Some(Outbound::Text(t)) => t,
                        None => break CloseReason { code: 1001, reason: "server going away".into() },
                    };
                    if sink.send(Message::Text(text)).await.is_err() {
                        return;
                    }
                }
            }
        };
        let _ = sink
            .send(Message::Close(Some(CloseFrame {
                code: reason.code,
                reason: Utf8Bytes::from(reason.reason),
            })))
            .await;
        let _ = sink.close().await;
    });
    let ready = serde_json::json!({"type": "ready", "connection_id": conn.id, "user_id": conn.principal.id}).to_string();
    conn.send(Outbound::Text(ready.into())).await;
    let mut errors = 0u32;
    while let Some(msg) = stream.next().await {
        match msg {
            Ok(Message::Text(t)) => {
                if let Err(e) = handle_frame(&app, &conn, t.as_str()).await {
                    errors += 1;
                    let j =
                        serde_json::json!({"type": "error", "code": e.code, "message": e.message})
                            .to_string();
                    conn.send(Outbound::Text(j.into())).await;
                    if errors > 100 {
                        conn.close(CloseReason {
                            code: 1008,
                            reason: "too many invalid frames".into(),
                        });
                        break;
                    }
                }
            }
            Ok(Message::Binary(_)) => {
                conn.close(CloseReason {
                    code: 1003,
                    reason: "binary frames are not accepted; send JSON text".into(),
                });
                break;
            }
            Ok(Message::Close(_)) => break,
            Ok(_) => {}
            Err(e) => {
                let too_big = e.to_string().to_lowercase().contains("too long")
                    || e.to_string().to_lowercase().contains("too big")
                    || e.to_string().to_lowercase().contains("capacity");
                if too_big {
                    conn.close(CloseReason {
                        code: CLOSE_TOO_BIG,
                        reason: "message too big".into(),
                    });
                } else {
                    conn.close(CloseReason {
                        code: 1002,
                        reason: "protocol error".into(),
                    });
                }
                break;
            }
        }
    }
    conn.close(CloseReason {
        code: 1000,
        reason: "bye".into(),
    });
    app.hub.disconnect(&conn);
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), writer).await;
}

async fn handle_frame(app: &App, conn: &Arc<Conn>, text: &str) -> Result<(), ApiError> {
    let frame: ClientFrame =
        serde_json::from_str(text).map_err(|e| ApiError::invalid(format!("invalid frame: {e}")))?;
    // One keyed limit on what a user's sockets send (pings are free).
    if !matches!(frame, ClientFrame::Ping) && !app.ws_limiter.allow(&conn.principal.id) {
        return Err(ApiError::rate_limited(
            "too many frames; slow down (limits.ws_frames_per_second)",
        ));
    }
    match frame {
        ClientFrame::Ping => {
            conn.send(Outbound::Text(r#"{"type":"pong"}"#.into())).await;
            Ok(())
        }
        ClientFrame::AgentActivity { interests } => {
            let (feed, reader) = app.agents.activity_for(&conn.principal)?;
            let interests = InterestMatcher::new(&interests)
                .map_err(|e| ApiError::invalid(format!("agent_activity: {e}")))?;
            if conn
                .activity
                .swap(true, std::sync::atomic::Ordering::SeqCst)
            {
                return Err(ApiError::conflict(
                    "this connection already streams agent activity; open another to change the interests",
                ));
            }
            stream_activity(app, conn.clone(), feed, reader, interests);
            conn.send(Outbound::Text(r#"{"type":"activity_subscribed"}"#.into()))
                .await;
            Ok(())
        }
        ClientFrame::Unsubscribe { channel_id } => {
            app.hub
                .unsubscribe(conn, &crate::ids::ChannelId::parse(&channel_id)?);
            Ok(())
        }
        ClientFrame::Typing { channel_id } => {
            app.hub
                .typing(conn, &crate::ids::ChannelId::parse(&channel_id)?);
            Ok(())
        }
        ClientFrame::Subscribe {
            channel_id,
            last_seq,
        } => {
            let channel_id = crate::ids::ChannelId::parse(&channel_id)?;
            if app.hub.subscription_count(conn) >= app.settings.limits.max_subscriptions {
                return Err(ApiError::invalid(
                    "too many subscriptions on this connection",
                ));
            }
            let sub = app.hub.begin_subscribe(conn, &channel_id);
            let r = subscribe(app, conn, &sub, &channel_id, last_seq).await;
            if r.is_err() {
                app.hub.unsubscribe(conn, &channel_id);
            }
            r
        }
    }
}

async fn subscribe(
    app: &App,
    conn: &Arc<Conn>,
    sub: &crate::realtime::Sub,
    channel_id: &crate::ids::ChannelId,
    last_seq: Option<i64>,
) -> Result<(), ApiError> {
    let plan = app
        .chat
        .subscription(&conn.principal, channel_id, last_seq.map(crate::ids::Seq))
        .await?;
    app.hub
        .prepare(sub, plan.attrs.clone(), plan.member, plan.from);
    let mut replayed = 0usize;
    for ev in app.chat.missed(channel_id, &plan).await? {
        app.hub.replay(sub, Arc::new(ev)).await;
        replayed += 1;
    }
    let latest = plan.latest.get();
    let marker = match plan.resync {
        Some(reason) => {
            app.metrics.ws_resyncs.inc();
            serde_json::json!({"type": "resync", "channel_id": channel_id, "reason": reason, "latest_seq": latest,
                "message": "refetch the channel over REST, then subscribe with last_seq = latest_seq"})
        }
        None => {
            serde_json::json!({"type": "subscribed", "channel_id": channel_id, "latest_seq": latest, "replayed": replayed})
        }
    };
    conn.send(Outbound::Text(marker.to_string().into())).await;
    app.hub.go_live(sub, latest);
    Ok(())
}

/// Forward the agent activity feed to an operator's socket, batched, until
/// it closes: only items for messages the operator may read, each with the
/// operator's interest matches and nothing derived from the text.
fn stream_activity(
    app: &App,
    conn: Arc<Conn>,
    mut rx: tokio::sync::broadcast::Receiver<Arc<FeedItem>>,
    mut reader: ActivityReader,
    interests: InterestMatcher,
) {
    // Weak, so the task never keeps the server (and the feed) alive itself.
    let server = Arc::downgrade(app);
    tokio::spawn(async move {
        use tokio::sync::broadcast::error::RecvError;
        loop {
            let mut items = Vec::new();
            match rx.recv().await {
                Ok(a) => items.push(a),
                Err(RecvError::Lagged(n)) => {
                    tracing::warn!(missed = n, "an agent worker fell behind the activity feed");
                    continue;
                }
                Err(RecvError::Closed) => return,
            }
            while items.len() < 256 {
                match rx.try_recv() {
                    Ok(a) => items.push(a),
                    Err(_) => break,
                }
            }
            let Some(app) = server.upgrade() else {
                return;
            };
            let mut out = Vec::with_capacity(items.len());
            for item in items {
                match app
                    .agents
                    .cut_activity(&mut reader, &item, &interests)
                    .await
                {
                    Ok(Some(a)) => out.push(a),
                    Ok(None) => {}
                    // Undecidable is unreadable: the item is left out.
                    Err(e) => tracing::warn!(error = %e, "activity item left out"),
                }
            }
            if out.is_empty() {
                continue;
            }
            let json = serde_json::json!({"type": "activity", "items": out}).to_string();
            if !conn.send(Outbound::Text(json.into())).await {
                return;
            }
        }
    });
}
