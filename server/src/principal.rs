//! Who is acting and on what: typed views of users and channels as the
//! authorization layer sees them, parsed once from storage rows.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::label::Label;
use crate::storage::entities::{channel, user};

/// What a user may do in general; refined per action by the Cedar policies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Admin,
    Leader,
    Member,
    Guest,
    Agent,
    /// A service account for agent workers: it lists the agents it runs, issues
    /// their tokens and streams the activity feed, and nothing else.
    Worker,
}

/// A person or an agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum UserKind {
    Human,
    Agent,
}

/// Who can find and join a channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Visibility {
    Public,
    Private,
    Direct,
}

macro_rules! string_enum {
    ($t:ty, $what:literal, $($v:ident => $s:literal),+) => {
        impl $t {
            /// The stored and wire form.
            pub fn as_str(self) -> &'static str {
                match self { $(Self::$v => $s),+ }
            }
        }
        impl FromStr for $t {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                match s { $($s => Ok(Self::$v),)+ other => Err(format!(concat!("unknown ", $what, " {:?}"), other)) }
            }
        }
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result { f.write_str(self.as_str()) }
        }
    };
}

string_enum!(Role, "role", Admin => "admin", Leader => "leader", Member => "member", Guest => "guest", Agent => "agent", Worker => "worker");
string_enum!(UserKind, "user kind", Human => "human", Agent => "agent");
string_enum!(Visibility, "visibility", Public => "public", Private => "private", Direct => "direct");

/// An authenticated user as policy sees them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub id: String,
    pub handle: String,
    pub display_name: String,
    pub role: Role,
    pub kind: UserKind,
    pub department: Option<String>,
    pub clearance: Label,
    pub active: bool,
}

impl Principal {
    /// The account id, typed.
    pub fn user_id(&self) -> crate::ids::UserId {
        crate::ids::UserId::from_trusted(self.id.clone())
    }
}

impl TryFrom<&user::Model> for Principal {
    type Error = String;
    fn try_from(u: &user::Model) -> Result<Self, String> {
        Ok(Self {
            id: u.id.clone(),
            handle: u.handle.clone(),
            display_name: u.display_name.clone(),
            role: u.role.parse()?,
            kind: u.kind.parse()?,
            department: u.department.clone(),
            clearance: u.clearance.parse().map_err(|e| format!("{e}"))?,
            active: u.active,
        })
    }
}

/// A channel as policy sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelAttrs {
    pub id: String,
    pub visibility: Visibility,
    pub label: Label,
    pub archived: bool,
    pub created_by: String,
}

impl TryFrom<&channel::Model> for ChannelAttrs {
    type Error = String;
    fn try_from(c: &channel::Model) -> Result<Self, String> {
        Ok(Self {
            id: c.id.clone(),
            visibility: c.visibility.parse()?,
            label: c.label.parse().map_err(|e| format!("{e}"))?,
            archived: c.archived,
            created_by: c.created_by.clone(),
        })
    }
}
