//! The remote adapter: the [`Platform`] port over the server's public HTTP +
//! WebSocket API, for workers on other machines. The worker logs in as an
//! operator (a worker account, which may only run agents, or an admin), lists its shard's agents, and obtains a
//! short-lived access token for each agent it runs; every action is then
//! made with the agent's own token, so the server authorizes it exactly as
//! it would in process. The activity feed arrives over the WebSocket: the
//! worker registers its interest words when it subscribes, and the server
//! sends only what the operator may read, with the ids of the words matched.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use warroom_types::wire::{AgentToken, ChannelView, MessageView, Retrieval};

use crate::label::Label;
use crate::memory::Memory;
use crate::platform::{
    Activity, AgentRecord, ChannelInfo, Draft, Evidence, InterestMatcher, Observed, Platform,
    PlatformError, Posted, Shard,
};

/// How the worker authenticates as the operator.
#[derive(Debug, Clone)]
pub enum Operator {
    /// Handle and key (password) of a worker account, or of an admin (the
    /// worker logs in and re-logs in).
    Password { handle: String, password: String },
    /// A ready access token (it expires; prefer a password for long runs).
    Token(String),
}

/// The Platform over HTTP + WebSocket.
pub struct RemoteAdapter {
    base: String,
    http: reqwest::Client,
    operator: Operator,
    operator_token: Mutex<Option<(String, Instant)>>,
    agent_tokens: Mutex<HashMap<String, (String, Instant)>>,
}

/// A page of `GET /agents/runtime` (the server's `RuntimePage`; its agents are
/// this crate's [`AgentRecord`], which the shared wire types cannot name).
#[derive(Deserialize)]
struct AgentPage {
    agents: Vec<AgentRecord>,
    next_after: Option<String>,
}

type FeedSocket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// The server's `{"type":"error"}` frame on the activity feed.
fn feed_refused(frame: &Value) -> PlatformError {
    let message = frame["message"]
        .as_str()
        .unwrap_or("activity feed refused")
        .to_string();
    match frame["code"].as_str() {
        Some("invalid_input") => PlatformError::Rejected {
            code: "invalid_input".into(),
            message,
        },
        _ => PlatformError::Forbidden(message),
    }
}

/// Tokens are renewed this long before they expire.
const RENEW_MARGIN: Duration = Duration::from_secs(60);

impl RemoteAdapter {
    /// An adapter for the server at `base` (e.g. `http://10.0.0.5:8080`).
    pub fn new(base: &str, operator: Operator) -> Result<Self, PlatformError> {
        warroom_knowledge::embed::install_crypto_provider();
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| PlatformError::Unavailable(format!("http client: {e}")))?;
        Ok(Self {
            base: base.trim_end_matches('/').to_string(),
            http,
            operator,
            operator_token: Mutex::new(None),
            agent_tokens: Mutex::new(HashMap::new()),
        })
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Result<(StatusCode, Vec<u8>), PlatformError> {
        let mut req = self
            .http
            .request(method, format!("{}/api/v1{path}", self.base));
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        if let Some(b) = body {
            req = req
                .header("content-type", "application/json")
                .body(serde_json::to_vec(&b).expect("a JSON value serializes"));
        }
        let resp = req
            .send()
            .await
            .map_err(|e| PlatformError::Unavailable(format!("{path}: {e}")))?;
        let status = resp.status();
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| PlatformError::Unavailable(format!("{path}: {e}")))?;
        Ok((status, bytes.to_vec()))
    }

    /// Call the API and decode the answer, mapping error statuses to [`PlatformError`].
    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> Result<T, PlatformError> {
        let (status, bytes) = self.send(method, path, Some(token), body).await?;
        if !status.is_success() {
            return Err(error_for(status, &bytes));
        }
        let bytes = if bytes.is_empty() {
            b"null".to_vec()
        } else {
            bytes
        };
        serde_json::from_slice(&bytes)
            .map_err(|e| PlatformError::Unavailable(format!("{path}: unexpected answer: {e}")))
    }

    async fn operator_token(&self) -> Result<String, PlatformError> {
        if let Some((t, exp)) = self.operator_token.lock().expect("token lock").clone() {
            if exp > Instant::now() + RENEW_MARGIN {
                return Ok(t);
            }
        }
        let (token, ttl) = match &self.operator {
            Operator::Token(t) => (t.clone(), 3600),
            Operator::Password { handle, password } => {
                let (status, bytes) = self
                    .send(
                        Method::POST,
                        "/auth/login",
                        None,
                        Some(json!({"handle": handle, "password": password})),
                    )
                    .await?;
                if !status.is_success() {
                    return Err(error_for(status, &bytes));
                }
                let t: AgentToken = serde_json::from_slice(&bytes)
                    .map_err(|e| PlatformError::Unavailable(format!("login: {e}")))?;
                (t.access_token, t.expires_in)
            }
        };
        *self.operator_token.lock().expect("token lock") =
            Some((token.clone(), Instant::now() + Duration::from_secs(ttl)));
        Ok(token)
    }

    async fn agent_token(&self, agent: &str) -> Result<String, PlatformError> {
        if let Some((t, exp)) = self
            .agent_tokens
            .lock()
            .expect("token lock")
            .get(agent)
            .cloned()
        {
            if exp > Instant::now() + RENEW_MARGIN {
                return Ok(t);
            }
        }
        let op = self.operator_token().await?;
        let t: AgentToken = self
            .call(Method::POST, &format!("/agents/{agent}/token"), &op, None)
            .await?;
        let mut tokens = self.agent_tokens.lock().expect("token lock");
        if tokens.len() > 100_000 {
            tokens.clear();
        }
        tokens.insert(
            agent.to_string(),
            (
                t.access_token.clone(),
                Instant::now() + Duration::from_secs(t.expires_in),
            ),
        );
        Ok(t.access_token)
    }

    async fn as_agent<T: DeserializeOwned>(
        &self,
        agent: &str,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<T, PlatformError> {
        let token = self.agent_token(agent).await?;
        self.call(method, path, &token, body).await
    }

    /// The upgrade request for the realtime socket, with the token in the
    /// `Authorization` header (never in the URL, where proxies and logs keep it).
    fn ws_request(
        &self,
        token: &str,
    ) -> Result<tokio_tungstenite::tungstenite::handshake::client::Request, PlatformError> {
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        let base = self
            .base
            .replacen("https://", "wss://", 1)
            .replacen("http://", "ws://", 1);
        let mut req = format!("{base}/api/v1/ws")
            .into_client_request()
            .map_err(|e| PlatformError::Unavailable(format!("websocket: {e}")))?;
        let value = format!("Bearer {token}").parse().map_err(|_| {
            PlatformError::Unavailable("the access token is not a header value".into())
        })?;
        req.headers_mut().insert("authorization", value);
        Ok(req)
    }
}

fn error_for(status: StatusCode, body: &[u8]) -> PlatformError {
    // The server's error envelope: {"error": {"code": ..., "message": ...}}.
    let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let code = v["error"]["code"].as_str().unwrap_or("error");
    let message = v["error"]["message"]
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| String::from_utf8_lossy(body).chars().take(200).collect());
    PlatformError::from_status(status.as_u16(), code, message)
}

#[async_trait::async_trait]
impl Platform for RemoteAdapter {
    async fn agents(&self, shard: Shard) -> Result<Vec<AgentRecord>, PlatformError> {
        let op = self.operator_token().await?;
        let mut out = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let mut path = format!(
                "/agents/runtime?shard={}/{}&limit=5000",
                shard.index, shard.count
            );
            if let Some(a) = &after {
                path.push_str(&format!("&after={a}"));
            }
            let page: AgentPage = self.call(Method::GET, &path, &op, None).await?;
            out.extend(page.agents);
            match page.next_after {
                Some(a) => after = Some(a),
                None => break,
            }
        }
        Ok(out)
    }

    async fn activity(&self, words: &[String]) -> Result<mpsc::Receiver<Activity>, PlatformError> {
        // Refuse here what the server would refuse, with the same words.
        InterestMatcher::new(words)?;
        let words = words.to_vec();
        let (tx, rx) = mpsc::channel(65_536);
        // The first subscription is made before returning, so nothing posted
        // after this call is missed; later reconnections happen quietly.
        let first = self.subscribe_feed(&words).await?;
        let base = self.base.clone();
        let adapter = RemoteAdapter::new(&base, self.operator.clone())?;
        tokio::spawn(async move {
            let mut backoff = Duration::from_millis(200);
            let mut ready = Some(first);
            loop {
                if tx.is_closed() {
                    return;
                }
                let session = match ready.take() {
                    Some(ws) => Ok(ws),
                    None => adapter.subscribe_feed(&words).await,
                };
                let result = match session {
                    Ok(ws) => adapter.feed_once(ws, &tx).await,
                    Err(e) => Err(e),
                };
                match result {
                    Ok(()) => backoff = Duration::from_millis(200),
                    Err(e) => tracing::warn!(error = %e, "activity feed dropped; reconnecting"),
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(10));
            }
        });
        Ok(rx)
    }

    async fn channels(&self, agent: &str) -> Result<Vec<ChannelInfo>, PlatformError> {
        let list: Vec<ChannelView> = self.as_agent(agent, Method::GET, "/channels", None).await?;
        list.into_iter()
            .filter(|c| c.visibility != "direct" && !c.archived)
            .map(ChannelInfo::try_from)
            .collect()
    }

    async fn observe(
        &self,
        agent: &str,
        channel_id: &str,
        after_seq: i64,
        limit: usize,
    ) -> Result<Vec<Observed>, PlatformError> {
        let path = format!(
            "/channels/{channel_id}/messages?limit={}",
            limit.clamp(1, 200)
        );
        let list: Vec<MessageView> = self.as_agent(agent, Method::GET, &path, None).await?;
        list.into_iter()
            .filter(|m| m.seq > after_seq)
            .map(Observed::try_from)
            .collect()
    }

    async fn message(&self, agent: &str, message_id: &str) -> Result<Observed, PlatformError> {
        let m: MessageView = self
            .as_agent(agent, Method::GET, &format!("/messages/{message_id}"), None)
            .await?;
        m.try_into()
    }

    async fn retrieve(
        &self,
        agent: &str,
        query: &str,
        k: usize,
        ceiling: &Label,
    ) -> Result<Vec<Evidence>, PlatformError> {
        let r: Retrieval = self
            .as_agent(
                agent,
                Method::POST,
                "/retrieve",
                Some(json!({"query": query, "k": k, "max_label": ceiling.to_string()})),
            )
            .await?;
        r.chunks.into_iter().map(Evidence::try_from).collect()
    }

    async fn post(&self, agent: &str, draft: Draft) -> Result<Posted, PlatformError> {
        let body = json!({
            "body": draft.body,
            "thread_root": draft.thread_root,
            "label": draft.label.to_string(),
            "citations": draft.citations,
            "idempotency_key": draft.idempotency_key,
            "brain": draft.brain,
        });
        let m: MessageView = self
            .as_agent(
                agent,
                Method::POST,
                &format!("/channels/{}/messages", draft.channel_id),
                Some(body),
            )
            .await?;
        Ok(Posted {
            message_id: m.id,
            seq: m.seq,
        })
    }

    async fn react(&self, agent: &str, message_id: &str, emoji: &str) -> Result<(), PlatformError> {
        let _: Value = self
            .as_agent(
                agent,
                Method::PUT,
                &format!("/messages/{message_id}/reactions/{emoji}"),
                None,
            )
            .await?;
        Ok(())
    }

    async fn join(&self, agent: &str, channel_id: &str) -> Result<(), PlatformError> {
        let _: Value = self
            .as_agent(
                agent,
                Method::POST,
                &format!("/channels/{channel_id}/join"),
                None,
            )
            .await?;
        Ok(())
    }

    async fn create_channel(
        &self,
        agent: &str,
        name: &str,
        topic: &str,
        label: &Label,
    ) -> Result<ChannelInfo, PlatformError> {
        let c: ChannelView = self
            .as_agent(
                agent,
                Method::POST,
                "/channels",
                Some(json!({"name": name, "visibility": "public", "label": label.to_string(), "topic": topic})),
            )
            .await?;
        c.try_into()
    }

    async fn load_memory(&self, agent: &str) -> Result<Option<Memory>, PlatformError> {
        self.as_agent(agent, Method::GET, &format!("/agents/{agent}/memory"), None)
            .await
    }

    async fn save_memory(&self, agent: &str, memory: &Memory) -> Result<(), PlatformError> {
        let body = serde_json::to_value(memory).expect("memory serializes");
        let _: Value = self
            .as_agent(
                agent,
                Method::PUT,
                &format!("/agents/{agent}/memory"),
                Some(body),
            )
            .await?;
        Ok(())
    }
}

impl RemoteAdapter {
    /// Open the WebSocket and subscribe to the activity feed with the
    /// interest `words` the server matches for us; returns once the server
    /// confirmed the subscription.
    async fn subscribe_feed(&self, words: &[String]) -> Result<FeedSocket, PlatformError> {
        let token = self.operator_token().await?;
        let (mut ws, _) = tokio_tungstenite::connect_async(self.ws_request(&token)?)
            .await
            .map_err(|e| PlatformError::Unavailable(format!("websocket: {e}")))?;
        let frame = json!({"type": "agent_activity", "interests": words}).to_string();
        ws.send(WsMessage::Text(frame.into()))
            .await
            .map_err(|e| PlatformError::Unavailable(format!("websocket: {e}")))?;
        let wait = async {
            while let Some(frame) = ws.next().await {
                let frame =
                    frame.map_err(|e| PlatformError::Unavailable(format!("websocket: {e}")))?;
                if let WsMessage::Text(t) = frame {
                    let v: Value = serde_json::from_str(t.as_str()).unwrap_or(Value::Null);
                    match v["type"].as_str() {
                        Some("activity_subscribed") => return Ok(()),
                        Some("error") => return Err(feed_refused(&v)),
                        _ => {}
                    }
                }
            }
            Err(PlatformError::Unavailable(
                "websocket closed before subscribing".into(),
            ))
        };
        tokio::time::timeout(Duration::from_secs(10), wait)
            .await
            .map_err(|_| {
                PlatformError::Unavailable("activity feed subscription timed out".into())
            })??;
        Ok(ws)
    }

    /// Read one WebSocket session of the activity feed; returns when it closes.
    async fn feed_once(
        &self,
        mut ws: FeedSocket,
        tx: &mpsc::Sender<Activity>,
    ) -> Result<(), PlatformError> {
        while let Some(frame) = ws.next().await {
            let frame = frame.map_err(|e| PlatformError::Unavailable(format!("websocket: {e}")))?;
            let WsMessage::Text(text) = frame else {
                continue;
            };
            let v: Value = match serde_json::from_str(text.as_str()) {
                Ok(v) => v,
                Err(_) => continue,
            };
            match v["type"].as_str() {
                Some("activity") => {
                    let items: Vec<Activity> =
                        serde_json::from_value(v["items"].clone()).unwrap_or_default();
                    for a in items {
                        if tx.send(a).await.is_err() {
                            return Ok(());
                        }
                    }
                }
                Some("error") => return Err(feed_refused(&v)),
                _ => {}
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Finding 15 of the security review: the worker put its token in the
    /// WebSocket URL, where proxies and access logs keep it. It goes in the
    /// `Authorization` header.
    #[test]
    fn finding_15_the_socket_token_travels_in_a_header_not_the_url() {
        let adapter =
            RemoteAdapter::new("https://warroom.example/", Operator::Token("t".into())).unwrap();
        let req = adapter.ws_request("secret-token").unwrap();
        assert_eq!(req.uri().to_string(), "wss://warroom.example/api/v1/ws");
        assert!(!req.uri().to_string().contains("secret-token"));
        assert_eq!(
            req.headers().get("authorization").unwrap(),
            "Bearer secret-token"
        );
    }
}
