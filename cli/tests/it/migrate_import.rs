//! A team switching to plat keeps its history: another tool's history table stops a run that
//! would apply everything again, and `plat migrate import` takes the history over.

use crate::migrate::{MigrateContext, TestDb, query, server_url};

fn database_with(label: &str, sql: &str) -> TestDb {
    let db = TestDb::new(label);
    query(&server_url(), &format!("CREATE DATABASE \"{}\"", db.name));
    db.query(sql);
    db
}

#[test]
fn golang_migrate_history_stops_a_run_until_imported() {
    let context = MigrateContext::new(&[("user-service", &[])]);
    context
        .write("user-service", "1_users.up.sql", "CREATE TABLE users (id int);\n")
        .write("user-service", "1_users.down.sql", "DROP TABLE users;\n")
        .write("user-service", "2_emails.up.sql", "CREATE TABLE emails (id int);\n")
        .write("user-service", "3_phones.up.sql", "CREATE TABLE phones (id int);\n");
    // What golang-migrate left: versions 1 and 2 applied.
    let db = database_with(
        "golang_import",
        "CREATE TABLE users (id int); CREATE TABLE emails (id int);
         CREATE TABLE schema_migrations (version bigint NOT NULL PRIMARY KEY, dirty boolean NOT NULL);
         INSERT INTO schema_migrations VALUES (2, false);",
    );
    let run = context.migrate(&[], &db).expect_code(1);
    assert!(
        run.stderr.contains(&format!(
            "database `{}` has golang-migrate's history (`schema_migrations`) and none of plat's: applying would run \
             again what golang-migrate applied",
            db.name
        )),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("`plat migrate import user-service`"), "{}", run.stderr);
    assert!(!db.table_exists("phones"));

    let run = context.migrate(&["import", "user-service"], &db).expect_code(0);
    assert!(
        run.stderr.contains(
            "Imported user-service: 2 migrations applied by golang-migrate (schema_migrations), recorded without \
             running them; the newest is 2_emails.up.sql"
        ),
        "{}",
        run.stderr
    );
    assert_eq!(db.versions(), [1, 2]);
    context.migrate(&[], &db).expect_code(0);
    assert_eq!(db.versions(), [1, 2, 3]);
    assert!(db.table_exists("phones"));
    // Once only.
    let again = context.migrate(&["import", "user-service"], &db).expect_code(1);
    assert!(again.stderr.contains("import takes over a history only once"), "{}", again.stderr);
}

#[test]
fn goose_history_is_replayed_downs_included() {
    let context = MigrateContext::new(&[("user-service", &[])]);
    context
        .write(
            "user-service",
            "00001_users.sql",
            "-- +goose Up\nCREATE TABLE users (id int);\n-- +goose Down\nDROP TABLE users;\n",
        )
        .write(
            "user-service",
            "00002_emails.sql",
            "-- +goose Up\nCREATE TABLE emails (id int);\n-- +goose Down\nDROP TABLE emails;\n",
        );
    // goose applied 1 and 2, then rolled 2 back.
    let db = database_with(
        "goose_import",
        "CREATE TABLE users (id int);
         CREATE TABLE goose_db_version (id serial PRIMARY KEY, version_id bigint NOT NULL, is_applied boolean NOT NULL,
                                        tstamp timestamp DEFAULT now());
         INSERT INTO goose_db_version (version_id, is_applied) VALUES (0, true), (1, true), (2, true), (2, false);",
    );
    context.migrate(&[], &db).expect_code(1);
    context.migrate(&["import", "user-service", "--from", "goose"], &db).expect_code(0);
    assert_eq!(db.versions(), [1]);
    context.migrate(&[], &db).expect_code(0);
    assert!(db.table_exists("emails"));
}

#[test]
fn a_dirty_or_fileless_history_is_not_imported() {
    let context = MigrateContext::new(&[("user-service", &[])]);
    context.write("user-service", "1_users.up.sql", "CREATE TABLE users (id int);\n");
    let dirty = database_with(
        "dirty_import",
        "CREATE TABLE schema_migrations (version bigint NOT NULL PRIMARY KEY, dirty boolean NOT NULL);
         INSERT INTO schema_migrations VALUES (1, true);",
    );
    let run = context.migrate(&["import", "user-service"], &dirty).expect_code(1);
    assert!(run.stderr.contains("golang-migrate left version 1 dirty"), "{}", run.stderr);
    assert_eq!(dirty.versions(), Vec::<i64>::new());

    let fileless = database_with(
        "fileless_import",
        "CREATE TABLE _sqlx_migrations (version bigint PRIMARY KEY, description text, success boolean NOT NULL,
                                        checksum bytea, execution_time bigint);
         INSERT INTO _sqlx_migrations (version, success) VALUES (1, true), (7, true);",
    );
    let run = context.migrate(&["import", "user-service"], &fileless).expect_code(1);
    assert!(
        run.stderr.contains("cannot import sqlx's history (`_sqlx_migrations`): no migration file has version 7"),
        "{}",
        run.stderr
    );
}
