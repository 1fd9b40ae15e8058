//! Who holds what of a login in a fleet, as the `claunch.role` label says.

/// Who holds what of a login. Refresh tokens rotate on use, so exactly one container per
/// login may hold one (the leader); the others get the access token alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Role {
    Leader,
    Follower,
    /// Every container holds the same non-rotating credential (a setup token, an API key).
    #[default]
    Shared,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Leader => "leader",
            Self::Follower => "follower",
            Self::Shared => "shared",
        }
    }

    pub fn parse(s: &str) -> Self {
        match s {
            "leader" => Self::Leader,
            "follower" => Self::Follower,
            _ => Self::Shared,
        }
    }
}
