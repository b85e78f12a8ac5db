//! Three-way merge of record arrays by `id`: how a draft is re-applied to a
//! value that others changed since the draft's base.
//!
//! `base` is the version the draft was based on, `theirs` the current value,
//! `ours` the draft. A record only one side changed is taken from that side; a
//! record both sides changed differently is a conflict. Nothing another user
//! committed is ever dropped or overwritten silently.

use serde_json::Value;
use std::collections::{HashMap, HashSet};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MergeConflict {
    /// Both sides changed (or one changed and one removed) these records.
    RecordsDiverged { ids: Vec<Value> },
    /// The values are not arrays of objects with unique ids, and both sides changed them.
    NotMergeable,
}

impl MergeConflict {
    pub fn code(&self) -> &'static str {
        match self {
            MergeConflict::RecordsDiverged { .. } => "merge_conflict",
            MergeConflict::NotMergeable => "not_mergeable",
        }
    }

    pub fn conflicting_ids(&self) -> &[Value] {
        match self {
            MergeConflict::RecordsDiverged { ids } => ids,
            MergeConflict::NotMergeable => &[],
        }
    }

    pub fn message(&self) -> String {
        match self {
            MergeConflict::RecordsDiverged { ids } => {
                let ids: Vec<String> = ids.iter().map(Value::to_string).collect();
                format!(
                    "records changed on both sides since the draft's base: {}",
                    ids.join(", ")
                )
            }
            MergeConflict::NotMergeable => {
                "both sides changed a value that is not an array of records with unique ids".into()
            }
        }
    }
}

/// Merges `ours` into `theirs`. `base` is `None` when the draft's base version
/// is unknown; it then counts as an empty array, which keeps every record of
/// both sides and flags any record they both hold differently.
/// `theirs` is `None` when the key does not exist: nothing to protect.
pub fn three_way_merge(base: Option<&Value>, theirs: Option<&Value>, ours: &Value) -> Result<Value, MergeConflict> {
    let Some(theirs) = theirs else {
        return Ok(ours.clone());
    };
    if ours == theirs {
        return Ok(theirs.clone());
    }
    let empty = Value::Array(Vec::new());
    let base = match base {
        Some(base) => base,
        None if ours.is_array() && theirs.is_array() => &empty,
        None => return Err(MergeConflict::NotMergeable),
    };
    if theirs == base {
        return Ok(ours.clone());
    }
    if ours == base {
        return Ok(theirs.clone());
    }
    let (Some(base), Some(theirs_records), Some(ours_records)) =
        (Records::index(base), Records::index(theirs), Records::index(ours))
    else {
        return Err(MergeConflict::NotMergeable);
    };

    let mut merged = Vec::new();
    let mut conflicts = Vec::new();
    for (id, their_record) in &theirs_records.ordered {
        let id_key = id_key(id);
        let base_record = base.get(&id_key);
        let our_record = ours_records.get(&id_key);
        let pick = match (base_record, our_record) {
            // Both hold the same record (added alike, or neither side changed it).
            (_, Some(ours)) if ours == *their_record => Some(*their_record),
            // Only we changed it.
            (Some(base), Some(ours)) if base == *their_record => Some(ours),
            // Only they changed it.
            (Some(base), Some(ours)) if base == ours => Some(*their_record),
            // We removed it and they left it as it was.
            (Some(base), None) if base == *their_record => None,
            // They added it.
            (None, None) => Some(*their_record),
            _ => {
                conflicts.push((*id).clone());
                None
            }
        };
        merged.extend(pick.cloned());
    }
    for (id, our_record) in &ours_records.ordered {
        let id_key = id_key(id);
        if theirs_records.get(&id_key).is_some() {
            continue;
        }
        match base.get(&id_key) {
            None => merged.push((*our_record).clone()),
            // They removed a record we left as it was: stays removed.
            Some(base_record) if base_record == *our_record => {}
            Some(_) => conflicts.push((*id).clone()),
        }
    }
    if conflicts.is_empty() {
        Ok(Value::Array(merged))
    } else {
        Err(MergeConflict::RecordsDiverged { ids: conflicts })
    }
}

/// What a draft changes compared with a value: for the draft detail view.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct RecordDiff {
    pub added: Vec<Value>,
    pub changed: Vec<Value>,
    pub removed: Vec<Value>,
}

/// Record ids `after` adds, changes and removes relative to `before`; `None`
/// when either is not an array of records with unique ids.
pub fn diff_records(before: &Value, after: &Value) -> Option<RecordDiff> {
    let before = Records::index(before)?;
    let after = Records::index(after)?;
    let mut diff = RecordDiff::default();
    for (id, record) in &after.ordered {
        match before.get(&id_key(id)) {
            None => diff.added.push((*id).clone()),
            Some(old) if old != *record => diff.changed.push((*id).clone()),
            Some(_) => {}
        }
    }
    for (id, _) in &before.ordered {
        if after.get(&id_key(id)).is_none() {
            diff.removed.push((*id).clone());
        }
    }
    Some(diff)
}

/// What submitting a draft would do to the current value: when it merges,
/// the records it would add, change and remove; when it does not, the
/// draft's own changes (against its base) and the ids in conflict.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SubmitPreview {
    pub mergeable: bool,
    #[serde(flatten)]
    pub diff: RecordDiff,
    pub conflicting_ids: Vec<Value>,
}

pub fn preview_submit(base: Option<&Value>, theirs: Option<&Value>, ours: &Value) -> SubmitPreview {
    let empty = Value::Array(Vec::new());
    match three_way_merge(base, theirs, ours) {
        Ok(merged) => SubmitPreview {
            mergeable: true,
            diff: diff_records(theirs.unwrap_or(&empty), &merged).unwrap_or_default(),
            conflicting_ids: Vec::new(),
        },
        Err(conflict) => SubmitPreview {
            mergeable: false,
            diff: diff_records(base.unwrap_or(&empty), ours).unwrap_or_default(),
            conflicting_ids: conflict.conflicting_ids().to_vec(),
        },
    }
}

/// An array of objects, each with a unique string or number `id`.
struct Records<'a> {
    ordered: Vec<(&'a Value, &'a Value)>,
    by_id: HashMap<String, usize>,
}

impl<'a> Records<'a> {
    fn index(value: &'a Value) -> Option<Self> {
        let items = value.as_array()?;
        let mut ordered = Vec::with_capacity(items.len());
        let mut by_id = HashMap::with_capacity(items.len());
        let mut seen = HashSet::with_capacity(items.len());
        for item in items {
            let id = item.as_object()?.get("id")?;
            if !(id.is_string() || id.is_number()) {
                return None;
            }
            let key = id_key(id);
            if !seen.insert(key.clone()) {
                return None;
            }
            by_id.insert(key, ordered.len());
            ordered.push((id, item));
        }
        Some(Self { ordered, by_id })
    }

    fn get(&self, id_key: &str) -> Option<&'a Value> {
        self.by_id.get(id_key).map(|&i| self.ordered[i].1)
    }
}

/// `"7"` and `7` are different ids, so the key keeps the JSON spelling.
fn id_key(id: &Value) -> String {
    id.to_string()
}

/// Number of elements when the value is an array: the runbook's
/// `incomingCount` / `currentCount`.
pub fn record_count(value: &Value) -> Option<usize> {
    value.as_array().map(Vec::len)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rec(id: &str, notes: &str) -> Value {
        json!({ "id": id, "notes": notes })
    }

    #[test]
    fn two_users_appending_different_records_both_keep_theirs() {
        let base = json!([rec("a", "1")]);
        let theirs = json!([rec("a", "1"), rec("b", "theirs")]);
        let ours = json!([rec("a", "1"), rec("c", "ours")]);
        let merged = three_way_merge(Some(&base), Some(&theirs), &ours).unwrap();
        assert_eq!(merged, json!([rec("a", "1"), rec("b", "theirs"), rec("c", "ours")]));
    }

    #[test]
    fn both_editing_the_same_record_differently_conflicts_on_that_id() {
        let base = json!([rec("a", "1"), rec("b", "1")]);
        let theirs = json!([rec("a", "theirs"), rec("b", "1")]);
        let ours = json!([rec("a", "ours"), rec("b", "1")]);
        let err = three_way_merge(Some(&base), Some(&theirs), &ours).unwrap_err();
        assert_eq!(err, MergeConflict::RecordsDiverged { ids: vec![json!("a")] });
    }

    #[test]
    fn a_change_on_one_side_only_is_taken_from_that_side() {
        let base = json!([rec("a", "1"), rec("b", "1")]);
        let theirs = json!([rec("a", "theirs"), rec("b", "1"), rec("t", "new")]);
        let ours = json!([rec("a", "1"), rec("b", "ours")]);
        let merged = three_way_merge(Some(&base), Some(&theirs), &ours).unwrap();
        assert_eq!(merged, json!([rec("a", "theirs"), rec("b", "ours"), rec("t", "new")]));
    }

    #[test]
    fn removals_apply_unless_the_other_side_changed_the_record() {
        let base = json!([rec("a", "1"), rec("b", "1")]);
        // We remove a (they left it), they remove b (we left it).
        let theirs = json!([rec("a", "1")]);
        let ours = json!([rec("b", "1")]);
        assert_eq!(three_way_merge(Some(&base), Some(&theirs), &ours).unwrap(), json!([]));
        // We remove a, they changed it: conflict.
        let theirs = json!([rec("a", "changed"), rec("b", "1")]);
        let ours = json!([rec("b", "1"), rec("c", "new")]);
        let err = three_way_merge(Some(&base), Some(&theirs), &ours).unwrap_err();
        assert_eq!(err.conflicting_ids(), &[json!("a")]);
    }

    #[test]
    fn an_unknown_base_keeps_every_record_of_both_sides() {
        let theirs = json!([rec("a", "1")]);
        let ours = json!([rec("b", "2")]);
        let merged = three_way_merge(None, Some(&theirs), &ours).unwrap();
        assert_eq!(merged, json!([rec("a", "1"), rec("b", "2")]));
        let ours = json!([rec("a", "different")]);
        assert!(three_way_merge(None, Some(&theirs), &ours).is_err());
    }

    #[test]
    fn values_that_are_not_records_merge_only_when_one_side_is_unchanged() {
        let base = json!({"n": 1});
        assert_eq!(
            three_way_merge(Some(&base), Some(&base), &json!({"n": 2})).unwrap(),
            json!({"n": 2})
        );
        assert_eq!(
            three_way_merge(Some(&base), Some(&json!({"n": 3})), &base).unwrap(),
            json!({"n": 3})
        );
        let err = three_way_merge(Some(&base), Some(&json!({"n": 3})), &json!({"n": 2})).unwrap_err();
        assert_eq!(err, MergeConflict::NotMergeable);
    }

    #[test]
    fn duplicate_or_missing_ids_are_not_mergeable() {
        let base = json!([]);
        let theirs = json!([rec("a", "1")]);
        assert_eq!(
            three_way_merge(Some(&base), Some(&theirs), &json!([rec("b", "1"), rec("b", "2")])),
            Err(MergeConflict::NotMergeable)
        );
        assert_eq!(
            three_way_merge(Some(&base), Some(&theirs), &json!([{"notes": "no id"}])),
            Err(MergeConflict::NotMergeable)
        );
    }

    #[test]
    fn a_missing_key_takes_the_draft_as_it_is() {
        let ours = json!([rec("a", "1")]);
        assert_eq!(three_way_merge(None, None, &ours).unwrap(), ours);
    }

    #[test]
    fn string_and_number_ids_are_distinct() {
        let merged = three_way_merge(Some(&json!([])), Some(&json!([{"id": 1}])), &json!([{"id": "1"}])).unwrap();
        assert_eq!(merged, json!([{"id": 1}, {"id": "1"}]));
    }

    #[test]
    fn a_preview_shows_what_a_submit_would_do_to_the_current_value() {
        let base = json!([rec("a", "1")]);
        let theirs = json!([rec("a", "1"), rec("t", "theirs")]);
        let ours = json!([rec("a", "2"), rec("o", "ours")]);
        let preview = preview_submit(Some(&base), Some(&theirs), &ours);
        assert!(preview.mergeable);
        assert_eq!(preview.diff.added, vec![json!("o")]);
        assert_eq!(preview.diff.changed, vec![json!("a")]);
        assert!(
            preview.diff.removed.is_empty(),
            "their record t must not show as removed"
        );

        let theirs = json!([rec("a", "3")]);
        let preview = preview_submit(Some(&base), Some(&theirs), &ours);
        assert!(!preview.mergeable);
        assert_eq!(preview.conflicting_ids, vec![json!("a")]);
        assert_eq!(preview.diff.added, vec![json!("o")]);
    }

    #[test]
    fn diff_lists_added_changed_and_removed_ids() {
        let before = json!([rec("a", "1"), rec("b", "1")]);
        let after = json!([rec("a", "2"), rec("c", "1")]);
        let diff = diff_records(&before, &after).unwrap();
        assert_eq!(diff.added, vec![json!("c")]);
        assert_eq!(diff.changed, vec![json!("a")]);
        assert_eq!(diff.removed, vec![json!("b")]);
    }
}
