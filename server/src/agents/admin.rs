//! What people and workers ask of agents through the API, each with its own
//! check: templates and messages for viewers, tokens for workers, memory for
//! the agent itself or its managers (redacted to the reader's clearance).

use warroom_agent_runtime::memory::Memory;
use warroom_agent_runtime::persona::Template;
use warroom_agent_runtime::platform::{Activity, InterestMatcher};

use super::Agents;
use crate::agents::{AgentsError, AgentsResult};
use crate::authz::{Actor, SystemAction};
use crate::ids::AgentId;
use crate::label::Label;
use crate::principal::{Principal, UserKind};
use warroom_types::wire::{AgentToken, MessageView};

/// What replaces memory a reader is not cleared for.
const REDACTED: &str = "[redacted: above your clearance]";

impl Agents {
    /// The templates agents can be spawned from (agent viewers).
    pub fn templates_for(&self, actor: Actor<'_>) -> AgentsResult<Vec<Template>> {
        self.authz.permit(actor, SystemAction::AgentView)?;
        Ok(self.templates())
    }

    /// The live activity feed, for a worker that runs agents, with the
    /// reader that decides what of it the worker may receive: each item goes
    /// through [`Agents::cut_activity`] before it leaves the process.
    pub fn activity_for(
        &self,
        worker: &Principal,
    ) -> AgentsResult<(
        tokio::sync::broadcast::Receiver<std::sync::Arc<super::FeedItem>>,
        super::feed::ActivityReader,
    )> {
        self.authz
            .permit(Actor::Principal(worker), SystemAction::AgentRun)?;
        Ok((
            self.feed.subscribe(),
            super::feed::ActivityReader::new(worker),
        ))
    }

    /// `item` as the subscriber of `reader` may receive it: `None` unless it
    /// may read the message, and only its own interest matches, never text.
    pub async fn cut_activity(
        &self,
        reader: &mut super::feed::ActivityReader,
        item: &super::FeedItem,
        interests: &InterestMatcher,
    ) -> AgentsResult<Option<Activity>> {
        let Some(channel) = self
            .chat
            .cached_channel(&crate::ids::ChannelId::from_trusted(item.channel_id()))
            .await?
        else {
            return Ok(None);
        };
        Ok(reader.cut(&self.authz, &channel, item, interests))
    }

    /// What an agent posted lately, as far as `p` may read it (agent viewers).
    pub async fn messages(
        &self,
        p: &Principal,
        id: &AgentId,
        limit: u64,
    ) -> AgentsResult<Vec<MessageView>> {
        self.authz
            .permit(Actor::Principal(p), SystemAction::AgentView)?;
        Ok(self.chat.by_author(p, &id.user(), limit).await?)
    }

    /// An access token for an active agent, for a worker to act as it. The
    /// minter must be allowed to run agents and cleared for the agent's
    /// clearance: nobody acts through an agent with more than they may see.
    pub async fn issue_token(&self, minter: &Principal, id: &AgentId) -> AgentsResult<AgentToken> {
        self.authz
            .permit(Actor::Principal(minter), SystemAction::AgentRun)?;
        let agent = self
            .directory
            .get(&id.user())
            .await?
            .filter(|a| a.kind == UserKind::Agent && a.active)
            .ok_or_else(|| AgentsError::not_found("active agent"))?;
        if !agent.clearance.within(&minter.clearance) {
            self.audit
                .record(
                    Some(&minter.id),
                    "agent.token",
                    &agent.id,
                    "denied",
                    serde_json::json!({"reason": "clearance_exceeded", "agent_clearance": agent.clearance.to_string()}),
                )
                .await;
            return Err(AgentsError::ClearanceExceeded(
format!(
                    "agent {} is cleared for {}, beyond your clearance {}: a token must be issued by someone cleared for it",
                    agent.handle, agent.clearance, minter.clearance
                ),
            ));
        }
        self.audit
            .record(
                Some(&minter.id),
                "agent.token",
                &agent.id,
                "ok",
                serde_json::json!({"agent_clearance": agent.clearance.to_string()}),
            )
            .await;
        Ok(AgentToken {
            access_token: self.auth.issue_agent_access(id, &minter.user_id()),
            expires_in: self.auth.access_ttl(),
        })
    }

    /// An agent's saved memory as `reader` may see it: all of it for the
    /// agent itself; for its managers, notes and summary only within their
    /// clearance and never the sentence keys.
    pub async fn memory_for(
        &self,
        reader: &Principal,
        id: &AgentId,
    ) -> AgentsResult<Option<Memory>> {
        self.require_self_or_manager(reader, id)?;
        let memory = self.memory(id).await?;
        if reader.id.as_str() == id.as_str() {
            return Ok(memory);
        }
        let agent_clearance = self
            .directory
            .get(&id.user())
            .await?
            .map(|a| a.clearance.clone())
            .ok_or_else(|| AgentsError::not_found("agent"))?;
        let Some(memory) = memory else {
            return Ok(None);
        };
        let memory = self.labelled_memory(memory, &agent_clearance).await?;
        Ok(Some(redact_memory(
            memory,
            &reader.clearance,
            &agent_clearance,
        )))
    }

    /// Replace an agent's memory (the agent itself or its managers).
    pub async fn replace_memory(
        &self,
        writer: &Principal,
        id: &AgentId,
        memory: &Memory,
    ) -> AgentsResult<()> {
        self.require_self_or_manager(writer, id)?;
        if !self.exists(id).await? {
            return Err(AgentsError::not_found("agent"));
        }
        self.save_memory(id, memory).await
    }

    /// The agent itself, or someone allowed to manage agents.
    fn require_self_or_manager(&self, p: &Principal, id: &AgentId) -> AgentsResult<()> {
        if p.id.as_str() == id.as_str() && p.kind == UserKind::Agent {
            return Ok(());
        }
        Ok(self
            .authz
            .permit(Actor::Principal(p), SystemAction::AgentManage)?)
    }
}

/// What of an agent's memory a reader other than the agent may see: notes
/// and the summary only within the reader's clearance (a summary of unknown
/// label counts as the agent's clearance), never the sentence keys.
fn redact_memory(mut m: Memory, reader: &Label, agent_clearance: &Label) -> Memory {
    for n in &mut m.recent {
        if !n.label.within(reader) {
            n.text = REDACTED.into();
            n.author = REDACTED.into();
            n.channel_id = REDACTED.into();
            n.message_id = REDACTED.into();
        }
    }
    let summary_label = m.summary_label.as_ref().unwrap_or(agent_clearance);
    if !m.summary.is_empty() && !summary_label.within(reader) {
        m.summary = REDACTED.into();
    }
    m.said.clear();
    m
}
