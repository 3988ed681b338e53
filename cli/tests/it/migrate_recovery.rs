//! A way back from every failure: a no-transaction file that leaves an INVALID index is never
//! recorded as applied, the hints say what the database really holds, and `plat migrate mark`
//! records a migration whose work is already done.

use crate::migrate::{MigrateContext, TestDb};

#[test]
fn an_invalid_index_is_never_recorded_as_applied() {
    let context = MigrateContext::new(&[("user-service", &[])]);
    context
        .write("user-service", "1_users.sql", "CREATE TABLE users (id int);\nINSERT INTO users VALUES (1), (1);\n")
        .write(
            "user-service",
            "2_unique.sql",
            "-- plat:no-transaction\nCREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS users_id ON users (id);\n",
        );
    let db = TestDb::new("invalid");
    let run = context.migrate(&[], &db).expect_code(1);
    assert!(run.stderr.contains("could not create unique index \"users_id\""), "{}", run.stderr);
    assert!(
        run.stderr.contains("2_unique.sql ran outside a transaction and left `users_id` INVALID"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("`DROP INDEX CONCURRENTLY users_id;` then `plat migrate` runs 2_unique.sql again"),
        "{}",
        run.stderr
    );
    assert_eq!(db.versions(), [1]);

    // Run again as is: IF NOT EXISTS skips the INVALID index and the statement "succeeds".
    let run = context.migrate(&[], &db).expect_code(1);
    assert!(
        run.stderr
            .contains("2_unique.sql: it ran, and left index `users_id` INVALID, so it is not recorded as applied"),
        "{}",
        run.stderr
    );
    assert_eq!(db.versions(), [1], "never recorded with the index still INVALID");

    // The way back the hint gives.
    db.query("DELETE FROM users WHERE ctid <> (SELECT min(ctid) FROM users)");
    db.query("DROP INDEX CONCURRENTLY users_id");
    context.migrate(&[], &db).expect_code(0);
    assert_eq!(db.versions(), [1, 2]);
    assert_eq!(db.scalar("SELECT indisvalid FROM pg_index WHERE indexrelid = 'users_id'::regclass"), "t");
}

#[test]
fn mark_records_a_migration_whose_work_is_done() {
    let context = MigrateContext::new(&[("user-service", &[])]);
    context.write("user-service", "1_users.sql", "CREATE TABLE users (id int, email text);\n");
    let db = TestDb::new("mark");
    context.migrate(&[], &db).expect_code(0);
    // A run built this index and was killed before it recorded the file.
    db.query("CREATE INDEX users_email ON users (email)");
    context.write(
        "user-service",
        "2_users_email.sql",
        "-- plat:no-transaction\nCREATE INDEX CONCURRENTLY users_email ON users (email);\n",
    );
    let run = context.migrate(&[], &db).expect_code(1);
    assert!(run.stderr.contains("relation \"users_email\" already exists"), "{}", run.stderr);
    assert!(
        run.stderr.contains("index `users_email` it names exists and is valid: if 2_users_email.sql did all it should, `plat migrate mark user-service 2`"),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains("DROP INDEX"), "no advice to drop a valid index:\n{}", run.stderr);

    let run = context.migrate(&["mark", "user-service", "2"], &db).expect_code(0);
    assert!(
        run.stderr.contains(
            "Marked user-service services/user-service/migrations/2_users_email.sql as applied, without running it"
        ),
        "{}",
        run.stderr
    );
    let checksum = plat::migrate::Checksum::of(
        "-- plat:no-transaction\nCREATE INDEX CONCURRENTLY users_email ON users (email);\n",
    )
    .to_hex();
    assert_eq!(db.history()[1], format!("2|users_email|{checksum}|t"));
    context.migrate(&["status"], &db).expect_code(0);

    let again = context.migrate(&["mark", "user-service", "2"], &db).expect_code(1);
    assert!(again.stderr.contains("cannot mark version 2 as applied: it is applied already"), "{}", again.stderr);
    let none = context.migrate(&["mark", "user-service", "9"], &db).expect_code(1);
    assert!(none.stderr.contains("no migration file has version 9"), "{}", none.stderr);
}
