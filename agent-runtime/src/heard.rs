//! What each channel has heard lately: the sentences quoted in it, keyed by a
//! hash of their words, with the runtime time they were heard. An agent does
//! not quote what its channel already carries within the window, so the talk
//! moves on to facts nobody has said yet instead of circling the same line.
//!
//! The runtime feeds it with every message its agents read or post; a worker
//! that drives one shard hears the other shards' messages when it reads them.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Mutex;

use crate::platform::fnv1a;
use crate::scheduler::Millis;

/// Most sentences remembered per channel; older ones are forgotten first.
const PER_CHANNEL: usize = 4096;

/// A key for a sentence that ignores case, punctuation and spacing, so the
/// same quote framed differently is still the same quote.
pub fn sentence_key(sentence: &str) -> u64 {
    let mut norm = String::with_capacity(sentence.len());
    for w in sentence
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
    {
        if !norm.is_empty() {
            norm.push(' ');
        }
        norm.extend(w.chars().flat_map(char::to_lowercase));
    }
    fnv1a(norm.as_bytes())
}

/// The quoted spans of a message body (`"..."`), or, when it quotes nothing,
/// its sentences: what a reader of the channel has now seen stated.
pub fn stated(body: &str) -> Vec<&str> {
    let quoted: Vec<&str> = body
        .split('"')
        .skip(1)
        .step_by(2)
        .map(str::trim)
        .filter(|s| s.len() >= 12)
        .collect();
    if !quoted.is_empty() {
        return quoted;
    }
    body.split_inclusive(['.', '!', '?'])
        .map(str::trim)
        .filter(|s| s.len() >= 12)
        .collect()
}

/// Append keys heard at `now`, forgetting the oldest beyond [`PER_CHANNEL`].
fn remember(q: &mut VecDeque<(Millis, u64)>, now: Millis, keys: impl IntoIterator<Item = u64>) {
    q.extend(keys.into_iter().map(|k| (now, k)));
    while q.len() > PER_CHANNEL {
        q.pop_front();
    }
}

/// Per channel, the keys of sentences heard and when.
pub struct Heard {
    window: Millis,
    channels: Mutex<HashMap<String, VecDeque<(Millis, u64)>>>,
}

impl Heard {
    /// Remember what was heard for `window` of runtime time.
    pub fn new(window: Millis) -> Self {
        Self {
            window,
            channels: Mutex::new(HashMap::new()),
        }
    }

    /// Record a message body seen in `channel` at `now`.
    pub fn hear(&self, channel: &str, now: Millis, body: &str) {
        let keys = stated(body).into_iter().map(sentence_key);
        let mut map = self.channels.lock().expect("heard lock");
        remember(map.entry(channel.to_string()).or_default(), now, keys);
    }

    /// Take the sentences `body` states for `channel` at `now`, unless the
    /// channel heard one of them within the window: then nothing is
    /// recorded and the answer is `false`. Agents composing at the same time
    /// each check what the others took, so two of them cannot post the same
    /// quote side by side.
    pub fn claim(&self, channel: &str, now: Millis, body: &str) -> bool {
        let keys: Vec<u64> = stated(body).into_iter().map(sentence_key).collect();
        let mut map = self.channels.lock().expect("heard lock");
        let q = map.entry(channel.to_string()).or_default();
        let horizon = now.saturating_sub(self.window);
        if self.window > 0 && q.iter().any(|(t, k)| *t >= horizon && keys.contains(k)) {
            return false;
        }
        remember(q, now, keys);
        true
    }

    /// Keys of the sentences `channel` heard within the window before `now`.
    pub fn recent(&self, channel: &str, now: Millis) -> HashSet<u64> {
        if self.window == 0 {
            return HashSet::new();
        }
        let mut map = self.channels.lock().expect("heard lock");
        let Some(q) = map.get_mut(channel) else {
            return HashSet::new();
        };
        let horizon = now.saturating_sub(self.window);
        while q.front().is_some_and(|(t, _)| *t < horizon) {
            q.pop_front();
        }
        q.iter().map(|(_, k)| *k).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_quote_is_the_same_whatever_its_framing() {
        let body = "Flagging this from finance: \"Cash on hand was $18.6M at the end of October.\" (source: Close)";
        let keys: Vec<u64> = stated(body).into_iter().map(sentence_key).collect();
        assert_eq!(
            keys,
            vec![sentence_key(
                "cash on hand was $18.6M at the end of october"
            )]
        );
    }

    #[test]
    fn a_quote_the_channel_carries_cannot_be_claimed_again_within_the_window() {
        let h = Heard::new(60_000);
        let a = "From sales: \"Halvorsen renews in March.\" (source: Pipeline)";
        let b = "@sam Our documents say: \"halvorsen renews in March\" (source: Pipeline)";
        assert!(h.claim("c", 1_000, a));
        assert!(
            !h.claim("c", 2_000, b),
            "the same quote, framed differently"
        );
        assert!(
            h.claim("other", 2_000, b),
            "another channel has not heard it"
        );
        assert!(h.claim("c", 62_000, b), "the window has passed");
        h.hear("c", 70_000, "\"The plant runs two shifts since May.\"");
        assert!(!h.claim("c", 71_000, "\"The plant runs two shifts since May.\""));
    }

    #[test]
    fn a_channel_forgets_what_it_heard_after_the_window() {
        let h = Heard::new(60_000);
        h.hear("c", 1_000, "\"The plant runs two shifts since May.\"");
        let k = sentence_key("The plant runs two shifts since May.");
        assert!(h.recent("c", 30_000).contains(&k));
        assert!(!h.recent("other", 30_000).contains(&k));
        assert!(!h.recent("c", 62_000).contains(&k));
    }
}
