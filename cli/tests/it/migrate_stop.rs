//! Ctrl-C and SIGTERM during a migration: PostgreSQL gets a cancel request for the running
//! statement, and plat says what was and was not applied.

use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::migrate::{MigrateContext, TestDb, scalar, server_url};

fn stopped_mid_statement_by(signal: &str) {
    let context = MigrateContext::new(&[("user-service", &[])]);
    context
        .write("user-service", "1_a.sql", "CREATE TABLE a (x int);\n")
        .write("user-service", "2_slow.sql", "CREATE TABLE b (x int);\nSELECT pg_sleep(60);\n")
        .write("user-service", "3_c.sql", "CREATE TABLE c (x int);\n");
    let db = TestDb::new(&format!("stop_{signal}"));
    let child = context
        .plat()
        .args(["migrate", "--database-url", &db.url()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();

    // Wait until the server runs the slow statement: the signal must find it running.
    // Asked of the server's maintenance database: plat creates the test's database itself.
    let sleeping = format!(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = '{}' AND query LIKE '%pg_sleep(60)%' \
         AND application_name LIKE 'plat migrate%'",
        db.name
    );
    let sleeping = || scalar(&server_url(), &sleeping);
    let started = Instant::now();
    while sleeping() != "1" {
        assert!(started.elapsed() < Duration::from_secs(30), "the slow statement never started");
        std::thread::sleep(Duration::from_millis(50));
    }
    let status = std::process::Command::new("kill").args([&format!("-{signal}"), &child.id().to_string()]).status();
    assert!(status.unwrap().success());
    let signalled = Instant::now();
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(signalled.elapsed() < Duration::from_secs(10), "took {:?} to stop:\n{stderr}", signalled.elapsed());
    assert_eq!(output.status.code(), Some(130), "{stderr}");
    assert!(stderr.contains("Stopping cancelling the running statement on the server"), "{stderr}");
    assert!(stderr.contains("2_slow.sql: cancelled: plat asked the server to stop it (SQLSTATE 57014)"), "{stderr}");
    assert!(stderr.contains("nothing of 2_slow.sql was applied"), "{stderr}");
    assert!(stderr.contains("the 1 migration before it in this run stays applied"), "{stderr}");

    // The server stopped it: no statement of plat's runs on, holding locks.
    assert_eq!(sleeping(), "0");
    assert_eq!(db.versions(), [1]);
    assert!(db.table_exists("a") && !db.table_exists("b") && !db.table_exists("c"));
}

#[test]
fn ctrl_c_cancels_the_running_statement_and_says_what_was_applied() {
    stopped_mid_statement_by("INT");
}

#[test]
fn sigterm_cancels_the_running_statement_too() {
    stopped_mid_statement_by("TERM");
}
