//! Conditional-write headers, read as RFC 9110 section 13.1 reads them.
//!
//! Our entity tags are the key's version in quotes (`"7"`). For clients that
//! track a key by time rather than by version, the exact `updatedAt` the
//! server returned is accepted too, quoted or bare.

use super::Timestamp;

/// What the client made its write conditional on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Precondition {
    /// No `If-Match` and no `If-None-Match`: only creating a new key is safe.
    None,
    IfMatch(IfMatch),
    /// `If-None-Match: *`: create only.
    IfNoneMatchAny,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IfMatch {
    /// `*`: any existing value.
    Any,
    /// A list; it matches when any member is current.
    Tags(Vec<EntityTag>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntityTag {
    /// `"7"`
    Version(i64),
    /// `"2026-12-03T16:32:41.123456Z"` or the same unquoted.
    UpdatedAt(Timestamp),
    /// `W/"7"`: syntactically fine, but a weak tag never satisfies If-Match.
    Weak,
    /// A well-formed strong tag this server never issued; it never matches.
    Unknown,
}

/// The state a precondition is judged against; `None` when the key was never written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CurrentTag {
    pub version: i64,
    pub updated_at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidPrecondition {
    #[error("If-Match is not a valid entity-tag list: {0}")]
    IfMatch(&'static str),
    #[error("If-None-Match supports only `*` on writes")]
    IfNoneMatch,
}

impl Precondition {
    /// Reads the two headers; either may be absent. If-Match wins when both
    /// are sent, as RFC 9110 evaluates it first.
    pub fn from_headers(if_match: Option<&[u8]>, if_none_match: Option<&[u8]>) -> Result<Self, InvalidPrecondition> {
        if let Some(raw) = if_match {
            let text = std::str::from_utf8(raw).map_err(|_| InvalidPrecondition::IfMatch("not valid UTF-8"))?;
            return IfMatch::parse(text).map(Precondition::IfMatch);
        }
        match if_none_match {
            None => Ok(Precondition::None),
            Some(raw) if raw.trim_ascii() == b"*" => Ok(Precondition::IfNoneMatchAny),
            Some(_) => Err(InvalidPrecondition::IfNoneMatch),
        }
    }

    pub fn is_conditional(&self) -> bool {
        !matches!(self, Precondition::None)
    }
}

impl IfMatch {
    pub fn parse(raw: &str) -> Result<Self, InvalidPrecondition> {
        let err = InvalidPrecondition::IfMatch;
        let trimmed = raw.trim_matches([' ', '\t']);
        if trimmed == "*" {
            return Ok(IfMatch::Any);
        }
        let mut tags = Vec::new();
        let mut rest = trimmed;
        loop {
            rest = rest.trim_start_matches([' ', '\t', ',']);
            if rest.is_empty() {
                break;
            }
            let (tag, after) = if let Some(quoted) = rest.strip_prefix("W/") {
                let (_, after) = split_quoted(quoted).ok_or(err("unterminated or invalid weak tag"))?;
                (EntityTag::Weak, after)
            } else if rest.starts_with('"') {
                let (opaque, after) = split_quoted(rest).ok_or(err("unterminated or invalid tag"))?;
                (strong_tag(opaque), after)
            } else {
                let end = rest.find(',').unwrap_or(rest.len());
                let bare = rest[..end].trim_matches([' ', '\t']);
                if bare == "*" {
                    return Err(err("`*` must stand alone"));
                }
                let at = Timestamp::parse(bare).ok_or(err("expected a quoted tag or an RFC 3339 time"))?;
                (EntityTag::UpdatedAt(at), &rest[end..])
            };
            tags.push(tag);
            rest = after.trim_start_matches([' ', '\t']);
            if !(rest.is_empty() || rest.starts_with(',')) {
                return Err(err("entries must be separated by commas"));
            }
        }
        if tags.is_empty() {
            return Err(err("empty"));
        }
        Ok(IfMatch::Tags(tags))
    }

    /// RFC 9110 13.1.1: `*` matches any current value, a list matches when
    /// any strong member equals the current tag.
    pub fn matches(&self, current: Option<CurrentTag>) -> bool {
        let Some(current) = current else {
            return false;
        };
        match self {
            IfMatch::Any => true,
            IfMatch::Tags(tags) => tags.iter().any(|tag| match tag {
                EntityTag::Version(v) => *v == current.version,
                EntityTag::UpdatedAt(at) => *at == current.updated_at,
                EntityTag::Weak | EntityTag::Unknown => false,
            }),
        }
    }

    /// Whether a value newer than `current` could satisfy this list where
    /// `current` does not. Versions and update times only grow, so a tag at
    /// or below the current one is stale for good: only a newer tag (or `*`
    /// against a key believed absent) is worth reading the database again for.
    pub fn could_match_newer_than(&self, current: Option<CurrentTag>) -> bool {
        match (self, current) {
            (IfMatch::Any, current) => current.is_none(),
            (IfMatch::Tags(tags), current) => tags.iter().any(|tag| match (tag, current) {
                (EntityTag::Version(_) | EntityTag::UpdatedAt(_), None) => true,
                (EntityTag::Version(v), Some(current)) => *v > current.version,
                (EntityTag::UpdatedAt(at), Some(current)) => *at > current.updated_at,
                (EntityTag::Weak | EntityTag::Unknown, _) => false,
            }),
        }
    }

    /// The newest version the client names: what its payload was based on.
    pub fn newest_named_version(&self) -> Option<i64> {
        self.tags()
            .filter_map(|tag| match tag {
                EntityTag::Version(v) => Some(*v),
                _ => None,
            })
            .max()
    }

    /// The newest `updatedAt` the client names, for clients that version by time.
    pub fn newest_named_time(&self) -> Option<Timestamp> {
        self.tags()
            .filter_map(|tag| match tag {
                EntityTag::UpdatedAt(at) => Some(*at),
                _ => None,
            })
            .max()
    }

    fn tags(&self) -> impl Iterator<Item = &EntityTag> {
        match self {
            IfMatch::Any => [].iter(),
            IfMatch::Tags(tags) => tags.iter(),
        }
    }
}

/// Splits `"opaque"rest` into `opaque` and `rest`, checking etagc
/// (`%x21 / %x23-7E / obs-text`; a `&str` already rules out stray bytes).
fn split_quoted(input: &str) -> Option<(&str, &str)> {
    let body = input.strip_prefix('"')?;
    let end = body.find('"')?;
    let opaque = &body[..end];
    let etagc = |c: char| c == '\x21' || ('\x23'..='\x7e').contains(&c) || c >= '\u{80}';
    opaque.chars().all(etagc).then(|| (opaque, &body[end + 1..]))
}

fn strong_tag(opaque: &str) -> EntityTag {
    // Strong comparison is character-wise: "07" is not "7", so only the
    // canonical spelling of a number is a version.
    let canonical_number =
        !opaque.is_empty() && opaque.bytes().all(|b| b.is_ascii_digit()) && (opaque == "0" || !opaque.starts_with('0'));
    if canonical_number {
        return opaque.parse().map(EntityTag::Version).unwrap_or(EntityTag::Unknown);
    }
    Timestamp::parse(opaque)
        .map(EntityTag::UpdatedAt)
        .unwrap_or(EntityTag::Unknown)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn current(version: i64) -> Option<CurrentTag> {
        Some(CurrentTag {
            version,
            updated_at: Timestamp::parse("2026-12-03T10:00:00.000001Z").unwrap(),
        })
    }

    fn parse(raw: &str) -> IfMatch {
        IfMatch::parse(raw).unwrap_or_else(|e| panic!("{raw:?}: {e}"))
    }

    #[test]
    fn a_quoted_version_matches_only_the_current_version() {
        assert!(parse("\"3\"").matches(current(3)));
        assert!(!parse("\"2\"").matches(current(3)));
    }

    #[test]
    fn a_list_matches_when_any_member_is_current() {
        assert!(parse("\"1\", \"3\",\"9\"").matches(current(3)));
        assert!(!parse("\"1\", \"2\"").matches(current(3)));
    }

    #[test]
    fn only_a_tag_newer_than_the_cached_one_could_match_after_a_reload() {
        assert!(!parse("\"2\"").could_match_newer_than(current(3)));
        assert!(!parse("\"3\"").could_match_newer_than(current(3)));
        assert!(parse("\"1\", \"4\"").could_match_newer_than(current(3)));
        assert!(parse("\"2026-12-03T10:00:00.000002Z\"").could_match_newer_than(current(3)));
        assert!(!parse("\"2026-12-03T10:00:00.000001Z\"").could_match_newer_than(current(3)));
        assert!(!parse("W/\"9\"").could_match_newer_than(current(3)));
        assert!(!parse("W/\"9\"").could_match_newer_than(None));
        assert!(parse("\"1\"").could_match_newer_than(None));
        assert!(parse("*").could_match_newer_than(None));
        assert!(!parse("*").could_match_newer_than(current(3)));
    }

    #[test]
    fn star_matches_any_existing_value_but_not_a_missing_key() {
        assert!(parse(" * ").matches(current(42)));
        assert!(!parse("*").matches(None));
    }

    #[test]
    fn weak_tags_never_match() {
        assert!(!parse("W/\"3\"").matches(current(3)));
        assert!(parse("W/\"3\", \"3\"").matches(current(3)));
    }

    #[test]
    fn the_updated_at_string_matches_quoted_or_bare() {
        assert!(parse("\"2026-12-03T10:00:00.000001Z\"").matches(current(3)));
        assert!(parse("2026-12-03T10:00:00.000001Z").matches(current(3)));
        assert!(!parse("2026-12-03T10:00:00.000002Z").matches(current(3)));
    }

    #[test]
    fn non_canonical_numbers_and_foreign_tags_are_valid_but_never_match() {
        assert!(!parse("\"03\"").matches(current(3)));
        assert!(!parse("\"abc\"").matches(current(3)));
        assert!(!parse("\"99999999999999999999999\"").matches(current(3)));
    }

    #[test]
    fn malformed_values_are_rejected() {
        for raw in [
            "",
            " ",
            ",",
            "3",
            "\"3",
            "\"3\" \"4\"",
            "*, \"3\"",
            "W/3",
            "W/\"3",
            "\"a b\"",
            "\"3\"x",
        ] {
            assert!(IfMatch::parse(raw).is_err(), "{raw:?} should be malformed");
        }
    }

    #[test]
    fn the_newest_named_version_is_the_base_of_a_draft() {
        assert_eq!(parse("\"2\", \"7\", W/\"9\"").newest_named_version(), Some(7));
        assert_eq!(parse("*").newest_named_version(), None);
    }

    #[test]
    fn headers_combine_as_rfc_9110_says() {
        assert_eq!(Precondition::from_headers(None, None), Ok(Precondition::None));
        assert_eq!(
            Precondition::from_headers(None, Some(b"*")),
            Ok(Precondition::IfNoneMatchAny)
        );
        assert!(Precondition::from_headers(None, Some(b"\"3\"")).is_err());
        assert!(matches!(
            Precondition::from_headers(Some(b"\"3\""), Some(b"*")),
            Ok(Precondition::IfMatch(_))
        ));
        assert!(Precondition::from_headers(Some(b"\xff"), None).is_err());
    }
}
