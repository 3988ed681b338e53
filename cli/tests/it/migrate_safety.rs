//! `plat migrate` refusing what could lose data: changed, missing and out-of-order migrations,
//! and waiting (within limits) for another run's lock.

use std::time::{Duration, Instant};

use crate::migrate::{MigrateContext, TestDb};

fn two_applied() -> (MigrateContext, TestDb) {
    let context = MigrateContext::new(&[("user-service", &[])]);
    context.write("user-service", "1_users.sql", "CREATE TABLE users (id int);\n").write(
        "user-service",
        "2_emails.sql",
        "CREATE TABLE emails (id int);\n",
    );
    let db = TestDb::new("safety");
    context.migrate(&[], &db).expect_code(0);
    (context, db)
}

#[test]
fn a_changed_file_is_refused_until_repaired() {
    let (context, db) = two_applied();
    let old = plat::migrate::Checksum::of("CREATE TABLE users (id int);\n").to_hex();
    let new_text = "-- users of the platform\nCREATE TABLE users (id int);\n";
    let new = plat::migrate::Checksum::of(new_text).to_hex();
    context.write("user-service", "1_users.sql", new_text).write(
        "user-service",
        "3_later.sql",
        "CREATE TABLE later (id int);",
    );

    let run = context.migrate(&[], &db).expect_code(1);
    assert!(run.stderr.contains("refusing to migrate database"), "{}", run.stderr);
    assert!(
        run.stderr.contains("`services/user-service/migrations/1_users.sql` changed after it was applied"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains(&format!("checksum applied: {old}")), "{}", run.stderr);
    assert!(run.stderr.contains(&format!("checksum of file: {new}")), "{}", run.stderr);
    assert!(run.stderr.contains("plat migrate repair user-service"), "{}", run.stderr);
    assert!(!db.table_exists("later"), "nothing runs after a refusal");

    let repaired = context.migrate(&["repair", "user-service"], &db).expect_code(0);
    assert!(repaired.stderr.contains(&format!("checksum {old} is now {new}")), "{}", repaired.stderr);
    assert_eq!(db.history()[0].split('|').nth(2).unwrap(), new);
    context.migrate(&[], &db).expect_code(0);
    assert!(db.table_exists("later"));
    let again = context.migrate(&["repair", "user-service"], &db).expect_code(0);
    assert!(again.stderr.contains("nothing to repair"), "{}", again.stderr);
}

#[test]
fn a_byte_order_mark_is_not_sql() {
    let context = MigrateContext::new(&[("user-service", &[])]);
    let sql = "CREATE TABLE users (id int);\r\n";
    context.write("user-service", "1_users.sql", &format!("\u{feff}{sql}"));
    let db = TestDb::new("bom");
    context.migrate(&[], &db).expect_code(0);
    assert!(db.table_exists("users"));
    // Recorded as the text without its mark: removing the mark later changes nothing.
    let checksum = plat::migrate::Checksum::of("CREATE TABLE users (id int);\n").to_hex();
    assert_eq!(db.history(), [format!("1|users|{checksum}|t")]);
    context.write("user-service", "1_users.sql", sql);
    context.migrate(&["status"], &db).expect_code(0);
}

#[test]
fn a_renamed_file_is_flagged_until_repaired() {
    let (context, db) = two_applied();
    context.remove("user-service", "2_emails.sql");
    context.write("user-service", "2_addresses.sql", "CREATE TABLE emails (id int);\n");
    context.write("user-service", "3_later.sql", "CREATE TABLE later (id int);");

    let status = context.migrate(&["status"], &db).expect_code(1);
    assert!(status.stdout.contains("RENAMED  2"), "{}", status.stdout);
    assert!(status.stdout.contains("1 renamed"), "{}", status.stdout);
    assert!(status.stderr.contains("hint: rename the file back"), "{}", status.stderr);
    let json = context.migrate(&["status", "--json"], &db).expect_code(1).json();
    assert_eq!((json[0]["renamed"].as_i64(), json[0]["migrations"][1]["state"].as_str()), (Some(1), Some("renamed")));

    let run = context.migrate(&[], &db).expect_code(1);
    assert!(
        run.stderr.contains(
            "`services/user-service/migrations/2_addresses.sql` was renamed after it was applied: version 2 was \
             applied as `emails`, with the same content"
        ),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("plat migrate repair user-service"), "{}", run.stderr);
    assert!(!db.table_exists("later"));

    let repaired = context.migrate(&["repair", "user-service"], &db).expect_code(0);
    assert!(repaired.stderr.contains("2_addresses.sql: applied as `emails`, now recorded"), "{}", repaired.stderr);
    assert!(db.history()[1].starts_with("2|addresses|"), "{:?}", db.history());
    context.migrate(&[], &db).expect_code(0);
    assert!(db.table_exists("later"));
    context.migrate(&["status"], &db).expect_code(0);
}

#[test]
fn another_migration_with_an_applied_version_is_named_as_such() {
    let (context, db) = two_applied();
    // Another branch's version 2, merged over the applied one.
    context.remove("user-service", "2_emails.sql");
    context.write("user-service", "2_phones.sql", "CREATE TABLE phones (id int);\n");
    let run = context.migrate(&[], &db).expect_code(1);
    assert!(
        run.stderr.contains(
            "`services/user-service/migrations/2_phones.sql` is not the migration applied as version 2: that was \
             `emails`, with other content"
        ),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("two migrations share a version"), "{}", run.stderr);
    assert!(!run.stderr.contains("if the edit changes nothing"), "{}", run.stderr);
    assert!(!db.table_exists("phones"));
    context.migrate(&["status"], &db).expect_code(1);
}

#[test]
fn a_missing_file_is_refused() {
    let (context, db) = two_applied();
    context.remove("user-service", "2_emails.sql");
    context.write("user-service", "3_later.sql", "CREATE TABLE later (id int);");
    let run = context.migrate(&[], &db).expect_code(1);
    assert!(run.stderr.contains("version 2 (emails) is applied, and its file is gone"), "{}", run.stderr);
    assert!(run.stderr.contains("restore the file here from version control"), "{}", run.stderr);
    assert!(!db.table_exists("later"));
    assert_eq!(db.versions(), [1, 2]);
}

#[test]
fn out_of_order_is_refused_unless_allowed() {
    let context = MigrateContext::new(&[("user-service", &[])]);
    context.write("user-service", "1_users.sql", "CREATE TABLE users (id int);").write(
        "user-service",
        "3_later.sql",
        "CREATE TABLE later (id int);",
    );
    let db = TestDb::new("order");
    context.migrate(&[], &db).expect_code(0);

    // A branch merged late brings version 2.
    context.write("user-service", "2_late.sql", "CREATE TABLE late (id int);");
    let run = context.migrate(&[], &db).expect_code(1);
    assert!(
        run.stderr.contains(
            "`services/user-service/migrations/2_late.sql` (version 2) is pending, older than the applied version 3"
        ),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("--allow-out-of-order"), "{}", run.stderr);
    assert!(!db.table_exists("late"));

    context.migrate(&["--allow-out-of-order"], &db).expect_code(0);
    assert_eq!(db.versions(), [1, 2, 3]);
    assert!(db.table_exists("late"));
}

#[test]
fn a_failed_history_row_is_refused_and_repair_forgets_it() {
    let (context, db) = two_applied();
    // Another tool (or a future plat) recorded a failed attempt at version 3.
    db.query("INSERT INTO plat_migrations (version, name, checksum, execution_ms, success) VALUES (3, 'broken', 'x', 0, false)");
    context.write("user-service", "3_broken.sql", "CREATE TABLE broken (id int);");
    let run = context.migrate(&[], &db).expect_code(1);
    assert!(run.stderr.contains("version 3 (broken) is recorded as failed"), "{}", run.stderr);
    let repaired = context.migrate(&["repair", "user-service"], &db).expect_code(0);
    assert!(repaired.stderr.contains("forgot the failed attempt at version 3"), "{}", repaired.stderr);
    context.migrate(&[], &db).expect_code(0);
    assert!(db.table_exists("broken"));
}

#[test]
fn the_lock_timeout_names_who_holds_the_lock() {
    let context = MigrateContext::new(&[("user-service", &[])]);
    context.write("user-service", "1_users.sql", "CREATE TABLE users (id int);").write(
        "user-service",
        "2_slow.sql",
        "SELECT pg_sleep(6);",
    );
    let db = TestDb::new("lock");
    let url = db.url();

    let holder =
        context.plat().args(["migrate", "--database-url", &url]).stderr(std::process::Stdio::piped()).spawn().unwrap();
    // Wait until the first run holds the lock (it creates the database first).
    let started = Instant::now();
    loop {
        let held = db.exists()
            && db.scalar(&format!(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted AND database = \
                 (SELECT oid FROM pg_database WHERE datname = '{}')",
                db.name
            )) == "1";
        if held {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(20), "the first run never took the lock");
        std::thread::sleep(Duration::from_millis(50));
    }

    let waited = Instant::now();
    let run = context.migrate(&["--lock-timeout", "1s"], &db).expect_code(1);
    let took = waited.elapsed();
    assert!(took >= Duration::from_secs(1) && took < Duration::from_secs(6), "gave up after {took:?}");
    assert!(run.stderr.contains("Waiting user-service: the migration lock on database"), "{}", run.stderr);
    let holder_name = format!(":{})", holder.id());
    assert!(
        run.stderr.contains(&format!(
            "error: user-service: timed out after 1s waiting for the migration lock on database `{}`, held by pid",
            db.name
        )),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("(plat migrate (") && run.stderr.contains(&holder_name),
        "names plat's pid {holder_name}: {}",
        run.stderr
    );
    assert!(run.stderr.contains("raise --lock-timeout"), "{}", run.stderr);

    let output = holder.wait_with_output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert_eq!(db.versions(), [1, 2]);
    // Once the lock is free, the waiting side simply finds nothing left to do.
    let run = context.migrate(&["--lock-timeout", "1s"], &db).expect_code(0);
    assert!(run.stderr.contains("none pending"), "{}", run.stderr);
}
