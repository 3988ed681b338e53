//! `plat migrate` applying migrations: formats, history, transactions, errors with their line.

use crate::migrate::{MigrateContext, TestDb, server_url_without_database};

#[test]
fn applies_in_order_creates_the_database_and_records_history() {
    let context = MigrateContext::new(&[("user-service", &[])]);
    context
        .write("user-service", "1_create_users.sql", "CREATE TABLE users (id bigint PRIMARY KEY, email text);\n")
        .write(
            "user-service",
            "2_add_name.sql",
            "ALTER TABLE users ADD COLUMN name text;\nINSERT INTO users VALUES (1, 'a@b', 'a');\n",
        );
    let db = TestDb::new("apply");
    assert!(!db.exists());

    let run = context.migrate(&[], &db).expect_code(0);
    assert!(run.stderr.contains(&format!("Created database `{}` for user-service", db.name)), "{}", run.stderr);
    assert!(run.stderr.contains("Applied user-service 1_create_users.sql"), "{}", run.stderr);
    assert!(run.stderr.contains("Applied user-service 2_add_name.sql"), "{}", run.stderr);
    assert!(db.exists());
    assert_eq!(db.scalar("SELECT name FROM users"), "a");

    // Every column the history promises, with the checksum PostgreSQL itself computes.
    let rows = db.query(
        "SELECT version, name, checksum, applied_at IS NOT NULL, execution_ms >= 0, success FROM plat_migrations ORDER BY version",
    );
    let sha =
        db.scalar("SELECT encode(sha256('CREATE TABLE users (id bigint PRIMARY KEY, email text);\n'::bytea), 'hex')");
    assert_eq!(rows[0], ["1", "create_users", sha.as_str(), "t", "t", "t"].map(|v| Some(v.to_owned())));
    assert_eq!(rows[1][..2], [Some("2".to_owned()), Some("add_name".to_owned())]);

    let again = context.migrate(&[], &db).expect_code(0);
    assert!(again.stderr.contains("Fresh user-service: 2 applied, none pending"), "{}", again.stderr);
    assert_eq!(db.versions(), [1, 2]);
}

#[test]
fn the_manifest_names_the_database_when_the_url_does_not() {
    let context = MigrateContext::new(&[]);
    let db = TestDb::new("by_manifest");
    context.context.manifest(&format!(
        "[workspace]\nname = \"p\"\n[services.user-service]\ndatabase = {{ engine = \"postgres\", name = \"{}\" }}\n",
        db.name
    ));
    std::fs::create_dir_all(context.context.workspace.join("services/user-service")).unwrap();
    context.write("user-service", "1_a.sql", "CREATE TABLE a (x int);");
    let server = server_url_without_database();
    context.run(&["migrate", "--database-url", &server], &[]).expect_code(0);
    assert!(db.exists());
    assert!(db.table_exists("a"));
}

#[test]
fn every_service_with_a_database_in_dependency_order() {
    let context = MigrateContext::new(&[("order-service", &["user-service"]), ("user-service", &[])]);
    let manifest = std::fs::read_to_string(context.context.workspace.join("workspace.toml")).unwrap();
    context.context.manifest(&format!("{manifest}[services.api-gateway]\ndepends_on = [\"order-service\"]\n"));
    context.write("user-service", "1_users.sql", "CREATE TABLE users (id int);");
    context.write("order-service", "1_orders.sql", "CREATE TABLE orders (id int);");
    let (users, orders) = (TestDb::new("users"), TestDb::new("orders"));

    let run =
        context.run_with_dbs(&["migrate"], &[("user-service", &users), ("order-service", &orders)]).expect_code(0);
    let user_at = run.stderr.find("Applied user-service").expect("user-service migrated");
    let order_at = run.stderr.find("Applied order-service").expect("order-service migrated");
    assert!(user_at < order_at, "user-service first, order-service depends on it:\n{}", run.stderr);
    assert!(!run.stderr.contains("api-gateway"), "{}", run.stderr);
    assert!(users.table_exists("users") && !users.table_exists("orders"));
    assert!(orders.table_exists("orders") && !orders.table_exists("users"));

    // Only the service named.
    context.write("user-service", "2_more.sql", "CREATE TABLE more (id int);");
    context.write("order-service", "2_more.sql", "CREATE TABLE more (id int);");
    context
        .run_with_dbs(&["migrate", "order-service"], &[("user-service", &users), ("order-service", &orders)])
        .expect_code(0);
    assert_eq!((users.versions(), orders.versions()), (vec![1], vec![1, 2]));
}

#[test]
fn a_failing_migration_leaves_no_trace_and_the_earlier_ones_stay() {
    let context = MigrateContext::new(&[("user-service", &[])]);
    context
        .write("user-service", "1_users.sql", "CREATE TABLE users (id int PRIMARY KEY, name text);\n")
        .write("user-service", "2_emails.sql", "CREATE TABLE emails (id int);\n")
        .write(
            "user-service",
            "3_orders.sql",
            "CREATE TABLE orders (id int);\nINSERT INTO orders VALUES (1);\n\n-- the mistake:\nSELECT id FROM users WHERE nam = 'x';\n",
        )
        .write("user-service", "4_later.sql", "CREATE TABLE later (id int);\n");
    let db = TestDb::new("failing");

    let run = context.migrate(&[], &db).expect_code(1);
    // The file, the line and column of the error, the server's message and its hint.
    assert!(
        run.stderr.contains(
            "error: user-service: services/user-service/migrations/3_orders.sql:5:28: column \"nam\" does not exist (SQLSTATE 42703)"
        ),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("5 | SELECT id FROM users WHERE nam = 'x';"), "{}", run.stderr);
    assert!(run.stderr.contains("hint: Perhaps you meant to reference the column \"users.name\"."), "{}", run.stderr);
    assert!(run.stderr.contains("nothing of 3_orders.sql was applied"), "{}", run.stderr);
    assert!(run.stderr.contains("the 2 migrations before it in this run stay applied"), "{}", run.stderr);

    assert_eq!(db.versions(), [1, 2]);
    assert!(db.table_exists("users") && db.table_exists("emails"));
    assert!(!db.table_exists("orders"), "the failing migration's table was rolled back");
    assert!(!db.table_exists("later"), "nothing after the failure runs");
}

#[test]
fn errors_show_the_server_detail() {
    let context = MigrateContext::new(&[("user-service", &[])]);
    context.write(
        "user-service",
        "1_dup.sql",
        "CREATE TABLE t (id int PRIMARY KEY);\nINSERT INTO t VALUES (1), (1);\n",
    );
    let db = TestDb::new("detail");
    let run = context.migrate(&[], &db).expect_code(1);
    assert!(
        run.stderr.contains("1_dup.sql: duplicate key value violates unique constraint \"t_pkey\" (SQLSTATE 23505)"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("detail: Key (id)=(1) already exists."), "{}", run.stderr);
    assert!(!db.table_exists("t"));
    assert!(db.versions().is_empty());
}

#[test]
fn crlf_and_lf_copies_have_one_checksum() {
    let lf = "CREATE TABLE a (x int);\nCREATE TABLE b (y text DEFAULT 'two\nlines');\n";
    let crlf = lf.replace('\n', "\r\n");
    let context = MigrateContext::new(&[("unix", &[]), ("windows", &[])]);
    context.write("unix", "1_tables.sql", lf).write("windows", "1_tables.sql", &crlf);
    let (unix, windows) = (TestDb::new("lf"), TestDb::new("crlf"));
    context.run_with_dbs(&["migrate"], &[("unix", &unix), ("windows", &windows)]).expect_code(0);
    assert_eq!(unix.history(), windows.history());
    assert_eq!(unix.history()[0].split('|').nth(2).unwrap(), plat::migrate::Checksum::of(lf).to_hex());
    // The CRLF file ran as LF text: the default value holds no carriage return.
    assert_eq!(
        windows.scalar(
            "SELECT position(E'\\r' in column_default) FROM information_schema.columns WHERE column_name = 'y'"
        ),
        "0"
    );

    // Checking the file out the other way is not a change.
    context.write("unix", "1_tables.sql", &crlf);
    let run = context.run_with_dbs(&["migrate", "unix"], &[("unix", &unix)]).expect_code(0);
    assert!(run.stderr.contains("Fresh unix: 1 applied, none pending"), "{}", run.stderr);
}

#[test]
fn reads_every_naming_format() {
    let context = MigrateContext::new(&[("mixed", &[])]);
    context
        .write("mixed", "0001_plain.sql", "CREATE TABLE plain (x int);")
        .write("mixed", "2_reversible.up.sql", "CREATE TABLE reversible (x int);")
        .write("mixed", "2_reversible.down.sql", "DROP TABLE reversible;")
        .write("mixed", "V3__flyway.sql", "CREATE TABLE flyway (x int);")
        .write("mixed", "20240101120000_timestamped.up.sql", "CREATE TABLE timestamped (x int);")
        .write("mixed", "README.md", "not a migration");
    let db = TestDb::new("formats");
    context.migrate(&[], &db).expect_code(0);
    assert_eq!(db.versions(), [1, 2, 3, 20240101120000]);
    let names: Vec<String> = db
        .query("SELECT name FROM plat_migrations ORDER BY version")
        .into_iter()
        .map(|r| r[0].clone().unwrap())
        .collect();
    assert_eq!(names, ["plain", "reversible", "flyway", "timestamped"]);
}

#[test]
fn two_files_with_one_version_are_named_both() {
    let context = MigrateContext::new(&[("user-service", &[])]);
    context.write("user-service", "1_a.sql", "SELECT 1;").write("user-service", "V1__b.sql", "SELECT 1;");
    let db = TestDb::new("duplicate");
    let run = context.migrate(&[], &db).expect_code(1);
    assert!(
        run.stderr.contains(
            "error: user-service: version 1 is used by two files: `services/user-service/migrations/1_a.sql` and `services/user-service/migrations/V1__b.sql`"
        ),
        "{}",
        run.stderr
    );
    assert!(!db.exists(), "nothing is touched before the files are right");

    context.remove("user-service", "V1__b.sql");
    context.write("user-service", "create_users.sql", "SELECT 1;");
    let run = context.migrate(&[], &db).expect_code(1);
    assert!(
        run.stderr.contains("`services/user-service/migrations/create_users.sql` is not a migration file name"),
        "{}",
        run.stderr
    );
}

#[test]
fn no_transaction_files_run_outside_a_transaction() {
    let context = MigrateContext::new(&[("user-service", &[])]);
    context.write("user-service", "1_users.sql", "CREATE TABLE users (id int, email text);\n").write(
        "user-service",
        "2_index.sql",
        "-- plat:no-transaction\nCREATE INDEX CONCURRENTLY users_email ON users (email);\n",
    );
    let db = TestDb::new("notx");
    context.migrate(&[], &db).expect_code(0);
    assert_eq!(db.versions(), [1, 2]);
    assert_eq!(db.scalar("SELECT indisvalid FROM pg_index WHERE indexrelid = 'users_email'::regclass"), "t");

    // Without the directive, PostgreSQL refuses it inside the transaction, and plat says what to do.
    context.write("user-service", "3_index.sql", "CREATE INDEX CONCURRENTLY users_id ON users (id);\n");
    let run = context.migrate(&[], &db).expect_code(1);
    assert!(run.stderr.contains("cannot run inside a transaction block (SQLSTATE 25001)"), "{}", run.stderr);
    assert!(run.stderr.contains("first line is `-- plat:no-transaction`"), "{}", run.stderr);
    context.remove("user-service", "3_index.sql");

    // One statement per no-transaction file: refused before anything runs.
    context
        .write("user-service", "3_fine.sql", "CREATE TABLE fine (x int);")
        .write("user-service", "4_two.sql", "-- plat:no-transaction\nCREATE INDEX CONCURRENTLY a ON users (id);\nCREATE INDEX CONCURRENTLY b ON users (email);\n");
    let run = context.migrate(&[], &db).expect_code(1);
    assert!(
        run.stderr.contains("services/user-service/migrations/4_two.sql`:3: a no-transaction file must hold exactly one statement, this one has 2"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("hint: split it"), "{}", run.stderr);
    assert!(!db.table_exists("fine"), "the check comes before any migration runs");
}

#[test]
fn a_failing_no_transaction_file_records_nothing() {
    let context = MigrateContext::new(&[("user-service", &[])]);
    context
        .write("user-service", "1_users.sql", "CREATE TABLE users (id int);\nINSERT INTO users VALUES (1), (1);\n")
        .write(
            "user-service",
            "2_unique.sql",
            "-- plat:no-transaction\nCREATE UNIQUE INDEX CONCURRENTLY users_id ON users (id);\n",
        );
    let db = TestDb::new("notx_fail");
    let run = context.migrate(&[], &db).expect_code(1);
    assert!(run.stderr.contains("2_unique.sql ran outside a transaction"), "{}", run.stderr);
    assert_eq!(db.versions(), [1], "a no-transaction migration is recorded only once it succeeded");
}

#[test]
fn transaction_control_in_a_file_is_refused() {
    let context = MigrateContext::new(&[("user-service", &[])]);
    context.write("user-service", "1_golang_migrate_style.up.sql", "BEGIN;\nCREATE TABLE a (x int);\nCOMMIT;\n");
    let db = TestDb::new("txcontrol");
    let run = context.migrate(&[], &db).expect_code(1);
    assert!(
        run.stderr.contains(
            "1_golang_migrate_style.up.sql`:1: `BEGIN` would end the transaction plat runs this migration in"
        ),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("remove BEGIN/COMMIT"), "{}", run.stderr);
    assert!(!db.table_exists("a"));
}

#[test]
fn a_function_body_with_semicolons_is_one_statement() {
    let context = MigrateContext::new(&[("user-service", &[])]);
    context.write(
        "user-service",
        "1_functions.sql",
        "CREATE FUNCTION one() RETURNS int LANGUAGE sql\nBEGIN ATOMIC\n  SELECT 1;\nEND;\n\
         CREATE FUNCTION two() RETURNS int LANGUAGE plpgsql AS $$\nBEGIN\n  RETURN 2;\nEND\n$$;\n",
    );
    let db = TestDb::new("functions");
    context.migrate(&[], &db).expect_code(0);
    assert_eq!(db.scalar("SELECT one() + two()"), "3");
}
