//! Nothing a migration run waits for is waited for forever: a server that never answers, a lock
//! another session holds, a statement that runs too long. Each ends with an error that names
//! what it waited for.

use std::time::{Duration, Instant};

use crate::migrate::{MigrateContext, OpenSession, TestDb};

#[test]
fn a_server_that_accepts_and_never_answers_times_out() {
    // Takes TCP connections and says nothing: a hung server, a proxy with nothing behind it.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming() {
            held.push(stream);
        }
    });
    let context = MigrateContext::new(&[("user-service", &[])]);
    context.write("user-service", "1_users.sql", "CREATE TABLE users (id int);");
    let url = format!("postgres://postgres@127.0.0.1:{port}/users?connect_timeout=1");
    let started = Instant::now();
    let run = context.run(&["migrate", "--database-url", &url], &[]).expect_code(1);
    assert!(started.elapsed() < Duration::from_secs(8), "took {:?}", started.elapsed());
    assert!(
        run.stderr.contains(&format!(
            "error: user-service: cannot connect to postgres://postgres@127.0.0.1:{port}/users: no answer within 1s"
        )),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("never finished PostgreSQL's startup handshake"), "{}", run.stderr);
}

#[test]
fn a_lock_held_by_another_session_ends_at_the_statement_lock_timeout() {
    let context = MigrateContext::new(&[("user-service", &[])]);
    context.write("user-service", "1_users.sql", "CREATE TABLE users (id int);");
    let db = TestDb::new("locked");
    context.migrate(&[], &db).expect_code(0);
    context.write("user-service", "2_email.sql", "ALTER TABLE users ADD COLUMN email text;");

    // Someone reads `users` in a transaction left open: ALTER TABLE needs it alone.
    let session = OpenSession::new(&db.url(), "BEGIN; SELECT * FROM users;");
    let started = Instant::now();
    let run = context.migrate(&["--statement-lock-timeout", "1s"], &db).expect_code(1);
    assert!(started.elapsed() < Duration::from_secs(8), "took {:?}", started.elapsed());
    // Who holds the lock is named while plat waits, and in the error.
    let holder = db.scalar(&format!(
        "SELECT pid FROM pg_stat_activity WHERE datname = '{}' AND state = 'idle in transaction'",
        db.name
    ));
    let named = format!(
        "for a lock on `users` held by pid {holder}, idle in transaction, last query `BEGIN; SELECT * FROM users;`"
    );
    assert!(
        run.stderr.contains(&format!("Waiting user-service 2_email.sql: waits {named}; gives up after 1s")),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains(&format!(
            "2_email.sql: stopped by the server after waiting 1s {named} (the statement lock timeout) (SQLSTATE 55P03)"
        )),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains(&format!("pg_terminate_backend({holder})")), "{}", run.stderr);
    assert!(run.stderr.contains("--statement-lock-timeout"), "{}", run.stderr);
    assert!(run.stderr.contains("nothing of 2_email.sql was applied"), "{}", run.stderr);
    assert_eq!(db.versions(), [1]);

    // The workspace's setting, when no flag is given.
    let manifest = std::fs::read_to_string(context.context.workspace.join("workspace.toml")).unwrap();
    let manifest = manifest.replacen(
        "[workspace]\nname = \"p\"\n",
        "[workspace]\nname = \"p\"\nmigrate = { statement_lock_timeout = \"300ms\" }\n",
        1,
    );
    context.context.manifest(&manifest);
    let run = context.migrate(&[], &db).expect_code(1);
    assert!(run.stderr.contains("after waiting 0.3s for a lock"), "{}", run.stderr);

    drop(session);
    context.migrate(&[], &db).expect_code(0);
    assert_eq!(db.versions(), [1, 2]);
}

#[test]
fn a_statement_that_runs_too_long_ends_at_the_statement_timeout() {
    let context = MigrateContext::new(&[("user-service", &[])]);
    context.write("user-service", "1_slow.sql", "CREATE TABLE slow (id int);\nSELECT pg_sleep(30);\n");
    let db = TestDb::new("slow");
    let started = Instant::now();
    let run = context.migrate(&["--statement-timeout", "500ms"], &db).expect_code(1);
    assert!(started.elapsed() < Duration::from_secs(10), "took {:?}", started.elapsed());
    assert!(
        run.stderr
            .contains("1_slow.sql: stopped by the server after running 0.5s (the statement timeout) (SQLSTATE 57014)"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("raise --statement-timeout"), "{}", run.stderr);
    assert!(!db.table_exists("slow"));
}

/// libpq's conventions: what the URL leaves out comes from PG* variables, as psql takes it.
#[test]
fn pg_variables_fill_what_the_url_leaves_out() {
    let server: tokio_postgres::Config = crate::migrate::server_url().parse().unwrap();
    let host = match &server.get_hosts()[0] {
        tokio_postgres::config::Host::Tcp(host) => host.clone(),
        other => panic!("{other:?}"),
    };
    let port = server.get_ports()[0].to_string();
    let user = server.get_user().unwrap().to_owned();
    let context = MigrateContext::new(&[("user-service", &[])]);
    context.write("user-service", "1_users.sql", "CREATE TABLE users (id int);");
    let db = TestDb::new("pgenv");
    let url = format!("postgres:///{}", db.name);
    let env = [("PGHOST", host.as_str()), ("PGPORT", port.as_str()), ("PGUSER", user.as_str())];
    context.run(&["migrate", "--database-url", &url], &env).expect_code(0);
    assert!(db.table_exists("users"));

    // PGSSLMODE is read too (what each mode does: migrate_tls.rs, against servers of its own).
    let run = context.run(&["migrate", "--database-url", &url], &[env[0], env[1], env[2], ("PGSSLMODE", "always")]);
    let run = run.expect_code(2);
    assert!(run.stderr.contains("PGSSLMODE `always` is not an sslmode"), "{}", run.stderr);
}
