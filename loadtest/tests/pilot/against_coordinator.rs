use crate::helpers::run_loadtest;
use loadtest::server::{locate_coordinator, SpawnedServer};
use serde_json::Value;

#[test]
fn a_quick_pilot_against_the_coordinator_passes_with_every_record_reconciled() {
    let run = run_loadtest(&["pilot", "--quick", "--seed", "11"]);
    assert_eq!(run.code, 0, "{}", run.explain());
    assert_eq!(run.json["decision"], "PASS", "{}", run.explain());
    assert!(run.stdout.contains("Decision: **PASS**"));

    let scenarios = run.json["scenarios"].as_array().expect("scenarios");
    let names: Vec<&str> = scenarios.iter().filter_map(|s| s["name"].as_str()).collect();
    assert_eq!(names, ["A", "B", "C", "D"]);
    for scenario in scenarios {
        let f = &scenario["findings"];
        assert!(f["writes"].as_u64() > Some(0));
        assert_eq!(f["acknowledged"], f["storedOnce"], "{scenario}");
        assert_eq!(f["conflicts"], f["heldByDraft"], "{scenario}");
        assert_eq!(scenario["stats"]["agrees"], true, "{scenario}");
    }
    // D forces a conflict for all but one of the 5 users.
    assert!(scenarios[3]["findings"]["conflicts"].as_u64() >= Some(4));

    let recovery = &run.json["recovery"];
    assert!(recovery["oneByOne"].as_u64() > Some(0), "{recovery}");
    assert!(recovery["viaSubmitAll"].as_u64() > Some(0), "{recovery}");
    assert_eq!(recovery["keptWithError"], 1, "the stale account edit stays a draft");
    assert_eq!(recovery["discarded"], 1);
    let final_findings = &run.json["finalReconciliation"];
    assert_eq!(
        final_findings["writes"], final_findings["storedOnce"],
        "{final_findings}"
    );

    // The log of the server the tool started was read and agrees.
    let checks = run.json["logChecks"].as_object().expect("log checks ran");
    for (phase, check) in checks {
        assert_eq!(check["conflictsSeen"], check["conflictEvents"], "{phase}: {check}");
        assert_eq!(check["acknowledged"], check["writeEvents"], "{phase}: {check}");
        assert_eq!(check["draftsAnswered"], check["draftSavedEvents"], "{phase}: {check}");
    }
    let conflicts: u64 = checks.values().filter_map(|c| c["conflictsSeen"].as_u64()).sum();
    assert_eq!(run.json["template"]["conflictsObserved"].as_u64(), Some(conflicts));
}

#[test]
fn a_short_burst_against_a_running_coordinator_loses_nothing() {
    let binary = locate_coordinator(None).expect("the coordinator binary");
    let server = SpawnedServer::start(&binary).expect("the coordinator starts");
    let log = server.log_path.to_string_lossy().into_owned();
    let run = run_loadtest(&[
        "burst",
        "--target",
        &server.url,
        "--admin-password",
        &server.admin_password,
        "--server-log",
        &log,
        "--users",
        "8",
        "--keys",
        "2",
        "--duration",
        "2",
        "--seed",
        "5",
    ]);
    assert_eq!(run.code, 0, "{}", run.explain());
    assert_eq!(run.json["decision"], "PASS", "{}", run.explain());
    let f = &run.json["findings"];
    assert!(f["acknowledged"].as_u64() > Some(0));
    assert_eq!(f["acknowledged"], f["storedOnce"], "{f}");
    assert_eq!(f["disappeared"], Value::Array(vec![]));
    let check = &run.json["logCheck"];
    assert_eq!(check["conflictEvents"], check["conflictsSeen"], "{check}");
    let drafts: i64 = run.json["draftsByKey"]
        .as_object()
        .expect("stats")
        .values()
        .filter_map(Value::as_i64)
        .sum();
    assert_eq!(Some(drafts as u64), run.json["draftsAnswered"].as_u64());
}

#[test]
fn an_open_loop_burst_starts_submissions_at_the_asked_rate() {
    let run = run_loadtest(&[
        "burst",
        "--users",
        "4",
        "--duration",
        "2",
        "--rate",
        "40",
        "--seed",
        "3",
    ]);
    assert_eq!(run.code, 0, "{}", run.explain());
    let submissions = run.json["submissions"].as_u64().expect("submissions");
    let dropped = run.json["droppedArrivals"].as_u64().expect("dropped");
    assert_eq!(submissions + dropped, 80, "{}", run.explain());
    assert!(run.json["mode"].as_str().is_some_and(|m| m.contains("open loop")));
}

/// The findings of scenarios A-C and D of a report.
fn scenarios(report: &Value) -> Vec<&Value> {
    report["scenarios"].as_array().expect("scenarios").iter().collect()
}

#[test]
fn a_quick_pilot_with_item_writes_passes_without_a_single_conflict_in_a_to_c() {
    let run = run_loadtest(&["pilot", "--quick", "--client", "items", "--seed", "12"]);
    assert_eq!(run.code, 0, "{}", run.explain());
    assert_eq!(run.json["decision"], "PASS", "{}", run.explain());
    assert_eq!(run.json["client"], "items");
    assert!(run.stdout.contains("client items"), "{}", run.stdout);

    let all = scenarios(&run.json);
    for scenario in &all[..3] {
        let f = &scenario["findings"];
        assert!(f["writes"].as_u64() > Some(0), "{scenario}");
        assert_eq!(f["conflicts"], 0, "item writes cannot go stale: {scenario}");
        assert_eq!(f["acknowledged"], f["writes"], "{scenario}");
        assert_eq!(f["storedOnce"], f["writes"], "{scenario}");
    }
    // D still forces conflicts with whole-value writes, and recovers them.
    let d = &all[3]["findings"];
    assert!(d["conflicts"].as_u64() >= Some(4), "{d}");
    assert_eq!(d["conflicts"], d["heldByDraft"], "{d}");
    assert_eq!(run.json["recovery"]["keptWithError"], 1);
    let final_findings = &run.json["finalReconciliation"];
    assert_eq!(
        final_findings["writes"], final_findings["storedOnce"],
        "{final_findings}"
    );

    // Every item write is in the log as a storage_write of its own.
    let checks = run.json["logChecks"].as_object().expect("log checks ran");
    for phase in ["A", "B", "C"] {
        let check = &checks[phase];
        assert_eq!(check["conflictEvents"], 0, "{phase}: {check}");
        assert!(check["acknowledged"].as_u64() > Some(0), "{phase}: {check}");
        assert_eq!(check["acknowledged"], check["writeEvents"], "{phase}: {check}");
    }
}

#[test]
fn both_clients_are_compared_side_by_side_on_fresh_servers() {
    let run = run_loadtest(&["pilot", "--quick", "--client", "both", "--seed", "13"]);
    assert_eq!(run.code, 0, "{}", run.explain());
    assert_eq!(run.json["decision"], "PASS", "{}", run.explain());
    let (whole, items) = (&run.json["whole"], &run.json["items"]);
    assert_eq!(whole["client"], "whole");
    assert_eq!(items["client"], "items");
    assert_ne!(whole["runId"], items["runId"]);
    assert_ne!(whole["server"], items["server"], "each pass has its own server");
    assert_eq!(whole["seed"], items["seed"]);

    let rows = run.json["rows"].as_array().expect("rows");
    assert_eq!(rows.len(), 4);
    let mut avoided = 0;
    for (row, (w, i)) in rows.iter().zip(scenarios(whole).iter().zip(scenarios(items))) {
        assert_eq!(row["wholeConflicts"], w["findings"]["conflicts"], "{row}");
        assert_eq!(row["itemsConflicts"], i["findings"]["conflicts"], "{row}");
        let expected = w["findings"]["conflicts"].as_i64().unwrap() - i["findings"]["conflicts"].as_i64().unwrap();
        assert_eq!(row["avoided"], expected, "{row}");
        avoided += expected;
    }
    for row in &rows[..3] {
        assert_eq!(row["itemsConflicts"], 0, "{row}");
    }
    assert_eq!(run.json["total"]["avoided"], avoided);
    assert!(
        run.stdout.contains("# Whole-value writes vs item writes"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("| total |"), "{}", run.stdout);
}
