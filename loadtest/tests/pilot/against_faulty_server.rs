use crate::faulty_server::{Faults, FaultyServer, ADMIN_PASSWORD};
use crate::helpers::run_loadtest;
use std::sync::atomic::Ordering;

fn pilot_against(server: &FaultyServer) -> crate::helpers::Run {
    run_loadtest(&[
        "pilot",
        "--quick",
        "--seed",
        "7",
        "--target",
        &server.url,
        "--admin-password",
        ADMIN_PASSWORD,
    ])
}

#[test]
fn writes_acknowledged_then_dropped_fail_the_pilot_and_each_is_counted() {
    let server = FaultyServer::start(Faults {
        drop_every_nth_write: 3,
        ..Faults::default()
    });
    let run = pilot_against(&server);
    let dropped = server.planted.dropped_writes.load(Ordering::Relaxed);

    assert!(dropped > 0, "the faulty server dropped nothing: {}", run.explain());
    assert_eq!(run.code, 1, "{}", run.explain());
    assert_eq!(run.json["decision"], "FAIL");
    assert_eq!(run.json["template"]["decision"], "FAIL");
    assert_eq!(
        run.incidents_about("saved but disappeared"),
        dropped,
        "{}",
        run.explain()
    );
    assert_eq!(run.json["criteria"][0]["met"], false);
    assert!(run.json["template"]["missingDataIncidents"].as_u64() >= Some(dropped as u64));
    // No server log on a --target run: said so, and the reconciliation decided.
    assert!(run.json["logChecksSkipped"].is_string());
    assert!(run.stdout.contains("Decision: **FAIL**"), "{}", run.stdout);
}

#[test]
fn conflicts_answered_without_a_kept_draft_fail_the_pilot_and_each_is_counted() {
    let server = FaultyServer::start(Faults {
        lose_every_nth_draft: 2,
        ..Faults::default()
    });
    let run = pilot_against(&server);
    let lost = server.planted.lost_drafts.load(Ordering::Relaxed);

    assert!(lost > 0, "the faulty server lost no draft: {}", run.explain());
    assert_eq!(run.code, 1, "{}", run.explain());
    assert_eq!(run.json["decision"], "FAIL");
    assert_eq!(run.incidents_about("lost conflict"), lost, "{}", run.explain());
    assert_eq!(run.incidents_about("saved but disappeared"), 0, "{}", run.explain());
    assert_eq!(run.json["criteria"][1]["met"], false);
}

#[test]
fn a_faithful_run_of_the_same_small_server_passes() {
    // The same server with no fault planted: the FAILs above are earned by
    // the faults, not by the server's simplifications.
    let server = FaultyServer::start(Faults::default());
    let run = pilot_against(&server);
    assert_eq!(run.code, 0, "{}", run.explain());
    assert_ne!(run.json["decision"], "FAIL");
    assert_eq!(
        run.json["incidents"].as_array().map(Vec::len),
        Some(0),
        "{}",
        run.explain()
    );
}
