//! `plat migrate status`, `new`, `down`, `repair` (with the safety tests), URLs, passwords,
//! exit codes and help.

use crate::migrate::{MigrateContext, TestDb, with_database};

fn files(context: &MigrateContext, service: &str) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(context.dir(service))
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn new_continues_each_format() {
    let context = MigrateContext::new(&[
        ("plain", &[]),
        ("padded", &[]),
        ("updown", &[]),
        ("flyway", &[]),
        ("stamped", &[]),
        ("empty", &[]),
    ]);
    context.write("plain", "1_a.sql", "").write("plain", "2_b.sql", "");
    context.write("padded", "0009_a.sql", "");
    context.write("updown", "3_a.up.sql", "").write("updown", "3_a.down.sql", "");
    context.write("flyway", "V7__a.sql", "");
    context.write("stamped", "20200101000000_a.up.sql", "");

    let new = |service: &str, name: &str| context.run(&["migrate", "new", service, name], &[]).expect_code(0);
    let run = new("plain", "Add Users");
    assert_eq!(run.stdout, "services/plain/migrations/3_add_users.sql\n");
    assert!(run.stderr.contains("Created plain migration services/plain/migrations/3_add_users.sql"), "{}", run.stderr);
    assert_eq!(files(&context, "plain"), ["1_a.sql", "2_b.sql", "3_add_users.sql"]);
    new("padded", "b");
    assert_eq!(files(&context, "padded"), ["0009_a.sql", "0010_b.sql"]);
    let run = new("updown", "b");
    assert_eq!(run.stdout, "services/updown/migrations/4_b.up.sql\nservices/updown/migrations/4_b.down.sql\n");
    assert_eq!(files(&context, "updown"), ["3_a.down.sql", "3_a.up.sql", "4_b.down.sql", "4_b.up.sql"]);
    new("flyway", "b");
    assert_eq!(files(&context, "flyway"), ["V7__a.sql", "V8__b.sql"]);

    // Timestamps continue as UTC timestamps; no migration yet starts with one.
    let is_stamp = |name: &str, suffix: &str| {
        name.strip_suffix(suffix).is_some_and(|version| {
            version.len() == 14 && version.starts_with("20") && version.bytes().all(|b| b.is_ascii_digit())
        })
    };
    new("stamped", "b");
    let stamped = files(&context, "stamped");
    assert_eq!(stamped.len(), 3, "{stamped:?}");
    assert!(stamped.iter().any(|name| is_stamp(name, "_b.up.sql")), "{stamped:?}");
    assert!(stamped.iter().any(|name| is_stamp(name, "_b.down.sql")), "{stamped:?}");
    new("empty", "first");
    let empty = files(&context, "empty");
    assert!(empty.len() == 1 && is_stamp(&empty[0], "_first.sql"), "{empty:?}");
    assert_eq!(
        std::fs::read_to_string(context.dir("empty").join(&empty[0])).unwrap(),
        "-- Add migration script here\n"
    );

    // Nothing usable in the name is a usage error.
    context.run(&["migrate", "new", "plain", "--", "--"], &[]).expect_code(2);
}

#[test]
fn down_lists_without_yes_and_undoes_with_it() {
    let context = MigrateContext::new(&[("user-service", &[])]);
    context
        .write("user-service", "1_users.up.sql", "CREATE TABLE users (id int);")
        .write("user-service", "1_users.down.sql", "DROP TABLE users;")
        .write("user-service", "2_emails.up.sql", "CREATE TABLE emails (id int);")
        .write("user-service", "2_emails.down.sql", "DROP TABLE emails;")
        .write("user-service", "3_orders.up.sql", "CREATE TABLE orders (id int);")
        .write("user-service", "3_orders.down.sql", "DROP TABLE orders;");
    let db = TestDb::new("down");
    context.migrate(&[], &db).expect_code(0);

    let run = context.migrate(&["down", "user-service", "--to", "1"], &db).expect_code(1);
    assert_eq!(
        run.stdout,
        format!(
            "would undo, newest first, in database `{}`:\n  3  orders  with services/user-service/migrations/3_orders.down.sql\n  \
             2  emails  with services/user-service/migrations/2_emails.down.sql\n",
            db.name
        )
    );
    assert!(run.stderr.contains("error: user-service: nothing undone without --yes"), "{}", run.stderr);
    assert!(run.stderr.contains("plat migrate down user-service --to 1 --yes"), "{}", run.stderr);
    assert_eq!(db.versions(), [1, 2, 3]);
    assert!(db.table_exists("orders"));

    let run = context.migrate(&["down", "user-service", "--to", "1", "--yes"], &db).expect_code(0);
    let orders_at = run.stderr.find("Undone user-service 3_orders.up.sql with 3_orders.down.sql").expect(&run.stderr);
    let emails_at = run.stderr.find("Undone user-service 2_emails.up.sql").expect(&run.stderr);
    assert!(orders_at < emails_at, "newest first: {}", run.stderr);
    assert_eq!(db.versions(), [1]);
    assert!(db.table_exists("users") && !db.table_exists("emails") && !db.table_exists("orders"));

    let run = context.migrate(&["down", "user-service", "--to", "1", "--yes"], &db).expect_code(0);
    assert!(run.stderr.contains("nothing to undo"), "{}", run.stderr);

    // Undone migrations are pending again.
    context.migrate(&[], &db).expect_code(0);
    assert_eq!(db.versions(), [1, 2, 3]);

    // A failing down file leaves its migration applied.
    context.write("user-service", "3_orders.down.sql", "DROP TABLE orders;\nSELECT * FROM nope;");
    let run = context.migrate(&["down", "user-service", "--to", "0", "--yes"], &db).expect_code(1);
    assert!(run.stderr.contains("3_orders.down.sql:2:15: relation \"nope\" does not exist"), "{}", run.stderr);
    assert!(
        run.stderr.contains("hint: nothing of 3_orders.down.sql was applied: version 3 stays applied"),
        "{}",
        run.stderr
    );
    assert_eq!(db.versions(), [1, 2, 3]);
    assert!(db.table_exists("orders"));
}

#[test]
fn down_refuses_migrations_without_a_down_file() {
    let context = MigrateContext::new(&[("user-service", &[])]);
    context
        .write("user-service", "1_users.up.sql", "CREATE TABLE users (id int);")
        .write("user-service", "1_users.down.sql", "DROP TABLE users;")
        .write("user-service", "V2__flyway.sql", "CREATE TABLE flyway (id int);");
    let db = TestDb::new("nodown");
    context.migrate(&[], &db).expect_code(0);
    for yes in [&[][..], &["--yes"][..]] {
        let mut args = vec!["down", "user-service", "--to", "0"];
        args.extend(yes);
        let run = context.migrate(&args, &db).expect_code(1);
        assert!(
            run.stderr.contains("cannot undo `services/user-service/migrations/V2__flyway.sql`: no `.down.sql` file"),
            "{}",
            run.stderr
        );
    }
    assert_eq!(db.versions(), [1, 2]);
}

/// Applied, pending, changed and missing, each in the table and in JSON.
#[test]
fn status_shows_every_state() {
    let context = MigrateContext::new(&[("user-service", &[]), ("order-service", &["user-service"])]);
    context
        .write("user-service", "1_users.sql", "CREATE TABLE users (id int);")
        .write("user-service", "2_emails.sql", "CREATE TABLE emails (id int);")
        .write("user-service", "3_gone.sql", "CREATE TABLE gone (id int);")
        .write("user-service", "5_names.sql", "CREATE TABLE names (id int);")
        .write("order-service", "V1__orders.sql", "CREATE TABLE orders (id int);");
    let (users, orders) = (TestDb::new("status_users"), TestDb::new("status_orders"));
    context.run_with_dbs(&["migrate", "user-service"], &[("user-service", &users)]).expect_code(0);
    context.write("user-service", "2_emails.sql", "CREATE TABLE emails (id bigint);");
    context.remove("user-service", "3_gone.sql");
    context.write("user-service", "4_late.sql", "CREATE TABLE late (id int);");
    context.write("user-service", "6_next.sql", "CREATE TABLE next (id int);");

    let dbs = [("user-service", &users), ("order-service", &orders)];
    // A changed and a missing file: status exits 1, so that CI can gate on it.
    let run = context.run_with_dbs(&["migrate", "status"], &dbs).expect_code(1);
    assert!(run.stderr.contains("hint: restore the applied file"), "{}", run.stderr);
    insta::with_settings!({filters => vec![
        (r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ \(\d+ms\)", "[applied-at] ([ms])"),
        (r"postgres://\S+", "[url]"),
        (r"plat_t_\w+", "[database]"),
    ]}, {
        insta::assert_snapshot!(run.stdout);
    });
    assert!(!orders.exists(), "status never creates a database");

    let json = context.run_with_dbs(&["migrate", "status", "--json"], &dbs).expect_code(1).json();
    let states: Vec<(i64, &str, bool)> = json[0]["migrations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["version"].as_i64().unwrap(), m["state"].as_str().unwrap(), m["out_of_order"].as_bool().unwrap()))
        .collect();
    assert_eq!(
        states,
        [
            (1, "applied", false),
            (2, "changed", false),
            (3, "missing", false),
            (4, "pending", true),
            (5, "applied", false),
            (6, "pending", false)
        ]
    );
    // The fields of each state, asserted as what they mean rather than snapshotted as digests.
    let sha256 = |value: &serde_json::Value| {
        value.as_str().is_some_and(|text| text.len() == 64 && text.chars().all(|c| c.is_ascii_hexdigit()))
    };
    let users = &json[0];
    assert_eq!(
        (users["service"].as_str(), users["database_exists"].as_bool(), users["error"].is_null()),
        (Some("user-service"), Some(true), true)
    );
    let counts: Vec<i64> = ["applied", "pending", "changed", "missing", "failed"]
        .iter()
        .map(|key| users[*key].as_i64().unwrap())
        .collect();
    assert_eq!(counts, [2, 2, 1, 1, 0]);
    for migration in users["migrations"].as_array().unwrap() {
        let (checksum, applied) = (&migration["checksum"], &migration["applied_checksum"]);
        match migration["state"].as_str().unwrap() {
            "applied" => {
                assert!(sha256(checksum) && checksum == applied, "the file is what was applied: {migration}");
                assert!(migration["applied_at"].is_string() && migration["execution_ms"].is_number(), "{migration}");
            }
            "changed" => assert!(sha256(checksum) && sha256(applied) && checksum != applied, "{migration}"),
            "missing" => assert!(
                migration["file"].is_null() && checksum.is_null() && sha256(applied),
                "only the history knows it: {migration}"
            ),
            "pending" => assert!(
                sha256(checksum) && applied.is_null() && migration["applied_at"].is_null(),
                "not applied yet: {migration}"
            ),
            other => panic!("unexpected state {other}: {migration}"),
        }
        if let Some(file) = migration["file"].as_str() {
            assert!(file.starts_with("services/user-service/migrations/"), "{file}");
        }
    }
    let orders = &json[1];
    assert_eq!((orders["service"].as_str(), orders["database_exists"].as_bool()), (Some("order-service"), Some(false)));
    assert_eq!(orders["migrations"][0]["file"], "services/order-service/migrations/V1__orders.sql");
    assert_eq!(orders["migrations"][0]["state"], "pending");
}

#[test]
fn passwords_never_show() {
    let context = MigrateContext::new(&[("user-service", &[])]);
    context.write("user-service", "1_users.sql", "CREATE TABLE users (id int);").write(
        "user-service",
        "2_bad.sql",
        "SELEC 1;",
    );
    let db = TestDb::new("masked");
    // Trust authentication ignores the password; plat must still never show it.
    let url = db.url().replacen("://postgres@", "://postgres:Sup3r-Secr3t@", 1);
    assert!(url.contains("Sup3r-Secr3t"), "the test URL has the user postgres: {url}");
    let env = [("DATABASE_URL_USER_SERVICE", url.as_str())];
    let runs = [
        context.run(&["migrate"], &env),
        context.run(&["migrate", "status"], &env),
        context.run(&["migrate", "status", "--json"], &env),
        context.run(&["migrate", "--database-url", &url], &[]),
        context.run(&["-vv", "migrate", "status"], &env),
        context.run(
            &[
                "migrate",
                "status",
                "--database-url",
                &with_database("postgres://postgres:Sup3r-Secr3t@127.0.0.1:1", "x"),
            ],
            &[],
        ),
    ];
    for run in &runs {
        assert!(
            !run.stdout.contains("Secr3t") && !run.stderr.contains("Secr3t"),
            "password shown:\n{}\n{}",
            run.stdout,
            run.stderr
        );
    }
    assert!(runs[1].stdout.contains("postgres://postgres:****@"), "{}", runs[1].stdout);
    assert!(runs[2].json()[0]["url"].as_str().unwrap().starts_with("postgres://postgres:****@"), "{}", runs[2].stdout);
    assert!(runs[5].stdout.contains("cannot connect to postgres://postgres:****@127.0.0.1:1/x"), "{}", runs[5].stdout);
    assert_eq!(runs[5].code, 1, "an unreachable database is a failure, not a usage error");
}

#[test]
fn urls_and_exit_codes() {
    let context = MigrateContext::new(&[("user-service", &[]), ("order-service", &[])]);
    let manifest = std::fs::read_to_string(context.context.workspace.join("workspace.toml")).unwrap();
    context.context.manifest(&format!("{manifest}[services.api-gateway]\n"));

    // No URL, and no database container of workspace `p` runs (tests that start one name
    // their workspaces uniquely): see migrate_container.rs.
    let run = context.run(&["migrate", "user-service"], &[]).expect_code(2);
    assert!(
        run.stderr.starts_with(
            "error: no database URL for user-service: pass --database-url, set DATABASE_URL_USER_SERVICE, or start \
             the platform's database with `plat db start`\n"
        ),
        "{}",
        run.stderr
    );
    let run = context.run(&["migrate"], &[]).expect_code(2);
    assert!(
        run.stderr.contains("DATABASE_URL_ORDER_SERVICE") && run.stderr.contains("DATABASE_URL_USER_SERVICE"),
        "{}",
        run.stderr
    );
    let run = context.run(&["migrate", "api-gateway", "--database-url", "postgres://h"], &[]).expect_code(2);
    assert!(run.stderr.contains("api-gateway has no database in workspace.toml"), "{}", run.stderr);
    let run = context.run(&["migrate", "user-servise"], &[]).expect_code(2);
    assert!(run.stderr.contains("did you mean `user-service`?"), "{}", run.stderr);
    let run = context.run(&["migrate", "--database-url", "postgres://h/shared"], &[]).expect_code(2);
    assert!(
        run.stderr.contains("--database-url names database `shared`, and 2 services are selected"),
        "{}",
        run.stderr
    );
    let run = context
        .run(
            &["migrate"],
            &[("DATABASE_URL_USER_SERVICE", "postgres://h/same"), ("DATABASE_URL_ORDER_SERVICE", "postgres://h/same")],
        )
        .expect_code(2);
    assert!(run.stderr.contains("order-service and user-service both resolve to database `same`"), "{}", run.stderr);
    context.run(&["migrate", "--lock-timeout", "soon", "--database-url", "postgres://h"], &[]).expect_code(2);
    context.run(&["migrate", "down", "user-service"], &[]).expect_code(2);

    // The server is not there: the work failed.
    let run = context
        .run(&["migrate", "user-service", "--database-url", "postgres://postgres@127.0.0.1:1/x"], &[])
        .expect_code(1);
    assert!(
        run.stderr.contains("error: user-service: cannot connect to postgres://postgres@127.0.0.1:1/x"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("hint: is the server running?"), "{}", run.stderr);
}

#[test]
fn every_subcommand_has_examples() {
    let context = MigrateContext::new(&[]);
    for command in [
        &["migrate"][..],
        &["migrate", "apply"],
        &["migrate", "status"],
        &["migrate", "new"],
        &["migrate", "repair"],
        &["migrate", "down"],
    ] {
        let mut args = command.to_vec();
        args.push("--help");
        let help = context.run(&args, &[]).expect_code(0).stdout;
        assert!(help.contains("Examples:"), "`plat {}` has no examples:\n{help}", command.join(" "));
    }
}
