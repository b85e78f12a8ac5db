use std::fmt;

/// The name of a storage slot, validated at the edge.
///
/// 1 to 128 characters of `A-Z a-z 0-9 . _ -`. The set excludes `/`, `%` and
/// whitespace, so a key can never smuggle a path or an encoding trick into a
/// route or a log line.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StorageKey(String);

pub const MAX_KEY_LEN: usize = 128;

impl StorageKey {
    pub fn parse(raw: &str) -> Result<Self, InvalidKey> {
        let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
        if raw.is_empty() || raw.len() > MAX_KEY_LEN || !raw.chars().all(allowed) {
            return Err(InvalidKey);
        }
        // `.` and `..` are legal characters but would read as path segments.
        if raw == "." || raw == ".." {
            return Err(InvalidKey);
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for StorageKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a key is 1-128 characters of A-Z a-z 0-9 . _ -")]
pub struct InvalidKey;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_runbook_keys() {
        for key in ["activities", "internalActivities", "accounts", "a.b_c-9"] {
            assert_eq!(StorageKey::parse(key).unwrap().as_str(), key);
        }
    }

    #[test]
    fn accepts_exactly_128_characters() {
        assert!(StorageKey::parse(&"k".repeat(128)).is_ok());
        assert_eq!(StorageKey::parse(&"k".repeat(129)), Err(InvalidKey));
    }

    #[test]
    fn rejects_empty_path_tricks_and_foreign_characters() {
        for key in ["", ".", "..", "a/b", "a%2Fb", "a b", "ключ", "a\0b", "a\nb", "a:b"] {
            assert_eq!(StorageKey::parse(key), Err(InvalidKey), "{key:?}");
        }
    }
}
