//! Conventions every command shares: help, exit codes, completions, schema, doctor, colour.

use crate::context::{TestContext, ensure_nats_image, ensure_postgres_image};

#[test]
fn help_has_examples_for_every_command() {
    let context = TestContext::new();
    let help = context.run(&["--help"]).expect_code(0).stdout;
    insta::assert_snapshot!(help);
    for command in ["validate", "schema", "graph", "sync", "status", "doctor", "completions"] {
        let help = context.run(&[command, "--help"]).expect_code(0).stdout;
        assert!(help.contains("Examples:"), "`plat {command} --help` has no examples:\n{help}");
    }
}

#[test]
fn usage_errors_exit_2() {
    let context = TestContext::new();
    context.run(&["no-such-command"]).expect_code(2);
    context.run(&["sync", "--jobs", "0"]).expect_code(2);
    context.manifest("[workspace]\nname = \"p\"\n[services.user-service]\n");
    let run = context.run(&["status", "user-servise"]).expect_code(2);
    assert!(run.stderr.contains("did you mean `user-service`?"), "{}", run.stderr);
}

#[test]
fn completions_for_each_shell() {
    let context = TestContext::new();
    for shell in ["bash", "zsh", "fish"] {
        let run = context.run(&["completions", shell]).expect_code(0);
        assert!(run.stdout.contains("validate"), "{shell}: {}", run.stdout);
    }
}

#[test]
fn schema_describes_every_service_key() {
    let context = TestContext::new();
    let schema = context.run(&["schema"]).expect_code(0).json();
    let text = serde_json::to_string(&schema).unwrap();
    for key in [
        "repo",
        "rev",
        "path",
        "build",
        "image",
        "ports",
        "publish",
        "env",
        "secrets",
        "env_file",
        "volumes",
        "depends_on",
        "health",
        "database",
        "proto",
    ] {
        assert!(text.contains(&format!("\"{key}\"")), "schema lacks `{key}`");
    }
    assert_eq!(schema["title"], "plat workspace manifest");
    let image = schema["definitions"]["ServiceSpec"]["properties"]["image"]["description"]
        .as_str()
        .or_else(|| schema["$defs"]["ServiceSpec"]["properties"]["image"]["description"].as_str())
        .unwrap_or_default();
    assert!(image.contains("ready image"), "the schema documents ready images: {image:?}");
}

#[test]
fn doctor_checks_the_engine_and_tools() {
    ensure_postgres_image();
    ensure_nats_image();
    let context = TestContext::new();
    context.manifest(include_str!("../../../workspace.toml"));
    let run = context.run(&["doctor", "--json"]);
    let json = run.json();
    let names: Vec<&str> = json["checks"].as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["docker", "plat/postgres:15", "plat/nats:2", "git", "cargo", "buf", "protoc", "psql"]);
    // This machine runs a Docker Engine, has the database image, NATS's ready image and cargo;
    // the sample workspace requires them all.
    for check in &json["checks"].as_array().unwrap()[..3] {
        assert_eq!((&check["ok"], &check["required"]), (&true.into(), &true.into()), "{}", run.stdout);
    }
    assert_eq!(run.code, 0);
}

#[test]
fn doctor_fails_when_a_required_tool_is_missing() {
    let context = TestContext::new();
    // A remote-helper URL makes the git CLI required too.
    let manifest = format!(
        "{}\n[services.helper]\nrepo = \"ext::git %s /srv/helper.git\"\n",
        include_str!("../../../workspace.toml")
    );
    context.manifest(&manifest);
    // An Engine nobody listens on, and a PATH without cargo.
    let run = context
        .plat()
        .args(["doctor"])
        .env("DOCKER_HOST", "unix:///nonexistent/docker.sock")
        .env("PATH", "/nonexistent")
        .output()
        .unwrap();
    assert_eq!(run.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(stdout.contains("MISSING  docker"), "{stdout}");
    assert!(stdout.contains("MISSING  plat/postgres:15"), "{stdout}");
    assert!(stdout.contains("MISSING  cargo"), "{stdout}");
    assert!(stdout.contains("MISSING  git"), "{stdout}");
    assert!(stdout.contains("hint:"), "{stdout}");
}

#[test]
fn colour_follows_the_flag() {
    let context = TestContext::new();
    context.manifest("[workspace]\nname = \"p\"\n[services.a]\nprots = 1\n");
    let plain = context.run(&["validate"]);
    assert!(!plain.stderr.contains('\u{1b}'), "NO_COLOR is set: {}", plain.stderr);
    let coloured = context.run(&["--color", "always", "validate"]);
    assert!(coloured.stderr.contains('\u{1b}'), "{}", coloured.stderr);
}

#[test]
fn doctor_reports_a_broken_manifest_like_every_command() {
    let context = TestContext::new();
    context.manifest("[workspace]\nname = \"p\"\n[services.a]\nprots = 1\n");
    let run = context.run(&["doctor"]).expect_code(2);
    assert!(run.stderr.contains("unknown key `prots`"), "{}", run.stderr);
}

#[test]
fn manifest_may_name_a_directory() {
    let context = TestContext::new();
    context.manifest("[workspace]\nname = \"p\"\n");
    let outside = tempfile::tempdir().unwrap();
    let run = context
        .plat()
        .current_dir(outside.path())
        .args(["--manifest", context.workspace.to_str().unwrap(), "validate"])
        .output()
        .unwrap();
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
}
