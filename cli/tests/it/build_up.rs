//! `plat build`, and what `plat up`, `ps`, `logs` and `down` say before anything runs, against
//! the real Docker Engine. Images are tiny (`FROM scratch` and a text file), named after a
//! workspace no other test uses, and removed at the end. `plat up` running the sample platform
//! is e2e/tests/containers.rs.

use std::process::Command;
use std::time::Duration;

use crate::context::{TestContext, ensure_postgres_image};
use crate::docker::{Names, docker};

fn write(context: &TestContext, path: &str, text: &str) {
    let path = context.workspace.join(path);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

#[test]
fn dockerfile_builds_are_skipped_when_nothing_they_send_changed() {
    let names = Names::new("build");
    let context = TestContext::new();
    context.manifest(&format!(
        "[workspace]\nname = \"{}\"\n\n[services.web]\nbuild = {{ dockerfile = \"Dockerfile\" }}\n",
        names.workspace
    ));
    write(&context, "services/web/Dockerfile", "FROM scratch\nCOPY hello.txt /hello.txt\n");
    write(&context, "services/web/hello.txt", "hello\n");
    write(&context, "services/web/.dockerignore", "notes/\n");
    write(&context, "services/web/notes/todo.txt", "not sent\n");

    let run = context.run(&["build", "--explain"]).expect_code(0);
    assert!(run.stderr.contains(&format!("Rebuilding web: no image {} on this machine yet", names.image("web"))));
    assert!(run.stderr.contains(&format!("Packaging web as {}", names.image("web"))), "{}", run.stderr);
    assert!(run.stderr.contains(&format!("Built web {}", names.image("web"))), "{}", run.stderr);
    let labels = docker(&["image", "inspect", "--format", "{{json .Config.Labels}}", &names.image("web")]);
    let labels: serde_json::Value = serde_json::from_str(&labels).unwrap();
    assert_eq!(labels["dev.plat.workspace"], names.workspace.as_str());
    assert_eq!(labels["dev.plat.service"], "web");
    assert!(labels["dev.plat.inputs"].as_str().unwrap().starts_with("sha256:"));

    let run = context.run(&["build"]).expect_code(0);
    assert!(run.stderr.contains("Fresh web"), "nothing changed: {}", run.stderr);

    write(&context, "services/web/notes/todo.txt", "still not sent\n");
    let run = context.run(&["build"]).expect_code(0);
    assert!(run.stderr.contains("Fresh web"), "an ignored file changed: {}", run.stderr);

    let run = context.run(&["build", "--explain"]).expect_code(0);
    assert!(run.stderr.contains("Unchanged web: nothing it is built from changed"), "{}", run.stderr);

    write(&context, "services/web/hello.txt", "hello again\n");
    write(&context, "services/web/new.txt", "new\n");
    let run = context.run(&["build", "--explain", "web"]).expect_code(0);
    assert!(run.stderr.contains("Rebuilding web: changed: hello.txt\n"), "{}", run.stderr);
    assert!(run.stderr.contains("Rebuilding web: added: new.txt\n"), "{}", run.stderr);
    assert!(run.stderr.contains("Built web"), "a sent file changed: {}", run.stderr);
}

#[test]
fn a_failing_build_names_the_service_and_the_step() {
    let names = Names::new("build");
    let context = TestContext::new();
    context.manifest(&format!(
        "[workspace]\nname = \"{}\"\n\n[services.web]\nbuild = {{ dockerfile = \"Dockerfile\" }}\n",
        names.workspace
    ));
    write(&context, "services/web/Dockerfile", "FROM scratch\nCOPY missing.txt /missing.txt\n");
    let run = context.run(&["build"]).expect_code(1);
    assert!(run.stderr.contains("error: web: the image build failed:"), "{}", run.stderr);
    assert!(run.stderr.contains("missing.txt"), "{}", run.stderr);
}

#[test]
fn command_builds_run_in_the_service_directory_with_the_image_name() {
    let names = Names::new("build");
    let context = TestContext::new();
    context.manifest(&format!(
        "[workspace]\nname = \"{0}\"\n\n[services.web]\nbuild = {{ dockerfile = \"Dockerfile\" }}\n\n\
         [services.tagged]\ndepends_on = [\"web\"]\nbuild = {{ command = \"test -f marker && docker tag {0}/web:dev \\\"$PLAT_IMAGE\\\"\" }}\n\n\
         [services.lazy]\nbuild = {{ command = \"true\" }}\n",
        names.workspace
    ));
    write(&context, "services/web/Dockerfile", "FROM scratch\nCOPY Dockerfile /\n");
    write(&context, "services/tagged/marker", "");
    write(&context, "services/lazy/README", "");
    context.run(&["build", "web", "tagged"]).expect_code(0);
    assert_eq!(
        docker(&["image", "inspect", "--format", "{{.Id}}", &names.image("tagged")]),
        docker(&["image", "inspect", "--format", "{{.Id}}", &names.image("web")])
    );

    let run = context.run(&["build", "lazy"]).expect_code(1);
    assert!(
        run.stderr.contains(&format!("error: lazy: `true` succeeded, and built no image {}", names.image("lazy"))),
        "{}",
        run.stderr
    );
}

#[test]
fn a_service_without_its_directory_is_reported_with_the_way_to_get_it() {
    let names = Names::new("build");
    let context = TestContext::new();
    context.manifest(&format!("[workspace]\nname = \"{}\"\n\n[services.web]\n", names.workspace));
    let run = context.run(&["build"]).expect_code(1);
    assert!(run.stderr.contains("error: web: its directory services/web does not exist"), "{}", run.stderr);
    assert!(run.stderr.contains("hint: `plat sync` clones"), "{}", run.stderr);
}

#[test]
fn before_up_nothing_runs_and_plat_says_what_to_do() {
    let names = Names::new("build");
    let context = TestContext::new();
    context.manifest(&format!(
        "[workspace]\nname = \"{}\"\n\n[services.web]\nports = {{ http = 8080 }}\n\n[services.api]\ndepends_on = [\"web\"]\n",
        names.workspace
    ));

    let run = context.run(&["ps", "--json"]).expect_code(0);
    let rows = run.json();
    assert_eq!(rows[0]["service"], "web");
    assert_eq!(rows[0]["state"], "missing");
    assert_eq!(rows[1]["service"], "api");
    assert_eq!((rows[2]["service"].as_str(), rows[2]["state"].as_str()), (Some("postgres"), Some("missing")));
    let run = context.run(&["ps"]).expect_code(0);
    assert_eq!(run.stdout.lines().next(), Some("SERVICE   STATE    HEALTH  UP TO DATE  PORTS"));

    // What is not there is said, and the command still shows what is (nothing here): exit 0.
    let run = context.run(&["logs", "api"]).expect_code(0);
    assert!(
        run.stderr.contains("warning: api has no container: nothing to show (`plat up api` starts it)"),
        "{}",
        run.stderr
    );

    let run = context.run(&["up", "webb"]).expect_code(2);
    assert!(run.stderr.contains("hint: did you mean `web`?"), "{}", run.stderr);

    let run = context.run(&["up", "--no-build", "api"]).expect_code(1);
    assert!(
        run.stderr.contains(&format!("error: web: image {} is not on this machine", names.image("web"))),
        "dependencies come first: {}",
        run.stderr
    );
    assert!(run.stderr.contains("hint: build it with `plat build web`"), "{}", run.stderr);

    let run = context.run(&["down"]).expect_code(0);
    assert!(
        run.stderr.contains(&format!("no container of workspace `{}` from this checkout exists", names.workspace)),
        "{}",
        run.stderr
    );
}

#[test]
fn contract_tests_fail_for_a_missing_provider_and_a_stopped_one() {
    let names = Names::new("build");
    let context = TestContext::new();
    context.manifest(&format!(
        "[workspace]\nname = \"{}\"\n\n[services.users]\nports = {{ grpc = 50051 }}\nproto = {{ serves = [\"user.v1\"] }}\n\n\
         [services.orders]\nproto = {{ uses = [\"user.v1\", \"billing.v1\"] }}\n",
        names.workspace
    ));
    write(
        &context,
        "proto/user/v1/user.proto",
        "syntax = \"proto3\";\npackage user.v1;\nmessage User {}\nservice UserService {\n  rpc GetUser(User) returns (User);\n}\n",
    );
    write(&context, "proto/billing/v1/billing.proto", "syntax = \"proto3\";\npackage billing.v1;\nmessage Bill {}\n");
    std::fs::create_dir_all(context.workspace.join("services/users")).unwrap();
    std::fs::create_dir_all(context.workspace.join("services/orders")).unwrap();
    context.run(&["proto", "gen", "--engine", "builtin"]).expect_code(0);

    let junit = context.workspace.join("contract.xml");
    let run =
        context.run(&["test", "--contract", "--engine", "builtin", "--junit", junit.to_str().unwrap()]).expect_code(1);
    assert!(run.stdout.contains("contract consumers orders uses user.v1 from users ... ok"), "{}", run.stdout);
    assert!(
        run.stdout.contains(
            "contract consumers orders uses billing.v1 ... FAILED\n    no service of the workspace serves billing.v1"
        ),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("contract generated users code matches proto/ ... ok"), "{}", run.stdout);
    assert!(
        run.stdout.contains(
            "contract served users serves user.v1.UserService/GetUser ... FAILED\n    users is not running: `plat up` starts it"
        ),
        "{}",
        run.stdout
    );
    // The consumer's recorded view cannot be checked against a provider that does not run.
    assert!(
        run.stdout.contains(
            "contract compatible orders uses user.v1 as recorded, users serves it ... FAILED\n    users is not running: `plat up` starts it"
        ),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("contract test result: FAILED. 3 passed; 3 failed; 0 skipped"), "{}", run.stdout);
    assert!(run.stderr.contains("error: 3 contract tests failed"), "{}", run.stderr);
    let report = std::fs::read_to_string(junit).unwrap();
    assert!(
        report.contains("<testsuite name=\"contract.served\" tests=\"1\" failures=\"1\" skipped=\"0\">"),
        "{report}"
    );

    let run = context.run(&["test", "--contract", "--engine", "builtin", "--json"]).expect_code(1);
    let cases = run.json();
    assert_eq!(cases.as_array().unwrap().len(), 6);
    assert_eq!(cases[0]["status"], "passed");
    assert_eq!(cases[1]["status"], "failed");
    assert_eq!(cases[1]["message"], "no service of the workspace serves billing.v1");
}

#[test]
fn up_waits_on_command_and_tcp_health_checks_and_reports_one_that_fails() {
    ensure_postgres_image();
    let names = Names::new("build");
    let context = TestContext::new();
    // Two services from the PostgreSQL image (it has a shell and pg_isready, unlike the
    // services' FROM scratch images): one checked by a command run inside it, one by a TCP
    // connection, started once the first is healthy.
    let manifest = format!(
        "[workspace]\nname = \"{}\"\n\n\
         [services.db]\nbuild = {{ command = \"docker tag plat/postgres:15 \\\"$PLAT_IMAGE\\\"\" }}\nports = {{ pg = 5432 }}\n\
         health = {{ cmd = [\"pg_isready\", \"-h\", \"127.0.0.1\", \"-U\", \"postgres\"], interval = \"500ms\", retries = 60 }}\n\n\
         [services.db-client]\nbuild = {{ command = \"docker tag plat/postgres:15 \\\"$PLAT_IMAGE\\\"\" }}\nports = {{ pg = 5432 }}\n\
         depends_on = {{ db = \"healthy\" }}\nhealth = {{ tcp = \"pg\", interval = \"500ms\", retries = 60 }}\n\n\
         [services.db-watcher]\nbuild = {{ command = \"docker tag plat/postgres:15 \\\"$PLAT_IMAGE\\\"\" }}\nports = {{ pg = 5432 }}\n\
         depends_on = {{ db-client = \"started\" }}\nhealth = {{ tcp = \"pg\", interval = \"500ms\", retries = 60 }}\n",
        names.workspace
    );
    context.manifest(&manifest);
    std::fs::create_dir_all(context.workspace.join("services/db")).unwrap();
    std::fs::create_dir_all(context.workspace.join("services/db-client")).unwrap();
    std::fs::create_dir_all(context.workspace.join("services/db-watcher")).unwrap();

    let run = context.run(&["up"]).expect_code(0);
    let at = |needle: &str| run.stderr.find(needle).unwrap_or_else(|| panic!("no `{needle}` in:\n{}", run.stderr));
    assert!(at("Waiting db for its health command") < at("Ready db after"), "{}", run.stderr);
    assert!(at("Ready db after") < at("Created db-client"), "{}", run.stderr);
    assert!(at("Waiting db-client for its port to open") < at("Ready db-client after"), "{}", run.stderr);
    // `started` asks only for a running container: db-watcher starts before db-client is healthy,
    // and up still returns with both healthy.
    assert!(at("Created db-watcher") < at("Ready db-client after"), "{}", run.stderr);
    assert!(at("Ready db-watcher after") > at("Created db-watcher"), "{}", run.stderr);
    let rows = context.run(&["ps", "--json"]).expect_code(0).json();
    assert_eq!((rows[0]["service"].as_str(), rows[0]["health"].as_str()), (Some("db"), Some("healthy")));
    assert_eq!((rows[1]["service"].as_str(), rows[1]["health"].as_str()), (Some("db-client"), Some("healthy")));
    assert_eq!((rows[2]["service"].as_str(), rows[2]["health"].as_str()), (Some("db-watcher"), Some("healthy")));

    // A check that fails: the health settings are not part of the container, so it is kept,
    // and up fails with the check's reason once its retries are spent.
    context.manifest(&manifest.replace(
        "[\"pg_isready\", \"-h\", \"127.0.0.1\", \"-U\", \"postgres\"], interval = \"500ms\", retries = 60",
        "[\"false\"], interval = \"200ms\", retries = 2",
    ));
    let run = context.run(&["up", "db"]).expect_code(1);
    assert!(run.stderr.contains("Running db (unchanged)"), "{}", run.stderr);
    assert!(run.stderr.contains("error: db is not healthy after"), "{}", run.stderr);
    assert!(run.stderr.contains("`false` exited with 1"), "{}", run.stderr);
    assert!(run.stderr.contains("hint: `plat logs db` shows all of its log"), "{}", run.stderr);

    let run = context.run(&["down"]).expect_code(0);
    let at = |needle: &str| run.stderr.find(needle).unwrap_or_else(|| panic!("no `{needle}` in:\n{}", run.stderr));
    assert!(at("-db-watcher") < at("-db-client"), "dependents first: {}", run.stderr);
    assert!(at("-db-client") < at("-db\n"), "dependents first: {}", run.stderr);
}

#[test]
fn a_published_port_in_use_is_reported_with_what_to_do() {
    ensure_postgres_image();
    let names = Names::new("build");
    let context = TestContext::new();
    let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = held.local_addr().unwrap().port();
    context.manifest(&format!(
        "[workspace]\nname = \"{}\"\n\n[services.db]\nbuild = {{ command = \"docker tag plat/postgres:15 \\\"$PLAT_IMAGE\\\"\" }}\n\
         ports = {{ pg = 5432 }}\npublish = {{ pg = {port} }}\n",
        names.workspace
    ));
    std::fs::create_dir_all(context.workspace.join("services/db")).unwrap();
    // Found before anything is created, and said with who to ask.
    let run = context.run(&["up"]).expect_code(1);
    assert!(run.stderr.contains(&format!("error: db: host port {port} is taken by another program")), "{}", run.stderr);
    assert!(
        run.stderr.contains(&format!("hint: free port {port} (`lsof -i :{port}` shows who holds it)")),
        "{}",
        run.stderr
    );
    let rows = context.run(&["ps", "--json"]).expect_code(0).json();
    assert_eq!(rows[0]["state"], "missing", "nothing was created: {rows}");
    // Once the port is free, up starts it.
    drop(held);
    let run = context.run(&["up"]).expect_code(0);
    assert!(run.stderr.contains("Created db"), "{}", run.stderr);
    context.run(&["down"]).expect_code(0);
}

/// One service from the PostgreSQL image (it has `false` and a shell), with `health`.
/// Lines from `reader` up to and including the first that contains `needle`; fails when the
/// stream ends first.
fn read_until(reader: &mut impl std::io::BufRead, needle: &str) -> String {
    let mut seen = String::new();
    while !seen.contains(needle) {
        let mut line = String::new();
        assert!(reader.read_line(&mut line).unwrap() > 0, "the output ended before `{needle}`: {seen}");
        seen.push_str(&line);
    }
    seen
}

fn one_service(workspace: &str, health: &str) -> String {
    format!(
        "[workspace]\nname = \"{workspace}\"\n\n\
         [services.db]\nbuild = {{ command = \"docker tag plat/postgres:15 \\\"$PLAT_IMAGE\\\"\" }}\nports = {{ pg = 5432 }}\n{health}"
    )
}

#[test]
fn after_a_rename_ps_explains_the_old_containers_and_down_removes_them() {
    ensure_postgres_image();
    let (old, new) = (Names::new("build"), Names::new("build"));
    let context = TestContext::new();
    std::fs::create_dir_all(context.workspace.join("services/db")).unwrap();
    context.manifest(&one_service(&old.workspace, ""));
    context.run(&["up"]).expect_code(0);

    // The same checkout, renamed: the old container is its own, under the old name.
    context.manifest(&one_service(&new.workspace, ""));
    let rows = context.run(&["ps", "--json"]).expect_code(0).json();
    let renamed = rows.as_array().unwrap().iter().find(|row| row["container"] == format!("{}-db", old.workspace));
    let renamed = renamed.unwrap_or_else(|| panic!("the old container is listed: {rows}"));
    assert_eq!(
        renamed["note"].as_str(),
        Some(format!("workspace renamed from `{}`: `plat down` removes it", old.workspace).as_str())
    );
    let run = context.run(&["down"]).expect_code(0);
    assert!(run.stderr.contains(&format!("Removed container {}-db", old.workspace)), "{}", run.stderr);
    assert!(docker(&["ps", "-aq", "--filter", &format!("label=dev.plat.workspace={}", old.workspace)]).is_empty());
}

#[test]
fn ctrl_c_while_waiting_stops_up_and_says_what_is_left_running() {
    use std::io::BufReader;

    ensure_postgres_image();
    let names = Names::new("build");
    let context = TestContext::new();
    std::fs::create_dir_all(context.workspace.join("services/db")).unwrap();
    context.manifest(&one_service(
        &names.workspace,
        "health = { cmd = [\"false\"], interval = \"200ms\", retries = 600 }\n",
    ));
    let mut up = context.plat().arg("up").stderr(std::process::Stdio::piped()).spawn().unwrap();
    let mut stderr = BufReader::new(up.stderr.take().unwrap());
    let seen = read_until(&mut stderr, "Waiting db for its health command");
    let signal = Command::new("kill").args(["-INT", &up.id().to_string()]).status().unwrap();
    assert!(signal.success());
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stderr, &mut rest).unwrap();
    let status = up.wait().unwrap();
    assert_eq!(status.code(), Some(130), "{seen}{rest}");
    assert!(rest.contains("plat up stopped before the platform was up; still running: db"), "{rest}");
    assert!(rest.contains("hint: `plat up` again carries on from here; `plat down` removes it all"), "{rest}");
    context.run(&["down"]).expect_code(0);
}

#[test]
fn ctrl_c_during_a_migration_cancels_its_statement_on_the_server() {
    use std::io::BufReader;

    ensure_postgres_image();
    let names = Names::new("build");
    let context = TestContext::new();
    std::fs::create_dir_all(context.workspace.join("services/db/migrations")).unwrap();
    std::fs::write(context.workspace.join("services/db/migrations/1_slow.sql"), "SELECT pg_sleep(60);\n").unwrap();
    context.manifest(&one_service(&names.workspace, "database = { migrations = \"migrations\" }\n"));
    let mut up = context.plat().arg("up").stderr(std::process::Stdio::piped()).spawn().unwrap();
    let mut stderr = BufReader::new(up.stderr.take().unwrap());
    let seen = read_until(&mut stderr, "Ready database");
    // The signal must find the statement running on the server, asked from inside its container.
    let postgres = format!("{}-postgres", names.workspace);
    let sleeping = || {
        docker(&[
            "exec",
            &postgres,
            "psql",
            "-U",
            "postgres",
            "-tAc",
            "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep(60)%'",
        ])
    };
    let started = std::time::Instant::now();
    while sleeping().trim() != "1" {
        assert!(started.elapsed() < Duration::from_secs(30), "the slow migration never started: {seen}");
        std::thread::sleep(Duration::from_millis(50));
    }
    let signal = Command::new("kill").args(["-INT", &up.id().to_string()]).status().unwrap();
    assert!(signal.success());
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stderr, &mut rest).unwrap();
    let status = up.wait().unwrap();
    assert_eq!(status.code(), Some(130), "{seen}{rest}");
    assert!(rest.contains("1_slow.sql: cancelled: plat asked the server to stop it"), "{rest}");
    assert!(rest.contains("plat up stopped before the platform was up; still running: postgres"), "{rest}");
    assert_eq!(sleeping().trim(), "0", "no statement of plat's runs on, holding its locks");
    context.run(&["down", "--volumes"]).expect_code(0);
}

#[test]
fn a_migration_from_another_branch_stops_up_with_the_ways_out_and_db_reset_is_one() {
    ensure_postgres_image();
    let names = Names::new("build");
    let context = TestContext::new();
    let migrations = context.workspace.join("services/db/migrations");
    std::fs::create_dir_all(&migrations).unwrap();
    std::fs::write(migrations.join("1_users.sql"), "CREATE TABLE users (id int);\n").unwrap();
    std::fs::write(migrations.join("2_feature.sql"), "CREATE TABLE feature (id int);\n").unwrap();
    context.manifest(&one_service(&names.workspace, "database = { migrations = \"migrations\" }\n"));
    context.run(&["up"]).expect_code(0);

    // Back on main: the feature branch's migration is not in this checkout.
    std::fs::remove_file(migrations.join("2_feature.sql")).unwrap();
    let run = context.run(&["up"]).expect_code(1);
    assert!(run.stderr.contains("it was most likely applied from another branch"), "{}", run.stderr);
    assert!(run.stderr.contains("`plat db reset db` drops it and migrates it again"), "{}", run.stderr);
    context.run(&["db", "reset", "db", "--yes"]).expect_code(0);
    let run = context.run(&["up"]).expect_code(0);
    assert!(run.stderr.contains("Migrated db: 0 applied now, 1 in all"), "{}", run.stderr);
    context.run(&["down", "--volumes"]).expect_code(0);
}

#[test]
fn logs_follow_a_service_across_the_container_up_replaces() {
    use std::io::{BufRead, BufReader};

    ensure_postgres_image();
    let names = Names::new("build");
    let context = TestContext::new();
    std::fs::create_dir_all(context.workspace.join("services/db")).unwrap();
    context.manifest(&one_service(&names.workspace, ""));
    context.run(&["up"]).expect_code(0);
    let first = docker(&["ps", "-q", "--filter", &format!("name=^{}-db$", names.workspace)]);

    let mut logs = context.plat().args(["logs", "-f", "db"]).stdout(std::process::Stdio::piped()).spawn().unwrap();
    let (lines, received) = std::sync::mpsc::channel();
    let stdout = BufReader::new(logs.stdout.take().unwrap());
    std::thread::spawn(move || stdout.lines().map_while(Result::ok).try_for_each(|line| lines.send(line)));
    let ready = "database system is ready to accept connections";
    let mut seen = Vec::new();
    let mut wait_for_ready = |count: usize| {
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while seen.iter().filter(|line: &&String| line.contains(ready)).count() < count {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match received.recv_timeout(left) {
                Ok(line) => seen.push(line),
                Err(_) => panic!("no {count} × `{ready}` in:\n{}", seen.join("\n")),
            }
        }
    };
    wait_for_ready(1);

    // A new configuration: up replaces the container, and the same `logs -f` shows the new one's start.
    context.manifest(&one_service(&names.workspace, "env = { REPLACED = \"yes\" }\n"));
    let run = context.run(&["up"]).expect_code(0);
    assert!(run.stderr.contains("Recreated db"), "{}", run.stderr);
    assert_ne!(docker(&["ps", "-q", "--filter", &format!("name=^{}-db$", names.workspace)]), first);
    wait_for_ready(2);
    assert!(seen.iter().all(|line| line.starts_with("db ")), "each line names its service: {seen:?}");
    logs.kill().unwrap();
    let _ = logs.wait();
    context.run(&["down"]).expect_code(0);
}
