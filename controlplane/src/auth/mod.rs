//! Identity: passwords, signing keys, session tokens, API tokens and roles.

pub mod keys;
pub mod password;
pub mod session;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A member's role in an organization; each includes the rights of the ones below it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Reads everything of the organization.
    Viewer,
    /// Also manages clusters, backups and data tokens.
    Member,
    /// Also manages members, invitations, API tokens and SSO.
    Admin,
    /// Also changes the tier and can remove admins; there is always at least one.
    Owner,
}

impl Role {
    /// The role as stored.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Member => "member",
            Role::Admin => "admin",
            Role::Owner => "owner",
        }
    }

    /// Parses a stored or requested role.
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "viewer" => Some(Role::Viewer),
            "member" => Some(Role::Member),
            "admin" => Some(Role::Admin),
            "owner" => Some(Role::Owner),
            _ => None,
        }
    }
}
