//! The records virtual users write, shaped like the web app's, and the one
//! text operation the hot path needs: appending a record to a JSON array
//! without parsing it into a tree.

use rand::seq::SliceRandom;
use rand::Rng;
use serde::Serialize;
use serde_json::Value;

/// The runbook's keys.
pub const ACTIVITIES: &str = "activities";
pub const INTERNAL_ACTIVITIES: &str = "internalActivities";
pub const ACCOUNTS: &str = "accounts";

pub const EXTERNAL_TYPES: [&str; 5] = ["customerCall", "sow", "poc", "rfx", "pricing"];
pub const INTERNAL_TYPES: [&str; 4] = ["enablement", "video", "training", "internalMeeting"];

/// Notes people really type: accents, umlauts, CJK, emoji, quotes.
const NOTES: [&str; 8] = [
    "Kick-off with the customer's IT team; next step: draft SOW",
    "Réunion de suivi, très bonne ambiance — décision en janvier",
    "Abstimmung zur Preisgestaltung für Größe L, Grüße an Jürgen",
    "価格の見直しについて打ち合わせ",
    "POC scope agreed ✅ — 3 use cases, \"quick win\" first",
    "Demo für den Vertrieb, Fragen zu SSO / SAML offen",
    "Formación interna: año fiscal, señales de compra",
    "Q&A session; follow-up <owner: ops> & legal",
];

/// The shared account and project every external activity is filed under.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Account {
    pub id: String,
    pub name: String,
    pub notes: String,
    pub projects: Vec<Project>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Project {
    pub id: String,
    pub name: String,
}

impl Account {
    pub fn for_run(run_id: &str) -> Self {
        Self {
            id: format!("{run_id}-acct"),
            name: "Müller & Søn Logistik AG".into(),
            notes: "Pilot account for the concurrent-submission test".into(),
            projects: vec![Project {
                id: format!("{run_id}-prj"),
                name: "Rollout Nord — Phase 2".into(),
            }],
        }
    }

    pub fn project_id(&self) -> &str {
        &self.projects[0].id
    }
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ExternalActivity<'a> {
    pub id: String,
    pub account_id: &'a str,
    pub project_id: &'a str,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub date: String,
    pub duration_minutes: u32,
    pub notes: String,
    pub created_by: &'a str,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct InternalActivity<'a> {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub date: String,
    pub duration_minutes: u32,
    pub notes: String,
    pub created_by: &'a str,
}

fn today() -> String {
    chrono::Utc::now().format("%Y-%m-%d").to_string()
}

fn pick<R: Rng>(rng: &mut R, from: &[&'static str]) -> &'static str {
    from.choose(rng).copied().unwrap_or("other")
}

/// An external activity on the shared account and project.
pub fn external_activity<R: Rng>(rng: &mut R, id: String, account: &Account, user: &str) -> Value {
    let record = ExternalActivity {
        id,
        account_id: &account.id,
        project_id: account.project_id(),
        kind: pick(rng, &EXTERNAL_TYPES),
        date: today(),
        duration_minutes: 15 * rng.gen_range(1..=8),
        notes: pick(rng, &NOTES).to_owned(),
        created_by: user,
    };
    serde_json::to_value(record).unwrap_or(Value::Null)
}

pub fn internal_activity<R: Rng>(rng: &mut R, id: String, user: &str) -> Value {
    let record = InternalActivity {
        id,
        kind: pick(rng, &INTERNAL_TYPES),
        date: today(),
        duration_minutes: 15 * rng.gen_range(1..=8),
        notes: pick(rng, &NOTES).to_owned(),
        created_by: user,
    };
    serde_json::to_value(record).unwrap_or(Value::Null)
}

#[derive(Debug, PartialEq, Eq)]
pub struct NotAnArray;

/// `[a, b]` + `c` -> `[a, b,c]`, working on the text: the stored array is
/// neither parsed nor copied into a tree, only copied once into the body.
pub fn append_to_array(array: &str, record: &str) -> Result<String, NotAnArray> {
    let inner = array
        .trim()
        .strip_prefix('[')
        .and_then(|rest| rest.strip_suffix(']'))
        .ok_or(NotAnArray)?
        .trim_end();
    let mut out = String::with_capacity(inner.len() + record.len() + 3);
    out.push('[');
    out.push_str(inner);
    if !inner.trim_start().is_empty() {
        out.push(',');
    }
    out.push_str(record);
    out.push(']');
    Ok(out)
}

/// Where each record id occurs in a stored value, counted: the ground truth
/// of a reconciliation. Values that are not arrays hold no records.
pub fn count_ids(value: &Value) -> std::collections::HashMap<String, usize> {
    let mut counts = std::collections::HashMap::new();
    for record in value.as_array().into_iter().flatten() {
        if let Some(id) = record.get("id").and_then(Value::as_str) {
            *counts.entry(id.to_owned()).or_insert(0) += 1;
        }
    }
    counts
}

/// The record with this id in an array value.
pub fn find_record<'a>(value: &'a Value, id: &str) -> Option<&'a Value> {
    value
        .as_array()?
        .iter()
        .find(|r| r.get("id").and_then(Value::as_str) == Some(id))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use serde_json::json;

    #[test]
    fn appending_to_an_empty_array() {
        assert_eq!(append_to_array("[]", r#"{"id":"a"}"#).unwrap(), r#"[{"id":"a"}]"#);
        assert_eq!(append_to_array(" [ \n ] ", "1").unwrap(), "[1]");
    }

    #[test]
    fn appending_keeps_what_is_there() {
        let out = append_to_array(r#"[{"id":"a"}, {"id":"b"}]"#, r#"{"id":"c"}"#).unwrap();
        let parsed: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(parsed, json!([{"id": "a"}, {"id": "b"}, {"id": "c"}]));
    }

    #[test]
    fn appending_to_something_else_is_refused() {
        assert_eq!(append_to_array(r#"{"id":"a"}"#, "1"), Err(NotAnArray));
        assert_eq!(append_to_array("null", "1"), Err(NotAnArray));
    }

    #[test]
    fn records_carry_the_shared_account_and_non_ascii_notes() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let account = Account::for_run("r1");
        let notes: Vec<String> = (0..40)
            .map(|i| {
                let r = external_activity(&mut rng, format!("x{i}"), &account, "u1");
                assert_eq!(r["accountId"], "r1-acct");
                assert_eq!(r["projectId"], "r1-prj");
                assert!(EXTERNAL_TYPES.contains(&r["type"].as_str().unwrap()));
                r["notes"].as_str().unwrap().to_owned()
            })
            .collect();
        assert!(notes.iter().any(|n| !n.is_ascii()));
        let internal = internal_activity(&mut rng, "i1".into(), "u1");
        assert!(INTERNAL_TYPES.contains(&internal["type"].as_str().unwrap()));
    }

    #[test]
    fn counting_ids_finds_duplicates() {
        let value = json!([{"id": "a"}, {"id": "b"}, {"id": "a"}, {"no": "id"}]);
        let counts = count_ids(&value);
        assert_eq!(counts["a"], 2);
        assert_eq!(counts["b"], 1);
        assert_eq!(find_record(&value, "b"), Some(&json!({"id": "b"})));
    }
}
