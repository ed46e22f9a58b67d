//! What the server handed each agent since its last act: the document
//! chunks it retrieved or read through a citation, and the messages it read.
//! The label of the agent's next post is at least this mark, whatever the
//! agent claims (SECURITY-CASES 28).
//!
//! A mark is spent by the agent's next act, a post attempt or a reaction,
//! whatever becomes of it, and lapses after [`WINDOW`]. It so covers one turn
//! of the runtime (read a channel, retrieve, then post or react there)
//! without tainting the agent for good: reading a restricted room and then
//! posting what it said to a lower one in the same turn is refused, while an
//! agent that sits in rooms of several labels still speaks in each. Agents
//! cannot subscribe to channels on the socket, whose frames the server could
//! not count; they read over the REST API.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::label::Label;
use crate::principal::{Principal, UserKind};

/// How long what an agent read counts toward its next post.
pub const WINDOW: Duration = Duration::from_secs(600);

/// Marks kept before lapsed ones are dropped.
const PRUNE_ABOVE: usize = 200_000;

/// Per-agent high-water marks.
#[derive(Default)]
pub struct AgentMarks {
    map: Mutex<HashMap<String, (Label, Instant)>>,
}

impl AgentMarks {
    /// `p` was given material labelled `label` (a no-op for people).
    pub fn raise(&self, p: &Principal, label: &Label) {
        if p.kind != UserKind::Agent {
            return;
        }
        let now = Instant::now();
        let mut map = self.map.lock().expect("marks lock");
        if map.len() > PRUNE_ABOVE {
            map.retain(|_, (_, at)| now.duration_since(*at) < WINDOW);
        }
        let entry = map
            .entry(p.id.to_string())
            .or_insert_with(|| (label.clone(), now));
        if now.duration_since(entry.1) >= WINDOW {
            *entry = (label.clone(), now);
        } else {
            entry.0 = entry.0.join(label);
            entry.1 = now;
        }
    }

    /// `p` was given material with these stored labels; one that does not
    /// parse counts as the highest `p` may see.
    pub fn raise_stored<'a>(&self, p: &Principal, labels: impl IntoIterator<Item = &'a str>) {
        if p.kind != UserKind::Agent {
            return;
        }
        let seen = labels
            .into_iter()
            .map(|l| Label::from_stored(l, &p.clearance))
            .reduce(|a, b| a.join(&b));
        if let Some(l) = seen {
            self.raise(p, &l);
        }
    }

    /// The mark of `agent` for the post it is about to make, cleared.
    pub fn take(&self, agent: &str) -> Option<Label> {
        let (label, at) = self.map.lock().expect("marks lock").remove(agent)?;
        (at.elapsed() < WINDOW).then_some(label)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn agent(kind: UserKind) -> Principal {
        Principal {
            id: crate::ids::UserId::from_trusted("a1"),
            handle: "bot".into(),
            display_name: "Bot".into(),
            role: crate::principal::Role::Agent,
            kind,
            department: None,
            clearance: "restricted:hr".parse().unwrap(),
            active: true,
        }
    }

    #[test]
    fn a_mark_is_the_join_of_what_was_read_and_is_taken_once() {
        let m = AgentMarks::default();
        let a = agent(UserKind::Agent);
        m.raise(&a, &"internal".parse().unwrap());
        m.raise(&a, &"confidential:hr".parse().unwrap());
        m.raise(&a, &"public".parse().unwrap());
        assert_eq!(m.take("a1").unwrap().to_string(), "confidential:hr");
        assert!(m.take("a1").is_none());
        m.raise(&agent(UserKind::Human), &"restricted".parse().unwrap());
        assert!(m.take("a1").is_none(), "people carry no mark");
    }
}
