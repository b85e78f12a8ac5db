//! Property tests of the pure rules: the `If-Match` parser, the key parser
//! and the three-way merge. Each property is checked on 256 generated cases;
//! a failing case is shrunk and written to `properties.proptest-regressions`
//! beside this file (kept in the repository) and tried first on every run.

use coordinator::domain::merge::three_way_merge;
use coordinator::domain::precondition::{CurrentTag, IfMatch, Precondition};
use coordinator::domain::{StorageKey, Timestamp};
use proptest::prelude::*;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet, HashSet};

// ---------------------------------------------------------------- If-Match

fn current(version: i64, micros: i64) -> CurrentTag {
    let at = chrono::DateTime::from_timestamp_micros(micros).expect("a time in range");
    CurrentTag {
        version,
        updated_at: Timestamp::from_datetime(at),
    }
}

/// Optional whitespace, as RFC 9110 allows around list members.
fn ows() -> impl Strategy<Value = String> {
    prop::collection::vec(prop_oneof![Just(' '), Just('\t')], 0..3).prop_map(|c| c.into_iter().collect())
}

/// A time between 2001 and 2100, in microseconds.
fn micros() -> impl Strategy<Value = i64> {
    1_000_000_000_000_000i64..4_102_444_800_000_000i64
}

proptest! {
    #[test]
    fn the_parser_never_panics_on_any_header_bytes(raw in prop::collection::vec(any::<u8>(), 0..64)) {
        let _ = Precondition::from_headers(Some(&raw), None);
        let _ = Precondition::from_headers(None, Some(&raw));
    }

    #[test]
    fn the_parser_never_panics_on_tag_like_text(raw in r#"[ \t,W/"*0-9a-z:.TZ-]{0,40}"#) {
        if let Ok(parsed) = IfMatch::parse(&raw) {
            // Whatever parses can be judged.
            let _ = parsed.matches(Some(current(1, 1_600_000_000_000_000)));
            let _ = parsed.newest_named_version();
        }
    }

    #[test]
    fn a_list_of_quoted_versions_matches_exactly_its_members(
        versions in prop::collection::vec(0i64..i64::MAX, 1..6),
        spaces in prop::collection::vec(ows(), 12),
        probe in 0i64..i64::MAX,
        micros in micros(),
    ) {
        let header = versions
            .iter()
            .enumerate()
            .map(|(i, v)| format!("{}\"{v}\"{}", spaces[2 * i], spaces[2 * i + 1]))
            .collect::<Vec<_>>()
            .join(",");
        let parsed = IfMatch::parse(&header).map_err(|e| TestCaseError::fail(format!("{header:?}: {e}")))?;
        for v in &versions {
            prop_assert!(parsed.matches(Some(current(*v, micros))), "{header:?} must match {v}");
        }
        prop_assert_eq!(parsed.matches(Some(current(probe, micros))), versions.contains(&probe));
        prop_assert!(!parsed.matches(None), "a list never matches a missing key");
        prop_assert_eq!(parsed.newest_named_version(), versions.iter().max().copied());
    }

    #[test]
    fn weak_tags_never_match_anything(
        versions in prop::collection::vec(0i64..1000, 1..5),
        version in 0i64..1000,
        micros in micros(),
    ) {
        let header = versions.iter().map(|v| format!("W/\"{v}\"")).collect::<Vec<_>>().join(", ");
        let parsed = IfMatch::parse(&header).map_err(|e| TestCaseError::fail(format!("{header:?}: {e}")))?;
        prop_assert!(!parsed.matches(Some(current(version, micros))));
        prop_assert_eq!(parsed.newest_named_version(), None);
    }

    #[test]
    fn star_matches_every_existing_value_and_no_missing_one(version in 0i64..i64::MAX, micros in micros(), pad in ows()) {
        let parsed = IfMatch::parse(&format!("{pad}*{pad}")).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert!(parsed.matches(Some(current(version, micros))));
        prop_assert!(!parsed.matches(None));
    }

    #[test]
    fn leading_zeros_make_a_tag_that_never_matches(version in 0i64..1_000_000, zeros in 1usize..4) {
        let header = format!("\"{}{version}\"", "0".repeat(zeros));
        let parsed = IfMatch::parse(&header).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert!(!parsed.matches(Some(current(version, 1_600_000_000_000_000))));
    }

    #[test]
    fn the_updated_at_matches_quoted_or_bare_and_no_other_time(micros in micros(), other in micros(), version in 0i64..100) {
        let tag = current(version, micros);
        let text = tag.updated_at.to_rfc3339();
        for header in [format!("\"{text}\""), text.clone()] {
            let parsed = IfMatch::parse(&header).map_err(|e| TestCaseError::fail(format!("{header:?}: {e}")))?;
            prop_assert!(parsed.matches(Some(tag)), "{header:?}");
            prop_assert_eq!(parsed.matches(Some(current(version, other))), micros == other);
        }
    }

    #[test]
    fn an_unquoted_number_or_an_unterminated_tag_is_malformed(version in 0i64..i64::MAX) {
        let malformed = [
            version.to_string(),
            format!("\"{version}"),
            format!("\"{version}\" \"{version}\""),
            format!("*, \"{version}\""),
        ];
        for header in malformed {
            prop_assert!(IfMatch::parse(&header).is_err(), "{:?}", header);
        }
    }
}

// ---------------------------------------------------------------- keys

const KEY_CHARS: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-";

proptest! {
    #[test]
    fn every_key_of_allowed_characters_is_accepted_as_it_is(key in "[A-Za-z0-9._-]{1,128}") {
        prop_assume!(key != "." && key != "..");
        let parsed = StorageKey::parse(&key).map_err(|e| TestCaseError::fail(format!("{key:?}: {e}")))?;
        prop_assert_eq!(parsed.as_str(), key.as_str());
        prop_assert_eq!(parsed.to_string(), key);
    }

    #[test]
    fn one_foreign_character_anywhere_is_refused(
        key in "[A-Za-z0-9._-]{0,127}",
        at in any::<prop::sample::Index>(),
        foreign in any::<char>(),
    ) {
        prop_assume!(!KEY_CHARS.contains(foreign));
        let mut chars: Vec<char> = key.chars().collect();
        chars.insert(at.index(chars.len() + 1), foreign);
        let key: String = chars.into_iter().collect();
        prop_assert!(StorageKey::parse(&key).is_err(), "{key:?}");
    }

    #[test]
    fn keys_longer_than_128_are_refused(key in "[A-Za-z0-9._-]{129,300}") {
        prop_assert!(StorageKey::parse(&key).is_err());
    }

    #[test]
    fn no_accepted_key_can_carry_a_path_or_an_escape(raw in any::<String>()) {
        if let Ok(key) = StorageKey::parse(&raw) {
            let text = key.as_str();
            prop_assert!(!text.contains(['/', '\\', '%', ' ', '\0', '\n', '?', '#']));
            prop_assert!(text != "." && text != "..");
            prop_assert!(!text.is_empty() && text.len() <= 128);
        }
    }
}

// ---------------------------------------------------------------- merge

/// A value of record arrays as id -> field value; ids come from a small pool
/// so that the two sides often touch the same records.
type Records = BTreeMap<u8, u8>;

/// What one side does to one record of the pool.
#[derive(Debug, Clone, Copy)]
enum Edit {
    Keep,
    /// Sets the field (adds the record when the base lacks it).
    Set(u8),
    Remove,
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![4 => Just(Edit::Keep), 2 => (0u8..3).prop_map(Edit::Set), 1 => Just(Edit::Remove)]
}

const POOL: u8 = 8;

fn records() -> impl Strategy<Value = Records> {
    prop::collection::btree_map(0..POOL, 0u8..3, 0..POOL as usize)
}

fn edits() -> impl Strategy<Value = Vec<Edit>> {
    prop::collection::vec(edit(), POOL as usize)
}

fn apply(base: &Records, edits: &[Edit]) -> Records {
    let mut out = base.clone();
    for (id, edit) in (0..POOL).zip(edits) {
        match edit {
            Edit::Keep => {}
            Edit::Set(v) => {
                out.insert(id, *v);
            }
            Edit::Remove => {
                out.remove(&id);
            }
        }
    }
    out
}

/// Ids 0-3 are strings, 4-7 numbers: both kinds of id in one array.
fn id_json(id: u8) -> Value {
    if id < 4 {
        json!(format!("r{id}"))
    } else {
        json!(id)
    }
}

fn to_json(records: &Records, reverse: bool) -> Value {
    let mut items: Vec<Value> = records
        .iter()
        .map(|(id, v)| json!({ "id": id_json(*id), "v": v }))
        .collect();
    if reverse {
        items.reverse();
    }
    Value::Array(items)
}

/// The merge result as id -> record, checking ids are unique.
fn by_id(value: &Value) -> Result<BTreeMap<String, Value>, TestCaseError> {
    let items = value
        .as_array()
        .ok_or_else(|| TestCaseError::fail(format!("not an array: {value}")))?;
    let mut out = BTreeMap::new();
    for item in items {
        let id = item["id"].to_string();
        prop_assert!(
            out.insert(id.clone(), item.clone()).is_none(),
            "id {} twice in {}",
            id,
            value
        );
    }
    Ok(out)
}

fn record(id: u8, v: u8) -> Value {
    json!({ "id": id_json(id), "v": v })
}

proptest! {
    #[test]
    fn merging_a_side_with_itself_gives_that_side(base in records(), e in edits(), rev in any::<bool>()) {
        let base_json = to_json(&base, false);
        let theirs = to_json(&apply(&base, &e), rev);
        prop_assert_eq!(three_way_merge(Some(&base_json), Some(&theirs), &theirs), Ok(theirs.clone()));
    }

    #[test]
    fn when_ours_is_the_base_the_result_is_theirs(base in records(), e in edits()) {
        let base_json = to_json(&base, false);
        let theirs = to_json(&apply(&base, &e), false);
        prop_assert_eq!(three_way_merge(Some(&base_json), Some(&theirs), &base_json), Ok(theirs));
    }

    #[test]
    fn when_theirs_is_the_base_the_result_is_ours(base in records(), e in edits()) {
        let base_json = to_json(&base, false);
        let ours = to_json(&apply(&base, &e), false);
        prop_assert_eq!(three_way_merge(Some(&base_json), Some(&base_json), &ours), Ok(ours));
    }

    #[test]
    fn a_missing_key_takes_ours_as_it_is(base in records(), e in edits()) {
        let ours = to_json(&apply(&base, &e), false);
        prop_assert_eq!(three_way_merge(Some(&to_json(&base, false)), None, &ours), Ok(ours));
    }

    /// The heart of "no silent loss": whatever one side alone added, changed
    /// or removed is in the result as that side left it, and records neither
    /// touched are kept. Conflicts arise only on records both sides touched.
    #[test]
    fn a_merge_keeps_every_one_sided_change_and_never_invents_a_conflict(
        base in records(),
        their_edits in edits(),
        our_edits in edits(),
        rev_theirs in any::<bool>(),
        rev_ours in any::<bool>(),
    ) {
        let theirs = apply(&base, &their_edits);
        let ours = apply(&base, &our_edits);
        let result = three_way_merge(
            Some(&to_json(&base, false)),
            Some(&to_json(&theirs, rev_theirs)),
            &to_json(&ours, rev_ours),
        );
        // Which ids each side really changed (an edit may restore the base).
        let changed = |side: &Records| -> BTreeSet<u8> {
            (0..POOL).filter(|id| side.get(id) != base.get(id)).collect()
        };
        let (they_changed, we_changed) = (changed(&theirs), changed(&ours));
        let diverged: BTreeSet<u8> = they_changed
            .intersection(&we_changed)
            .filter(|id| theirs.get(id) != ours.get(id))
            .copied()
            .collect();
        let merged = match result {
            Ok(merged) => merged,
            Err(conflict) => {
                prop_assert!(!diverged.is_empty(), "a conflict {:?} without diverging records", conflict);
                let ids: HashSet<String> = conflict.conflicting_ids().iter().map(Value::to_string).collect();
                let expected: HashSet<String> = diverged.iter().map(|id| id_json(*id).to_string()).collect();
                prop_assert_eq!(ids, expected);
                return Ok(());
            }
        };
        prop_assert!(diverged.is_empty(), "records {:?} diverged but the merge succeeded", diverged);
        let merged = by_id(&merged)?;
        for id in 0..POOL {
            let expected = if they_changed.contains(&id) {
                theirs.get(&id)
            } else if we_changed.contains(&id) {
                ours.get(&id)
            } else {
                base.get(&id)
            };
            let found = merged.get(&id_json(id).to_string());
            let expected = expected.map(|v| record(id, *v));
            prop_assert_eq!(found, expected.as_ref(), "record {}", id);
        }
    }

    #[test]
    fn the_merge_is_symmetric_in_what_it_keeps(base in records(), a in edits(), b in edits()) {
        let base_json = to_json(&base, false);
        let (a, b) = (to_json(&apply(&base, &a), false), to_json(&apply(&base, &b), false));
        let one = three_way_merge(Some(&base_json), Some(&a), &b);
        let other = three_way_merge(Some(&base_json), Some(&b), &a);
        match (one, other) {
            (Ok(one), Ok(other)) => prop_assert_eq!(by_id(&one)?, by_id(&other)?),
            (Err(_), Err(_)) => {}
            (one, other) => prop_assert!(false, "one way {:?}, the other {:?}", one, other),
        }
    }

    #[test]
    fn an_unknown_base_keeps_every_record_of_both_sides(theirs in records(), ours in records()) {
        let result = three_way_merge(None, Some(&to_json(&theirs, false)), &to_json(&ours, true));
        let shared_differently = theirs.iter().any(|(id, v)| ours.get(id).is_some_and(|o| o != v));
        match result {
            Ok(merged) => {
                prop_assert!(!shared_differently);
                let merged = by_id(&merged)?;
                for (id, v) in theirs.iter().chain(&ours) {
                    prop_assert_eq!(merged.get(&id_json(*id).to_string()), Some(&record(*id, *v)));
                }
                prop_assert_eq!(merged.len(), theirs.keys().chain(ours.keys()).collect::<BTreeSet<_>>().len());
            }
            Err(_) => prop_assert!(shared_differently),
        }
    }
}
