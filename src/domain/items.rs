//! Record-level changes to an array value: append one record, replace some
//! fields of one, remove one. They are applied by the key's actor to the
//! current value, so they cannot go stale the way a whole-value PUT can.

use serde_json::{Map, Value};

/// One change a write makes to a key's value.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// Replace the whole value (`PUT /api/storage/{key}`).
    Replace(Value),
    /// Append one record; its `id` is set by the caller when missing.
    Append(Value),
    /// Replace these fields of the record with this id.
    Patch { id: String, fields: Map<String, Value> },
    /// Remove the record with this id.
    Remove { id: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ItemError {
    #[error("a record with this id already exists")]
    DuplicateId,
    #[error("no record with this id")]
    RecordNotFound,
    #[error("the key's value is not an array of records")]
    NotAnArray,
}

impl ItemError {
    pub fn code(self) -> &'static str {
        match self {
            ItemError::DuplicateId => "duplicate_id",
            ItemError::RecordNotFound => "record_not_found",
            ItemError::NotAnArray => "not_an_array",
        }
    }
}

impl Change {
    /// The new value this change makes of `current` (`None`: the key does
    /// not exist yet).
    pub fn apply(&self, current: Option<&Value>) -> Result<Value, ItemError> {
        match self {
            Change::Replace(value) => Ok(value.clone()),
            Change::Append(record) => {
                let mut records = match current {
                    None => Vec::new(),
                    Some(current) => current.as_array().ok_or(ItemError::NotAnArray)?.clone(),
                };
                let id = record.get("id").ok_or(ItemError::NotAnArray)?;
                if records.iter().any(|r| r.get("id") == Some(id)) {
                    return Err(ItemError::DuplicateId);
                }
                records.push(record.clone());
                Ok(Value::Array(records))
            }
            Change::Patch { id, fields } => {
                let mut records = existing_records(current)?;
                let record = records
                    .iter_mut()
                    .find(|r| has_id(r, id))
                    .and_then(Value::as_object_mut)
                    .ok_or(ItemError::RecordNotFound)?;
                for (field, value) in fields {
                    record.insert(field.clone(), value.clone());
                }
                Ok(Value::Array(records))
            }
            Change::Remove { id } => {
                let mut records = existing_records(current)?;
                let before = records.len();
                records.retain(|r| !has_id(r, id));
                if records.len() == before {
                    return Err(ItemError::RecordNotFound);
                }
                Ok(Value::Array(records))
            }
        }
    }

    /// What to keep as a draft's payload when the change could not be
    /// applied to any known value: the whole value, or the one record as an
    /// array (a later submit then adds it to whatever is current). A removal
    /// keeps an empty array: submitting it changes nothing.
    pub fn as_draft_payload(&self) -> Value {
        match self {
            Change::Replace(value) => value.clone(),
            Change::Append(record) => Value::Array(vec![record.clone()]),
            Change::Patch { id, fields } => {
                let mut record = fields.clone();
                record.insert("id".into(), Value::String(id.clone()));
                Value::Array(vec![Value::Object(record)])
            }
            Change::Remove { .. } => Value::Array(Vec::new()),
        }
    }

    /// The id of the record an item change touches.
    pub fn item_id(&self) -> Option<Value> {
        match self {
            Change::Replace(_) => None,
            Change::Append(record) => record.get("id").cloned(),
            Change::Patch { id, .. } | Change::Remove { id } => Some(Value::String(id.clone())),
        }
    }

    /// For the logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Change::Replace(_) => "replace",
            Change::Append(_) => "append",
            Change::Patch { .. } => "patch",
            Change::Remove { .. } => "remove",
        }
    }

    pub fn is_item_change(&self) -> bool {
        !matches!(self, Change::Replace(_))
    }
}

fn existing_records(current: Option<&Value>) -> Result<Vec<Value>, ItemError> {
    let current = current.ok_or(ItemError::RecordNotFound)?;
    Ok(current.as_array().ok_or(ItemError::NotAnArray)?.clone())
}

/// A path segment names a record whose `id` is that string, or that number.
fn has_id(record: &Value, id: &str) -> bool {
    record.get("id").is_some_and(|record_id| id_is(record_id, id))
}

/// Whether a JSON `id` is the one a path segment names.
pub fn id_is(id: &Value, path_id: &str) -> bool {
    match id {
        Value::String(s) => s == path_id,
        Value::Number(n) => n.to_string() == path_id,
        _ => false,
    }
}

/// True when `new` keeps every record of `current` unchanged (matched by id):
/// it only adds. What `--allow-unconditional` lets through without If-Match.
pub fn is_pure_superset(current: &Value, new: &Value) -> bool {
    let (Some(current), Some(new)) = (current.as_array(), new.as_array()) else {
        return false;
    };
    current.iter().all(|old| match old.get("id") {
        Some(id) => new.iter().any(|r| r.get("id") == Some(id) && r == old),
        None => false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn append_adds_one_record_and_refuses_a_duplicate_id() {
        let current = json!([{"id": "a"}]);
        let appended = Change::Append(json!({"id": "b"})).apply(Some(&current)).unwrap();
        assert_eq!(appended, json!([{"id": "a"}, {"id": "b"}]));
        assert_eq!(
            Change::Append(json!({"id": "a"})).apply(Some(&current)),
            Err(ItemError::DuplicateId)
        );
        assert_eq!(
            Change::Append(json!({"id": 1})).apply(None).unwrap(),
            json!([{"id": 1}])
        );
        assert_eq!(
            Change::Append(json!({"id": 1})).apply(Some(&json!({}))),
            Err(ItemError::NotAnArray)
        );
    }

    #[test]
    fn patch_replaces_only_the_named_fields_of_one_record() {
        let current = json!([{"id": "a", "notes": "x", "type": "poc"}, {"id": 7, "notes": "y"}]);
        let fields = json!({"notes": "edited"}).as_object().unwrap().clone();
        let patched = Change::Patch {
            id: "a".into(),
            fields: fields.clone(),
        }
        .apply(Some(&current))
        .unwrap();
        assert_eq!(
            patched,
            json!([{"id": "a", "notes": "edited", "type": "poc"}, {"id": 7, "notes": "y"}])
        );
        let by_number = Change::Patch { id: "7".into(), fields }.apply(Some(&current)).unwrap();
        assert_eq!(by_number[1]["notes"], "edited");
        let missing = Change::Patch {
            id: "zz".into(),
            fields: Map::new(),
        }
        .apply(Some(&current));
        assert_eq!(missing, Err(ItemError::RecordNotFound));
    }

    #[test]
    fn remove_deletes_one_record() {
        let current = json!([{"id": "a"}, {"id": "b"}]);
        assert_eq!(
            Change::Remove { id: "a".into() }.apply(Some(&current)).unwrap(),
            json!([{"id": "b"}])
        );
        assert_eq!(
            Change::Remove { id: "c".into() }.apply(Some(&current)),
            Err(ItemError::RecordNotFound)
        );
        assert_eq!(
            Change::Remove { id: "c".into() }.apply(None),
            Err(ItemError::RecordNotFound)
        );
    }

    #[test]
    fn a_pure_superset_only_adds() {
        let current = json!([{"id": 1, "n": 1}]);
        assert!(is_pure_superset(&current, &json!([{"id": 1, "n": 1}, {"id": 2}])));
        assert!(!is_pure_superset(&current, &json!([{"id": 2}])), "removes 1");
        assert!(!is_pure_superset(&current, &json!([{"id": 1, "n": 2}])), "changes 1");
        assert!(
            !is_pure_superset(&json!({"a": 1}), &json!({"a": 1, "b": 2})),
            "not records"
        );
    }
}
