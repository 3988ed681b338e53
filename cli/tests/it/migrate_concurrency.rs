//! Several `plat migrate` processes on one database at once (developers, CI jobs): every
//! migration is applied exactly once, and every process succeeds.

use std::process::Stdio;
use std::time::Instant;

use crate::migrate::{MigrateContext, TestDb};

#[test]
fn five_processes_apply_fifty_migrations_exactly_once() {
    let context = MigrateContext::new(&[("user-service", &[])]);
    context.write(
        "user-service",
        "001_log.sql",
        "CREATE TABLE applied_log (version int NOT NULL);\nINSERT INTO applied_log VALUES (1);\n",
    );
    for version in 2..=50 {
        context.write(
            "user-service",
            &format!("{version:03}_table_{version}.sql"),
            // Not idempotent on purpose: a second run of any of them would fail on CREATE TABLE.
            &format!("CREATE TABLE t_{version} (id int);\nINSERT INTO applied_log VALUES ({version});\n"),
        );
    }
    // The database does not exist yet: the five also race to create it.
    let db = TestDb::new("five");
    let url = db.url();

    let started = Instant::now();
    let children: Vec<_> = (0..5)
        .map(|_| {
            context
                .plat()
                .args(["migrate", "--database-url", &url, "--lock-timeout", "120s"])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut applied_lines = 0;
    for child in children {
        let output = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "a process failed:\n{stderr}");
        applied_lines += stderr.lines().filter(|line| line.contains("Applied user-service")).count();
    }
    eprintln!("5 processes, 50 migrations: {:?}", started.elapsed());

    assert_eq!(applied_lines, 50, "each migration reported applied by exactly one process");
    assert_eq!(db.versions(), (1..=50).collect::<Vec<i64>>());
    assert_eq!(db.scalar("SELECT count(*) || '/' || count(DISTINCT version) FROM applied_log"), "50/50");
    assert_eq!(
        db.scalar("SELECT count(*) FROM pg_tables WHERE schemaname = 'public' AND tablename LIKE 't\\_%'"),
        "49"
    );
    assert_eq!(db.scalar("SELECT bool_and(success) FROM plat_migrations"), "t");
}
