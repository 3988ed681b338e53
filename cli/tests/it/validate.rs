//! `plat validate`: every kind of manifest mistake gets its line, its help, and exit 2.

use crate::context::TestContext;

/// Runs `plat validate` on `manifest` and returns stderr, after checking the exit code is 2.
fn errors_of(manifest: &str) -> String {
    let context = TestContext::new();
    context.manifest(manifest);
    let run = context.run(&["validate"]).expect_code(2);
    assert!(!run.stderr.contains("panicked"), "{}", run.stderr);
    run.stderr
}

macro_rules! manifest_error {
    ($name:ident, $manifest:expr) => {
        #[test]
        fn $name() {
            insta::assert_snapshot!(stringify!($name), errors_of($manifest));
        }
    };
}

manifest_error!(toml_syntax_error, "[workspace]\nname = \"a\"\n[services.a\nports = {}\n");
manifest_error!(missing_workspace_table, "[services.a]\n");
manifest_error!(unknown_key_with_suggestion, "[workspace]\nname = \"p\"\n[services.a]\nprots = { grpc = 1 }\n");
manifest_error!(unknown_top_level_key, "[workspace]\nname = \"p\"\n[service.a]\n");
manifest_error!(wrong_type, "[workspace]\nname = \"p\"\n[services.a]\nports = { grpc = \"50051\" }\n");
manifest_error!(port_out_of_range, "[workspace]\nname = \"p\"\n[services.a]\nports = { grpc = 70000 }\n");
manifest_error!(
    unknown_condition,
    "[workspace]\nname = \"p\"\n[services.a]\n[services.b]\ndepends_on = { a = \"helthy\" }\n"
);
manifest_error!(
    unknown_dependency,
    "[workspace]\nname = \"p\"\n[services.user-service]\n[services.b]\ndepends_on = { user-servise = \"healthy\" }\n"
);
manifest_error!(
    dependency_cycle,
    "[workspace]\nname = \"p\"\n[services.a]\ndepends_on = [\"b\"]\n[services.b]\ndepends_on = [\"c\"]\n[services.c]\ndepends_on = [\"a\"]\n"
);
manifest_error!(self_dependency, "[workspace]\nname = \"p\"\n[services.a]\ndepends_on = [\"a\"]\n");
manifest_error!(
    duplicate_published_port,
    "[workspace]\nname = \"p\"\n[services.a]\nports = { http = 80 }\npublish = { http = 8080 }\n[services.b]\nports = { http = 80 }\npublish = { http = 8080 }\n"
);
manifest_error!(published_port_not_declared, "[workspace]\nname = \"p\"\n[services.a]\npublish = { http = 8080 }\n");
manifest_error!(
    path_escapes_with_dotdot,
    "[workspace]\nname = \"p\"\n[services.a]\npath = \"services/../../elsewhere\"\n"
);
manifest_error!(absolute_path, "[workspace]\nname = \"p\"\n[services.a]\npath = \"/srv/a\"\n");
manifest_error!(
    env_file_escapes,
    "[workspace]\nname = \"p\"\n[services.a]\nenv_file = [\".env\", \"../secrets.env\"]\n"
);
manifest_error!(service_name_not_a_dns_label, "[workspace]\nname = \"p\"\n[services.User_Service]\n");
manifest_error!(service_name_too_long, &format!("[workspace]\nname = \"p\"\n[services.{}]\n", "a".repeat(64)));
manifest_error!(service_name_reserved_for_the_database, "[workspace]\nname = \"p\"\n[services.postgres]\n");
manifest_error!(
    empty_rev,
    "[workspace]\nname = \"p\"\n[services.a]\nrepo = \"https://example.com/a.git\"\nrev = \"\"\n"
);
manifest_error!(rev_without_repo, "[workspace]\nname = \"p\"\n[services.a]\nrev = \"main\"\n");
manifest_error!(
    two_build_kinds,
    "[workspace]\nname = \"p\"\n[services.a]\nbuild = { dockerfile = \"Dockerfile\", command = \"make\" }\n"
);
manifest_error!(
    health_with_two_kinds,
    "[workspace]\nname = \"p\"\n[services.a]\nports = { grpc = 1 }\nhealth = { grpc = \"\", http = \"/\" }\n"
);
manifest_error!(
    bad_duration,
    "[workspace]\nname = \"p\"\n[services.a]\nports = { grpc = 1 }\nhealth = { grpc = \"\", interval = \"2 seconds\" }\n"
);
manifest_error!(
    dependency_listed_twice,
    "[workspace]\nname = \"p\"\n[services.a]\n[services.b]\ndepends_on = [\"a\", \"a\"]\n"
);
manifest_error!(
    repository_inside_another_service,
    "[workspace]\nname = \"p\"\n[services.a]\npath = \"svc\"\n[services.b]\nrepo = \"https://example.com/b.git\"\npath = \"svc/b\"\n"
);
manifest_error!(
    one_service_publishes_a_port_twice,
    "[workspace]\nname = \"p\"\n[services.a]\nports = { a = 1, b = 2 }\npublish = { a = 80, b = 80 }\n"
);
manifest_error!(service_is_not_a_table, "[workspace]\nname = \"p\"\n[services]\na = 1\n");
manifest_error!(
    migrations_leave_the_service,
    "[workspace]\nname = \"p\"\n[services.a]\ndatabase = { migrations = \"../shared\" }\n"
);
manifest_error!(
    two_services_one_directory,
    "[workspace]\nname = \"p\"\n[services.a]\npath = \"svc\"\n[services.b]\npath = \"./svc/\"\n"
);
manifest_error!(
    library_unknown_key,
    "[workspace]\nname = \"p\"\n[libraries.pkg]\nrepo = \"https://example.com/pkg.git\"\nbranch = \"main\"\n"
);
manifest_error!(
    library_and_service_share_a_name,
    "[workspace]\nname = \"p\"\n[services.pkg]\n[libraries.pkg]\nrepo = \"https://example.com/pkg.git\"\n"
);
manifest_error!(library_rev_without_repo, "[workspace]\nname = \"p\"\n[libraries.pkg]\nrev = \"v1\"\n");
manifest_error!(
    library_inside_a_service,
    "[workspace]\nname = \"p\"\n[services.a]\n[libraries.pkg]\nrepo = \"https://example.com/pkg.git\"\npath = \"services/a/pkg\"\n"
);
manifest_error!(
    library_name_and_path,
    "[workspace]\nname = \"p\"\n[libraries.Shared]\n[libraries.b]\npath = \"../b\"\n"
);
manifest_error!(
    two_services_one_database,
    "[workspace]\nname = \"p\"\n[services.users]\ndatabase = { name = \"app\" }\n[services.orders]\ndatabase = { name = \"app\" }\n"
);
manifest_error!(database_name_empty, "[workspace]\nname = \"p\"\n[services.a]\ndatabase = { name = \"\" }\n");
manifest_error!(
    database_name_too_long,
    &format!("[workspace]\nname = \"p\"\n[services.a]\ndatabase = {{ name = \"{}\" }}\n", "é".repeat(32))
);
manifest_error!(
    database_name_of_the_server,
    "[workspace]\nname = \"p\"\n[services.a]\ndatabase = { name = \"postgres\" }\n"
);
manifest_error!(libraries_not_a_table, "[workspace]\nname = \"p\"\nlibraries = [\"pkg\"]\n");

#[test]
fn every_error_is_reported_not_only_the_first() {
    let stderr = errors_of(
        "[workspace]\nname = \"Bad Name\"\n\n[services.a]\nprots = 1\npath = \"../x\"\n\n[services.b]\ndepends_on = [\"nope\"]\nrev = \"\"\n",
    );
    for expected in [
        "invalid workspace name",
        "unknown key `prots`",
        "path `../x`",
        "depends on `nope`",
        "has a `rev` but no `repo`",
    ] {
        assert!(stderr.contains(expected), "missing {expected:?} in\n{stderr}");
    }
    assert!(stderr.contains("workspace.toml has 5 errors"), "{stderr}");
}

/// An empty name once fell back to the server's `postgres` database and migrated it: every
/// command refuses the manifest before it connects anywhere.
#[test]
fn migrate_refuses_an_invalid_database_name() {
    let context = TestContext::new();
    context.manifest("[workspace]\nname = \"p\"\n[services.a]\ndatabase = { name = \"\" }\n");
    let run = context.run(&["migrate", "--database-url", "postgres://nobody@127.0.0.1:1/"]).expect_code(2);
    assert!(run.stderr.contains("invalid database name `` for `a`: it is empty"), "{}", run.stderr);
    assert!(run.stderr.contains("workspace.toml:4:"), "{}", run.stderr);
}

#[test]
fn json_lists_errors_with_line_and_column() {
    let context = TestContext::new();
    context.manifest("[workspace]\nname = \"p\"\n[services.a]\nprots = 1\n");
    let run = context.run(&["validate", "--json"]).expect_code(2);
    let json = run.json();
    assert_eq!(json["valid"], false);
    assert_eq!(json["errors"][0]["line"], 4);
    assert_eq!(json["errors"][0]["column"], 1);
    assert_eq!(json["errors"][0]["help"], "did you mean `ports`?");
}

manifest_error!(
    ready_image_with_keys_about_code,
    "[workspace]\nname = \"p\"\n[services.nats]\nimage = \"plat/nats:2\"\nrepo = \"https://example.com/nats.git\"\npath = \"infra/nats\"\ndatabase = {}\n"
);
manifest_error!(
    invalid_image_reference,
    "[workspace]\nname = \"p\"\n[services.a]\nimage = \"Plat/NATS:2\"\n[services.b]\nimage = \"p/b:\"\n"
);
manifest_error!(
    invalid_volumes,
    "[workspace]\nname = \"p\"\n[services.a]\nvolumes = { data = \"data\", \"-x\" = \"/x\", logs = \"/data\", root = \"/\" }\n"
);

/// A ready image needs no directory, no build and no cargo: the workspace validates with none
/// of them, and `plat graph` lists it like any service.
#[test]
fn a_ready_image_is_a_service_without_a_directory() {
    let context = TestContext::new();
    context.manifest(
        "[workspace]\nname = \"p\"\n[services.nats]\nimage = \"plat/nats:2\"\nports = { client = 4222 }\n\
         volumes = { data = \"/data\" }\n[services.pinned]\nimage = \"registry.local:5000/team/tool@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\"\n\
         [services.app]\nimage = \"scale/tiny:1\"\nbuild = { command = \"true\" }\ndepends_on = { nats = \"started\" }\n",
    );
    let run = context.run(&["validate"]).expect_code(0);
    assert!(run.stderr.contains("3 services"), "{}", run.stderr);
    let json = context.run(&["graph", "--json"]).expect_code(0).json();
    let names: Vec<&str> = json["services"].as_array().unwrap().iter().map(|s| s["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["nats", "pinned", "app"]);
}

#[test]
fn a_valid_manifest_passes() {
    let context = TestContext::new();
    context.manifest(include_str!("../../../workspace.toml"));
    let run = context.run(&["validate"]).expect_code(0);
    assert!(run.stderr.contains("4 services"), "{}", run.stderr);
    let json = context.run(&["validate", "--json"]).expect_code(0).json();
    assert_eq!(json["valid"], true);
    assert_eq!(json["services"], 4);
}

#[test]
fn the_repository_manifest_is_valid() {
    let context = TestContext::new();
    let manifest = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../workspace.toml");
    context.run(&["--manifest", manifest.to_str().unwrap(), "validate"]).expect_code(0);
}

#[test]
fn discovery_searches_upward_and_obeys_overrides() {
    let context = TestContext::new();
    context.manifest("[workspace]\nname = \"p\"\n[services.a]\n");
    let nested = context.workspace.join("services/a/src");
    std::fs::create_dir_all(&nested).unwrap();
    let run = context.plat().current_dir(&nested).arg("validate").output().unwrap();
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));

    let outside = tempfile::tempdir().unwrap();
    let run = context.plat().current_dir(outside.path()).arg("validate").output().unwrap();
    assert_eq!(run.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(stderr.contains("could not find `workspace.toml`"), "{stderr}");
    assert!(stderr.contains("hint:"), "{stderr}");

    let ws = context.workspace.to_str().unwrap();
    let run = context.plat().current_dir(outside.path()).args(["-C", ws, "validate"]).output().unwrap();
    assert!(run.status.success());
    let manifest = context.workspace.join("workspace.toml");
    let run = context
        .plat()
        .current_dir(outside.path())
        .args(["--manifest", manifest.to_str().unwrap(), "validate"])
        .output()
        .unwrap();
    assert!(run.status.success());
}

#[test]
fn hostile_input_never_panics() {
    let inputs = [
        "",
        "\u{0}",
        "[[services]]\nname = 1",
        "services = 3",
        "[workspace]\nname = \"p\"\n[services]\na = 1",
        "[workspace]\nname = \"p\"\n[services.a]\nbuild = 7",
        "[workspace]\nname = \"p\"\n[services.a]\ndepends_on = 1",
        "[workspace]\nname = \"p\"\n[services.a]\ndepends_on = [1]",
        "[workspace]\nname = \"p\"\n[services.a]\nhealth = { cmd = [] }",
        "[workspace]\nname = []",
        "[workspace]\nname = \"p\"\n[services.a]\npath = \"\"\n[services.b]\npath = \".\"",
        "[workspace]\nname = \"p\"\n[services.\"\"]",
        "[workspace]\nname = \"p\"\n[services.\"é\"]\nports = { \"é\" = 1 }\npublish = { \"é\" = 1 }",
    ];
    for input in inputs {
        let context = TestContext::new();
        context.manifest(input);
        let run = context.run(&["validate"]);
        assert!(run.code == 0 || run.code == 2, "{input:?}: exit {}\n{}", run.code, run.stderr);
        assert!(!run.stderr.contains("panicked"), "{input:?}:\n{}", run.stderr);
    }
}
