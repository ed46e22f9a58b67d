//! The in-process [`Platform`] adapter: the agent runtime inside the server
//! process. Every call loads the agent's principal and goes through the same
//! chat and knowledge services (and so the same Cedar checks, label rules,
//! rate limits and audit) as an HTTP request made with the agent's token.

use std::sync::Arc;

use tokio::sync::mpsc;
use warroom_agent_runtime::label::Label;
use warroom_agent_runtime::memory::Memory;
use warroom_agent_runtime::platform::{
    server_label, Activity, AgentRecord, ChannelInfo, Draft, Evidence, InterestMatcher, Observed,
    Platform, PlatformError, Posted, Shard,
};

use crate::chat::Chat;
use crate::directory::Directory;
use crate::ids::{AgentId, IdError, Seq, UserId};
use crate::knowledge::Knowledge;

use super::Agents;
use crate::agents::AgentsError;
use crate::error::Failure;
use crate::principal::{Principal, UserKind};

/// The runtime's window on this server.
#[derive(Clone)]
pub struct InProcess {
    directory: Arc<Directory>,
    chat: Chat,
    knowledge: Arc<Knowledge>,
    agents: Arc<Agents>,
}

/// What [`InProcess::new`] is built from: the services an agent acts
/// through, the same ones HTTP requests use.
pub struct InProcessParts {
    pub directory: Arc<Directory>,
    pub chat: Chat,
    pub knowledge: Arc<Knowledge>,
    pub agents: Arc<Agents>,
}

impl InProcess {
    /// A stored message as an agent observes it.
    async fn observed_row(
        &self,
        m: crate::storage::entities::message::Model,
    ) -> Result<Observed, PlatformError> {
        let author = self
            .directory
            .get(&UserId::from_trusted(m.author_id.as_str()))
            .await
            .map_err(platform_error)?
            .ok_or_else(|| PlatformError::Unavailable("author vanished".into()))?;
        Ok(Observed {
            label: server_label(&m.label)?,
            message_id: m.id,
            channel_id: m.channel_id,
            seq: m.seq,
            author_id: m.author_id,
            author_handle: author.handle.clone(),
            author_is_agent: author.kind == UserKind::Agent,
            body: m.body,
            thread_root: m.thread_root,
        })
    }

    /// An adapter over a running server's services.
    pub fn new(p: InProcessParts) -> Self {
        Self {
            directory: p.directory,
            chat: p.chat,
            knowledge: p.knowledge,
            agents: p.agents,
        }
    }

    async fn principal(&self, agent: &str) -> Result<Arc<Principal>, PlatformError> {
        let p = self
            .directory
            .get(&parse_id::<UserId>(agent)?)
            .await
            .map_err(platform_error)?
            .ok_or_else(|| PlatformError::NotFound(format!("agent {agent}")))?;
        if p.kind != UserKind::Agent || !p.active {
            return Err(PlatformError::Forbidden(format!(
                "{} is not an active agent",
                p.handle
            )));
        }
        Ok(p)
    }
}

/// Map a service error to the port's error: the same mapping a remote
/// worker applies to the HTTP status of the same failure.
pub fn platform_error(e: impl Failure) -> PlatformError {
    use crate::error::ErrorKind;
    let message = e.message();
    match e.kind() {
        ErrorKind::Unauthenticated | ErrorKind::Forbidden => PlatformError::Forbidden(message),
        ErrorKind::NotFound => PlatformError::NotFound(message),
        ErrorKind::RateLimited => PlatformError::RateLimited,
        ErrorKind::Unavailable | ErrorKind::Internal => {
            PlatformError::Unavailable(format!("{}: {message}", e.code()))
        }
        ErrorKind::Invalid
        | ErrorKind::Conflict
        | ErrorKind::TooLarge
        | ErrorKind::Unprocessable => PlatformError::Rejected {
            code: e.code().to_string(),
            message,
        },
    }
}

/// An id the runtime hands over, checked as one from an HTTP path is.
fn parse_id<T: std::str::FromStr<Err = IdError>>(s: &str) -> Result<T, PlatformError> {
    s.parse()
        .map_err(|e: IdError| platform_error(AgentsError::from(e)))
}

#[async_trait::async_trait]
impl Platform for InProcess {
    async fn agents(&self, shard: Shard) -> Result<Vec<AgentRecord>, PlatformError> {
        let mut out = Vec::new();
        let mut after: Option<AgentId> = None;
        loop {
            let page = self
                .agents
                .runtime_page(crate::authz::Actor::Server, shard, after.as_ref(), 10_000)
                .await
                .map_err(platform_error)?;
            out.extend(page.agents);
            match page.next_after {
                Some(a) => after = Some(AgentId::from_trusted(a)),
                None => return Ok(out),
            }
        }
    }

    async fn activity(&self, words: &[String]) -> Result<mpsc::Receiver<Activity>, PlatformError> {
        let interests = InterestMatcher::new(words)?;
        Ok(self.agents.feed().in_process(interests))
    }

    async fn channels(&self, agent: &str) -> Result<Vec<ChannelInfo>, PlatformError> {
        let p = self.principal(agent).await?;
        self.chat
            .list_channels(&p)
            .await
            .map_err(platform_error)?
            .into_iter()
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
        let p = self.principal(agent).await?;
        let rows = self
            .chat
            .read_recent(
                &p,
                &parse_id(channel_id)?,
                Seq(after_seq),
                limit.clamp(1, 200) as u64,
            )
            .await
            .map_err(platform_error)?;
        let mut out = Vec::with_capacity(rows.len());
        for m in rows {
            out.push(self.observed_row(m).await?);
        }
        Ok(out)
    }

    async fn message(&self, agent: &str, message_id: &str) -> Result<Observed, PlatformError> {
        let p = self.principal(agent).await?;
        let m = self
            .chat
            .read_message(&p, &parse_id(message_id)?)
            .await
            .map_err(platform_error)?;
        self.observed_row(m).await
    }

    async fn retrieve(
        &self,
        agent: &str,
        query: &str,
        k: usize,
        ceiling: &Label,
    ) -> Result<Vec<Evidence>, PlatformError> {
        let p = self.principal(agent).await?;
        let r = self
            .knowledge
            .retrieve(&p, query, k, Some(ceiling))
            .await
            .map_err(platform_error)?;
        r.chunks.into_iter().map(Evidence::try_from).collect()
    }

    async fn post(&self, agent: &str, draft: Draft) -> Result<Posted, PlatformError> {
        let p = self.principal(agent).await?;
        let req = crate::chat::PostMessage {
            body: draft.body,
            thread_root: draft.thread_root,
            idempotency_key: Some(draft.idempotency_key),
            label: Some(draft.label.to_string()),
            citations: draft
                .citations
                .iter()
                .map(|c| parse_id(c))
                .collect::<Result<_, _>>()?,
            brain: Some(
                draft
                    .brain
                    .parse()
                    .map_err(|e: warroom_types::ChoiceError| PlatformError::Rejected {
                        code: "invalid_input".into(),
                        message: e.to_string(),
                    })?,
            ),
        };
        let (stored, _) = self
            .chat
            .post_stored(&p, &parse_id(&draft.channel_id)?, req)
            .await
            .map_err(platform_error)?;
        Ok(Posted {
            message_id: stored.message.id,
            seq: stored.message.seq,
        })
    }

    async fn react(&self, agent: &str, message_id: &str, emoji: &str) -> Result<(), PlatformError> {
        let p = self.principal(agent).await?;
        self.chat
            .react(&p, &parse_id(message_id)?, emoji, true)
            .await
            .map_err(platform_error)
    }

    async fn join(&self, agent: &str, channel_id: &str) -> Result<(), PlatformError> {
        let p = self.principal(agent).await?;
        self.chat
            .join(&p, &parse_id(channel_id)?)
            .await
            .map(|_| ())
            .map_err(platform_error)
    }

    async fn create_channel(
        &self,
        agent: &str,
        name: &str,
        topic: &str,
        label: &Label,
    ) -> Result<ChannelInfo, PlatformError> {
        let p = self.principal(agent).await?;
        let c = self
            .chat
            .create_channel(
                &p,
                crate::chat::CreateChannel {
                    name: name.into(),
                    visibility: "public".into(),
                    label: Some(label.to_string()),
                    topic: Some(topic.into()),
                },
            )
            .await
            .map_err(platform_error)?;
        ChannelInfo::try_from(c)
    }

    async fn load_memory(&self, agent: &str) -> Result<Option<Memory>, PlatformError> {
        self.agents
            .memory(&parse_id(agent)?)
            .await
            .map_err(platform_error)
    }

    async fn save_memory(&self, agent: &str, memory: &Memory) -> Result<(), PlatformError> {
        self.agents
            .save_memory(&parse_id(agent)?, memory)
            .await
            .map_err(platform_error)
    }
}
