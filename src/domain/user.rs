use serde::{Deserialize, Serialize};
use std::fmt;

/// What a user may do: `user` works with storage and their own drafts,
/// `admin` also sees everyone's drafts and manages users.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    User,
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::User => "user",
            Role::Admin => "admin",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "user" => Some(Role::User),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }
}

/// A login name: 1-64 characters of `A-Z a-z 0-9 . _ @ -`, so it is safe in
/// logs, URLs and the admin pages without escaping surprises.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Username(String);

impl Username {
    pub fn parse(raw: &str) -> Result<Self, InvalidUsername> {
        let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '@' | '-');
        if raw.is_empty() || raw.len() > 64 || !raw.chars().all(allowed) {
            return Err(InvalidUsername);
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Username {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a username is 1-64 characters of A-Z a-z 0-9 . _ @ -")]
pub struct InvalidUsername;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_are_a_safe_character_set() {
        assert!(Username::parse("alice.smith@sales").is_ok());
        for bad in ["", "a b", "<script>", "ä", &"x".repeat(65)] {
            assert!(Username::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn roles_round_trip() {
        for role in [Role::User, Role::Admin] {
            assert_eq!(Role::parse(role.as_str()), Some(role));
        }
        assert_eq!(Role::parse("root"), None);
    }
}
