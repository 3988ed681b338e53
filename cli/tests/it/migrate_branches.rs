//! Development databases follow the branch: migrations another branch applied are named as
//! such, with the ways out, and `plat db reset` starts a database over from this branch's files.

use crate::migrate::{MigrateContext, OpenSession, TestDb};

fn migrated_on_another_branch() -> (MigrateContext, TestDb) {
    let context = MigrateContext::new(&[("user-service", &[])]);
    context.write("user-service", "1_users.sql", "CREATE TABLE users (id int);\n").write(
        "user-service",
        "2_feature.sql",
        "CREATE TABLE feature (id int);\n",
    );
    let db = TestDb::new("branch");
    context.migrate(&[], &db).expect_code(0);
    // Back on main: the feature branch's migration is not in this checkout.
    context.remove("user-service", "2_feature.sql");
    (context, db)
}

#[test]
fn a_migration_from_another_branch_is_named_with_the_ways_out() {
    let (context, db) = migrated_on_another_branch();
    let run = context.migrate(&[], &db).expect_code(1);
    assert!(
        run.stderr.contains(
            "version 2 (feature) is applied, and no file here has it: newer than every migration of this checkout, \
             it was most likely applied from another branch"
        ),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("on the branch that has the file: `plat migrate down user-service --to 1 --yes` undoes it"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("`plat db reset user-service` drops it and migrates it again"), "{}", run.stderr);
    assert_eq!(db.versions(), [1, 2]);
}

#[test]
fn db_reset_asks_first_then_drops_and_migrates_again() {
    let (context, db) = migrated_on_another_branch();
    let url = db.url();
    // Nobody to ask (no terminal), no --yes: nothing happens.
    let run = context.run(&["db", "reset", "user-service", "--database-url", &url], &[]).expect_code(1);
    assert!(run.stderr.contains("not resetting"), "{}", run.stderr);
    assert!(run.stderr.contains("there is nobody here to ask"), "{}", run.stderr);
    assert!(run.stderr.contains("hint: pass --yes"), "{}", run.stderr);
    assert_eq!(db.versions(), [1, 2]);

    // A service still connected does not stop the reset.
    let session = OpenSession::new(&url, "SELECT 1");
    let run = context.run(&["db", "reset", "user-service", "--yes", "--database-url", &url], &[]).expect_code(0);
    drop(session);
    assert!(run.stderr.contains(&format!("Dropped database `{}` of user-service", db.name)), "{}", run.stderr);
    assert!(run.stderr.contains("Applied user-service 1_users.sql"), "{}", run.stderr);
    assert!(
        run.stderr.contains(&format!(
            "Reset user-service: database `{}` migrated again from this checkout's files, 1 applied",
            db.name
        )),
        "{}",
        run.stderr
    );
    assert_eq!(db.versions(), [1]);
    assert!(db.table_exists("users") && !db.table_exists("feature"));
    context.migrate(&[], &db).expect_code(0);
}

#[test]
fn db_reset_never_drops_the_servers_own_database() {
    let context = MigrateContext::new(&[("user-service", &[])]);
    let url = crate::migrate::server_url();
    let run = context.run(&["db", "reset", "user-service", "--yes", "--database-url", &url], &[]).expect_code(1);
    assert!(run.stderr.contains("is one of the server's own databases; plat never drops it"), "{}", run.stderr);
}
