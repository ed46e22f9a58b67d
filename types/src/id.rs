//! Typed ids. Every stored row is named by a short ASCII id (a UUID for the
//! ones Warroom creates, a slug for ones imported or written by hand); each
//! kind of row gets its own type, so a channel id cannot be passed where a
//! message id is meant, and an id from outside is checked once, where it is
//! parsed, instead of at every handler.
//!
//! The accepted form is 1-64 characters of ASCII letters, digits and `-`:
//! what `uuid::Uuid` prints, and nothing that could break out of a path, a
//! query string or a log line.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize};

/// The longest id accepted from outside.
pub const MAX_ID_LEN: usize = 64;

/// Why a string is not an id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed {kind} id: expected 1-{MAX_ID_LEN} ASCII letters, digits or '-'")]
pub struct IdError {
    /// Which kind of id was expected (`channel`, `message`, ...).
    pub kind: &'static str,
}

/// Whether `s` has the shape of an id.
pub fn is_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_ID_LEN
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident, $kind:literal) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// What this id names, for error messages.
            pub const KIND: &'static str = $kind;

            /// Check an id that came from outside.
            pub fn parse(s: &str) -> Result<Self, IdError> {
                if is_id(s) {
                    Ok(Self(s.to_string()))
                } else {
                    Err(IdError { kind: $kind })
                }
            }

            /// Wrap an id read from storage or minted by the server, which
            /// are trusted to have the right shape.
            pub fn from_trusted(s: impl Into<String>) -> Self {
                Self(s.into())
            }

            /// The id as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }

            /// The id as an owned string.
            pub fn into_string(self) -> String {
                self.0
            }
        }

        impl std::ops::Deref for $name {
            type Target = str;
            fn deref(&self) -> &str {
                &self.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl std::borrow::Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({:?})", stringify!($name), self.0)
            }
        }

        impl std::str::FromStr for $name {
            type Err = IdError;
            fn from_str(s: &str) -> Result<Self, IdError> {
                Self::parse(s)
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        impl From<&$name> for String {
            fn from(id: &$name) -> String {
                id.0.clone()
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl PartialEq<String> for $name {
            fn eq(&self, other: &String) -> bool {
                &self.0 == other
            }
        }

        impl PartialEq<$name> for String {
            fn eq(&self, other: &$name) -> bool {
                self == &other.0
            }
        }

        impl PartialEq<&$name> for String {
            fn eq(&self, other: &&$name) -> bool {
                self == &other.0
            }
        }

        #[cfg(feature = "sea-orm")]
        impl From<&$name> for sea_orm::Value {
            fn from(id: &$name) -> sea_orm::Value {
                id.0.clone().into()
            }
        }

        #[cfg(feature = "sea-orm")]
        impl From<$name> for sea_orm::Value {
            fn from(id: $name) -> sea_orm::Value {
                id.0.into()
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                Self::parse(&s).map_err(serde::de::Error::custom)
            }
        }
    };
}

string_id!(
    /// A person's or an agent's account.
    UserId,
    "user"
);
string_id!(
    /// An agent (its account id).
    AgentId,
    "agent"
);
string_id!(
    /// A channel, public, private or direct.
    ChannelId,
    "channel"
);
string_id!(
    /// A message.
    MessageId,
    "message"
);
string_id!(
    /// A chunk of a document in the knowledge store.
    ChunkId,
    "chunk"
);
string_id!(
    /// A document in the knowledge store.
    DocumentId,
    "document"
);
string_id!(
    /// A stored insights digest.
    DigestId,
    "digest"
);
string_id!(
    /// A knowledge scope. Where a scope is looked up, its name serves as
    /// well as its id: names are slugs (`a-z`, digits, `-`), which have the
    /// id form.
    ScopeId,
    "scope"
);

impl UserId {
    /// The server itself, as the actor of work no person asked for (seeding
    /// the demo, scheduled runs). No account has this id: it cannot log in.
    pub fn system() -> Self {
        Self("system".into())
    }
}

impl AgentId {
    /// The agent's account: every agent is a user of kind `agent`.
    pub fn user(&self) -> UserId {
        UserId(self.0.clone())
    }
}

/// A position in a channel's event sequence. Every message and membership
/// change gets the next one; readers resume after the last they saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Seq(pub i64);

impl Seq {
    /// Before the first event of any channel.
    pub const START: Seq = Seq(0);

    /// The number.
    pub fn get(self) -> i64 {
        self.0
    }
}

impl fmt::Display for Seq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl From<i64> for Seq {
    fn from(n: i64) -> Self {
        Seq(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_accept_uuids_and_slugs_and_nothing_that_escapes() {
        let uuid = "0193b0c2-5f1e-7c3a-9d2e-4b8f6a1c2d3e";
        assert_eq!(ChannelId::parse(uuid).unwrap().as_str(), uuid);
        assert!(MessageId::parse("m-1").is_ok());
        for bad in [
            "",
            "a/b",
            "../x",
            "a b",
            "é",
            "a\nb",
            "a%2F",
            &"x".repeat(65),
        ] {
            let e = ChannelId::parse(bad).unwrap_err();
            assert_eq!(e.kind, "channel", "{bad:?}");
        }
        assert!(UserId::parse(&"x".repeat(64)).is_ok());
    }

    #[test]
    fn ids_deserialize_only_when_well_formed() {
        let ok: MessageId = serde_json::from_str("\"abc-1\"").unwrap();
        assert_eq!(ok.to_string(), "abc-1");
        let bad = serde_json::from_str::<MessageId>("\"a/b\"").unwrap_err();
        assert!(bad.to_string().contains("malformed message id"), "{bad}");
        assert_eq!(serde_json::to_string(&ok).unwrap(), "\"abc-1\"");
        let s: Seq = serde_json::from_str("42").unwrap();
        assert_eq!(s, Seq(42));
    }
}
