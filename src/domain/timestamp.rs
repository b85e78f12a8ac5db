use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};
use std::fmt;

/// A point in time at microsecond precision, the finest that both SQLite's
/// text timestamps and PostgreSQL's `timestamptz` keep. Truncating here means
/// the value held in memory always equals the value read back from the
/// database, so an `updatedAt` string a client echoes in `If-Match` compares
/// equal after a restart too.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(DateTime<Utc>);

impl Timestamp {
    pub fn now() -> Self {
        Self::from_datetime(Utc::now())
    }

    pub fn from_datetime(at: DateTime<Utc>) -> Self {
        let micros = at.timestamp_micros();
        Self(DateTime::from_timestamp_micros(micros).expect("a truncated valid time stays valid"))
    }

    /// The next `updatedAt` of a key: now, or one microsecond after the
    /// previous one when the clock has not moved (or moved back), so that
    /// `updatedAt` strictly increases per key.
    pub fn next_after(previous: Option<Timestamp>) -> Self {
        let now = Self::now();
        match previous {
            Some(prev) if now <= prev => Self(prev.0 + TimeDelta::microseconds(1)),
            _ => now,
        }
    }

    /// Reads an RFC 3339 string in any offset.
    pub fn parse(raw: &str) -> Option<Self> {
        DateTime::parse_from_rfc3339(raw)
            .ok()
            .map(|at| Self::from_datetime(at.with_timezone(&Utc)))
    }

    pub fn as_datetime(&self) -> DateTime<Utc> {
        self.0
    }

    /// RFC 3339 in UTC with exactly six fractional digits: fixed width, so the
    /// strings sort in time order.
    pub fn to_rfc3339(&self) -> String {
        self.0.to_rfc3339_opts(SecondsFormat::Micros, true)
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}

impl serde::Serialize for Timestamp {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_rfc3339())
    }
}

impl<'de> serde::Deserialize<'de> for Timestamp {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Timestamp::parse(&text).ok_or_else(|| serde::de::Error::custom("not an RFC 3339 time"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_after_strictly_increases_even_within_one_microsecond() {
        let mut previous = Timestamp::now();
        for _ in 0..1000 {
            let next = Timestamp::next_after(Some(previous));
            assert!(next > previous);
            previous = next;
        }
    }

    #[test]
    fn next_after_a_future_time_still_moves_forward() {
        let future = Timestamp::from_datetime(Utc::now() + TimeDelta::hours(1));
        assert!(Timestamp::next_after(Some(future)) > future);
    }

    #[test]
    fn formats_with_six_digits_and_parses_back() {
        let at = Timestamp::parse("2026-12-03T16:32:41.5+01:00").unwrap();
        assert_eq!(at.to_rfc3339(), "2026-12-03T15:32:41.500000Z");
        assert_eq!(Timestamp::parse(&at.to_rfc3339()), Some(at));
    }

    #[test]
    fn truncates_to_microseconds() {
        let at = Timestamp::parse("2026-12-03T16:32:41.123456789Z").unwrap();
        assert_eq!(at.to_rfc3339(), "2026-12-03T16:32:41.123456Z");
    }
}
