//! Who is acting and on what: typed views of users and channels as the
//! authorization layer sees them, parsed once from storage rows.

use crate::label::Label;
use crate::storage::entities::{channel, user};

pub use warroom_types::choice::{Role, UserKind, Visibility};

/// An authenticated user as policy sees them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub id: crate::ids::UserId,
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
        self.id.clone()
    }
}

impl TryFrom<&user::Model> for Principal {
    type Error = String;
    fn try_from(u: &user::Model) -> Result<Self, String> {
        Ok(Self {
            id: crate::ids::UserId::from_trusted(u.id.as_str()),
            handle: u.handle.clone(),
            display_name: u.display_name.clone(),
            role: u
                .role
                .parse()
                .map_err(|e: warroom_types::ChoiceError| e.to_string())?,
            kind: u
                .kind
                .parse()
                .map_err(|e: warroom_types::ChoiceError| e.to_string())?,
            department: u.department.clone(),
            clearance: u.clearance.clone(),
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
            visibility: c
                .visibility
                .parse()
                .map_err(|e: warroom_types::ChoiceError| e.to_string())?,
            label: c.label.clone(),
            archived: c.archived,
            created_by: c.created_by.clone(),
        })
    }
}
