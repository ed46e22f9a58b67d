//! The runtime's copy of the server's per-agent mark: the join of the labels
//! of the chunks retrieved and the messages read for an agent since its last
//! act (a post or a reaction attempt). The server raises every post to its
//! mark (SECURITY-CASES 28); the runtime keeps the same account so an agent
//! never tries a post the server would refuse for it, and stays silent
//! instead.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::label::Label;

/// How long a read counts here: a little longer than the server's ten
/// minutes, so the runtime errs on the side of silence, never refusal.
pub const WINDOW: Duration = Duration::from_secs(660);

/// Marks per agent id.
#[derive(Default)]
pub struct Marks {
    map: Mutex<HashMap<String, (Label, Instant)>>,
}

impl Marks {
    /// `agent` was handed material labelled `label`.
    pub fn raise(&self, agent: &str, label: &Label) {
        let now = Instant::now();
        let mut map = self.map.lock().expect("marks lock");
        match map.get_mut(agent) {
            Some((l, at)) if now.duration_since(*at) < WINDOW => {
                *l = l.join(label);
                *at = now;
            }
            _ => {
                map.insert(agent.to_string(), (label.clone(), now));
            }
        }
    }

    /// The mark of `agent`, if any is current.
    pub fn get(&self, agent: &str) -> Option<Label> {
        let map = self.map.lock().expect("marks lock");
        map.get(agent)
            .filter(|(_, at)| at.elapsed() < WINDOW)
            .map(|(l, _)| l.clone())
    }

    /// A post was attempted: the server has consumed its mark.
    pub fn clear(&self, agent: &str) {
        self.map.lock().expect("marks lock").remove(agent);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks_join_until_a_post_clears_them() {
        let m = Marks::default();
        m.raise("a", &"internal".parse().unwrap());
        m.raise("a", &"confidential:hr".parse().unwrap());
        assert_eq!(m.get("a").unwrap().to_string(), "confidential:hr");
        m.clear("a");
        assert!(m.get("a").is_none());
        assert!(m.get("b").is_none());
    }
}
