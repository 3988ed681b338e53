//! Other tools' migration files, as their authors meant them: goose's and dbmate's up and down
//! sections and no-transaction markers, golang-migrate's and Flyway's up and undo files; and
//! what plat cannot follow refused before anything runs, every such file in one run.

use crate::migrate::{MigrateContext, TestDb};

#[test]
fn goose_files_apply_their_up_section_and_undo_with_their_down_section() {
    let context = MigrateContext::new(&[("user-service", &[])]);
    context
        .write(
            "user-service",
            "00001_create_users.sql",
            "-- +goose Up\nCREATE TABLE users (id int, email text);\n\n-- +goose StatementBegin\n\
             CREATE FUNCTION users_count() RETURNS bigint LANGUAGE plpgsql AS $$\nBEGIN\n  RETURN (SELECT count(*) FROM users);\nEND;\n$$;\n\
             -- +goose StatementEnd\n\n-- +goose Down\nDROP FUNCTION users_count();\nDROP TABLE users;\n",
        )
        .write(
            "user-service",
            "00002_users_email.sql",
            "-- +goose NO TRANSACTION\n-- +goose Up\nCREATE INDEX CONCURRENTLY users_email ON users (email);\n\n\
             -- +goose Down\nDROP INDEX CONCURRENTLY users_email;\n",
        );
    let db = TestDb::new("goose");
    context.migrate(&[], &db).expect_code(0);
    // The Down section did not run: the tables it drops are there.
    assert!(db.table_exists("users"), "the down section ran too");
    assert_eq!(db.scalar("SELECT users_count()"), "0");
    assert_eq!(db.scalar("SELECT indisvalid FROM pg_index WHERE indexrelid = 'users_email'::regclass"), "t");
    assert_eq!(db.versions(), [1, 2]);

    let listed = context.migrate(&["down", "user-service", "--to", "0"], &db).expect_code(1);
    assert!(
        listed.stdout.contains(
            "2  users_email  with its down section in services/user-service/migrations/00002_users_email.sql"
        ),
        "{}",
        listed.stdout
    );
    let run = context.migrate(&["down", "user-service", "--to", "0", "--yes"], &db).expect_code(0);
    assert!(run.stderr.contains("Undone user-service 00001_create_users.sql with its down section"), "{}", run.stderr);
    assert!(!db.table_exists("users"));
    assert_eq!(db.versions(), Vec::<i64>::new());

    // An error points at the file's own line, not the section's.
    context.write("user-service", "00003_bad.sql", "-- +goose Up\n\nSELECT nope FROM nowhere;\n-- +goose Down\n");
    let run = context.migrate(&[], &db).expect_code(1);
    assert!(run.stderr.contains("00003_bad.sql:3:18: relation \"nowhere\" does not exist"), "{}", run.stderr);

    // `new` writes goose's markers in a goose project.
    context.remove("user-service", "00003_bad.sql");
    let created = context.run(&["migrate", "new", "user-service", "next"], &[]).expect_code(0);
    let text = std::fs::read_to_string(context.context.workspace.join(created.stdout.trim())).unwrap();
    assert_eq!(text, "-- +goose Up\n-- Add migration script here\n\n-- +goose Down\n");
}

#[test]
fn dbmate_files_apply_their_up_section_and_honour_transaction_false() {
    let context = MigrateContext::new(&[("user-service", &[])]);
    context
        .write(
            "user-service",
            "20240101000000_users.sql",
            "-- migrate:up\nCREATE TABLE users (id int, email text);\n\n-- migrate:down\nDROP TABLE users;\n",
        )
        .write(
            "user-service",
            "20240102000000_users_email.sql",
            "-- migrate:up transaction:false\nCREATE INDEX CONCURRENTLY users_email ON users (email);\n\n\
             -- migrate:down\nDROP INDEX users_email;\n",
        );
    let db = TestDb::new("dbmate");
    context.migrate(&[], &db).expect_code(0);
    assert!(db.table_exists("users"));
    assert_eq!(db.scalar("SELECT indisvalid FROM pg_index WHERE indexrelid = 'users_email'::regclass"), "t");
    context.migrate(&["down", "user-service", "--to", "20240101000000", "--yes"], &db).expect_code(0);
    assert!(db.table_exists("users") && !db.table_exists("users_email"));
    assert_eq!(db.versions(), [20240101000000]);
}

#[test]
fn golang_migrate_and_flyway_undo_files_pair_with_their_versions() {
    let context = MigrateContext::new(&[("golang", &[]), ("flyway", &[])]);
    context
        .write("golang", "1_users.up.sql", "CREATE TABLE users (id int);\n")
        .write("golang", "1_users.down.sql", "DROP TABLE users;\n")
        .write("golang", "2_emails.up.sql", "CREATE TABLE emails (id int);\n")
        .write("golang", "2_emails.down.sql", "DROP TABLE emails;\n");
    context
        .write("flyway", "V1__users.sql", "CREATE TABLE users (id int);\n")
        .write("flyway", "V2__orders.sql", "CREATE TABLE orders (id int);\n")
        // Flyway pairs an undo file by version; its description may differ.
        .write("flyway", "U2__drop_orders.sql", "DROP TABLE orders;\n");
    let (golang, flyway) = (TestDb::new("golang"), TestDb::new("flyway"));
    let dbs = [("golang", &golang), ("flyway", &flyway)];
    context.run_with_dbs(&["migrate"], &dbs).expect_code(0);
    assert!(golang.table_exists("emails") && flyway.table_exists("orders"));
    context.run_with_dbs(&["migrate", "down", "golang", "--to", "1", "--yes"], &dbs).expect_code(0);
    context.run_with_dbs(&["migrate", "down", "flyway", "--to", "1", "--yes"], &dbs).expect_code(0);
    assert!(golang.table_exists("users") && !golang.table_exists("emails"));
    assert!(flyway.table_exists("users") && !flyway.table_exists("orders"));
}

#[test]
fn every_file_plat_cannot_follow_is_listed_in_one_run() {
    let context = MigrateContext::new(&[("user-service", &[])]);
    context
        .write("user-service", "V1__users.sql", "CREATE TABLE users (id int);\n")
        .write("user-service", "V1.1__emails.sql", "CREATE TABLE emails (id int);\n")
        .write("user-service", "V17_2__phones.sql", "CREATE TABLE phones (id int);\n")
        .write("user-service", "R__views.sql", "CREATE OR REPLACE VIEW v AS SELECT 1;\n")
        .write("user-service", "V3__backfill.rs", "// refinery\n")
        .write("user-service", "4_env.sql", "-- +goose Up\n-- +goose ENVSUB ON\nCREATE ROLE ${APP_ROLE};\n")
        .write("user-service", "5_open.sql", "-- +goose Up\n-- +goose StatementBegin\nSELECT 1;\n")
        .write("user-service", "6_sideways.sql", "-- migrate:sideways\nSELECT 1;\n");
    let db = TestDb::new("foreign");
    let run = context.migrate(&[], &db).expect_code(1);
    let dir = "services/user-service/migrations";
    for expected in [
        "user-service: 7 problems with the migration files; nothing was run".to_owned(),
        format!("`{dir}/V1.1__emails.sql` is not a migration file name: Flyway's dotted version `1.1`"),
        format!("`{dir}/V17_2__phones.sql` is not a migration file name: Flyway's dotted version `17_2`"),
        format!("`{dir}/R__views.sql` is not a migration file name: a Flyway repeatable migration"),
        format!("`{dir}/V3__backfill.rs` is not a migration file name: a Rust migration (refinery)"),
        format!("`{dir}/4_env.sql`:2: `-- +goose ENVSUB ON` is not an annotation plat can follow"),
        format!("`{dir}/5_open.sql`:2: `-- +goose StatementBegin` has no `-- +goose StatementEnd`"),
        format!("`{dir}/6_sideways.sql`:1: `-- migrate:sideways` is neither `up` nor `down`"),
    ] {
        assert!(run.stderr.contains(&expected), "missing {expected:?} in\n{}", run.stderr);
    }
    assert!(run.stderr.contains("hint: plat follows goose's Up, Down"), "{}", run.stderr);
    assert!(!db.exists(), "nothing is touched before the files are right");
}

#[test]
fn every_pending_file_that_breaks_the_transaction_rules_is_listed_at_once() {
    let context = MigrateContext::new(&[("user-service", &[])]);
    context
        .write("user-service", "1_a.up.sql", "BEGIN;\nCREATE TABLE a (x int);\nCOMMIT;\n")
        .write("user-service", "2_b.up.sql", "CREATE TABLE b (x int);\nCOMMIT;\n")
        .write("user-service", "3_c.sql", "-- +goose NO TRANSACTION\n-- +goose Up\nSELECT 1;\nSELECT 2;\n");
    let db = TestDb::new("rules");
    let run = context.migrate(&[], &db).expect_code(1);
    assert!(run.stderr.contains("3 problems with the migration files"), "{}", run.stderr);
    assert!(run.stderr.contains("1_a.up.sql`:1: `BEGIN` would end the transaction"), "{}", run.stderr);
    assert!(run.stderr.contains("2_b.up.sql`:2: `COMMIT` would end the transaction"), "{}", run.stderr);
    assert!(run.stderr.contains("3_c.sql`:4: a no-transaction file must hold exactly one statement"), "{}", run.stderr);
    assert!(!db.table_exists("a") && !db.table_exists("b"));
}
