//! Closed sets of named choices: roles, kinds of account, channel
//! visibility, brains, insight kinds and the settings that pick one of a few
//! implementations. Each is written in lower case in storage, JSON and
//! configuration, and parsed in one place, so a misspelt value is refused
//! with the list of valid ones instead of being compared as a string.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Why a string is not one of a choice's values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} {value:?}: use {expected}")]
pub struct ChoiceError {
    /// What was being chosen (`role`, `brain`, ...).
    pub what: &'static str,
    /// The value given.
    pub value: String,
    /// The valid values, comma-separated.
    pub expected: String,
}

macro_rules! choice {
    ($(#[$doc:meta])* $name:ident, $what:literal, $($(#[$vdoc:meta])* $v:ident => $s:literal),+ $(,)?) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
        #[serde(rename_all = "lowercase")]
        pub enum $name {
            $($(#[$vdoc])* $v),+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$v),+];

            /// The stored, wire and configuration form.
            pub fn as_str(self) -> &'static str {
                match self { $(Self::$v => $s),+ }
            }
        }

        impl FromStr for $name {
            type Err = ChoiceError;
            fn from_str(s: &str) -> Result<Self, ChoiceError> {
                match s {
                    $($s => Ok(Self::$v),)+
                    other => Err(ChoiceError {
                        what: $what,
                        value: other.to_string(),
                        expected: Self::ALL
                            .iter()
                            .map(|v| v.as_str())
                            .collect::<Vec<_>>()
                            .join(", "),
                    }),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.as_str() == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.as_str() == *other
            }
        }
    };
}

choice!(
    /// What a user may do in general; refined per action by the policies.
    Role, "role",
    Admin => "admin",
    Leader => "leader",
    Member => "member",
    Guest => "guest",
    Agent => "agent",
    /// A service account for agent workers: it lists the agents it runs,
    /// issues their tokens and streams the activity feed, and nothing else.
    Worker => "worker",
);

choice!(
    /// A person or an agent.
    UserKind, "user kind",
    Human => "human",
    Agent => "agent",
);

choice!(
    /// Who can find and join a channel.
    Visibility, "visibility",
    Public => "public",
    Private => "private",
    Direct => "direct",
);

choice!(
    /// What writes an agent's posts.
    Brain, "brain",
    /// Cited sentences from the agent's own documents, no model.
    Extractive => "extractive",
    /// A small GGUF model run in process.
    Local => "local",
    /// An OpenAI-compatible chat endpoint.
    Openai => "openai",
);

choice!(
    /// What a digest's insight is.
    InsightKind, "insight kind",
    Risk => "risk",
    Opportunity => "opportunity",
);

choice!(
    /// Where text embeddings come from.
    EmbedderKind, "embedder",
    /// all-MiniLM-L6-v2 in process.
    Local => "local",
    /// An OpenAI-compatible embeddings endpoint.
    Openai => "openai",
);

choice!(
    /// Where chunk vectors are kept.
    VectorStoreKind, "vector store",
    /// qdrant-edge in process, under the data directory.
    Edge => "edge",
    /// A Qdrant server.
    Qdrant => "qdrant",
);

choice!(
    /// How the insights job judges a candidate when no model is configured.
    JudgeKind, "judge",
    /// Word cues as weak priors.
    Words => "words",
    /// Zero-shot by hypotheses embedded with the sentence model.
    Meaning => "meaning",
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn choices_round_trip_and_name_the_valid_values() {
        for b in Brain::ALL {
            assert_eq!(b.as_str().parse::<Brain>().unwrap(), *b);
            let json = serde_json::to_string(b).unwrap();
            assert_eq!(json, format!("\"{b}\""));
            assert_eq!(serde_json::from_str::<Brain>(&json).unwrap(), *b);
        }
        let e = "gpt".parse::<Brain>().unwrap_err();
        assert_eq!(
            e.to_string(),
            "unknown brain \"gpt\": use extractive, local, openai"
        );
        assert!(serde_json::from_str::<Role>("\"Admin\"").is_err());
        assert_eq!(Visibility::Direct, "direct");
    }
}
