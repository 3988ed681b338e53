//! `plat test` on the sample platform, for real: the three services' own suites (user-service's
//! and order-service's integration tests each on a fresh database in the workspace's PostgreSQL
//! container), cached on the second run; and `plat test --e2e` against the platform `plat up`
//! started, passing, then failing for a real reason (a table gone from under user-service).

use std::path::Path;

use platform_e2e::plat::{Cleanup, Plat, docker, free_port, sample_manifest, sample_workspace, texts};
use platform_e2e::platform::repo_root;

/// A workspace of the test's own over the repository's services (its name, so nothing collides
/// with another run; a free gateway port; the e2e command pointed at this repository's crate).
fn workspace(root: &Path, dir: &Path, name: &str, gateway_port: u16) {
    let e2e = "command = \"cargo test --quiet -p platform-e2e";
    let manifest = sample_manifest(root, name, Some(gateway_port));
    assert!(manifest.contains(e2e), "the sample manifest declares its e2e tests");
    let manifest = manifest.replace(
        e2e,
        &format!("command = \"cargo test --quiet --manifest-path {}/Cargo.toml -p platform-e2e", root.display()),
    );
    sample_workspace(root, dir, &manifest, &["services", "pkg", "proto"]);
}

#[test]
fn every_layer_of_the_sample_passes_then_fails_for_its_reason() {
    let root = repo_root();
    let name = format!("e2etest{}", std::process::id());
    let _cleanup = Cleanup { workspace: name.clone() };
    let dir = tempfile::tempdir().unwrap();
    workspace(&root, dir.path(), &name, free_port());
    let plat = Plat::build(dir.path(), env!("CARGO_TARGET_TMPDIR"));
    // The services' tests compile where scripts/test compiles them: the workspace's target directory.
    let target = Path::new(env!("CARGO_TARGET_TMPDIR")).parent().unwrap().to_path_buf();
    let test = |args: &[&str]| {
        let output = plat.command(args).env("CARGO_TARGET_DIR", &target).output().unwrap();
        let (stdout, stderr) = texts(&output);
        (output.status.code(), stdout, stderr)
    };

    // Before `plat up`: no platform to test end to end.
    let (code, _, stderr) = test(&["test", "--e2e"]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("the platform is not up") && stderr.contains("hint: `plat up`"), "{stderr}");

    plat.ok(&["up"]);

    // Each service's own suites; the ones with a database each get one in the workspace's container.
    let junit = dir.path().join("tests.xml");
    let (code, stdout, stderr) = test(&["test", "--junit", junit.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    for service in ["user-service", "order-service", "api-gateway"] {
        assert!(stdout.contains(&format!("test {service} ... ok (")), "{stdout}");
    }
    assert!(stderr.contains("Database user-service: user_service_test_"), "{stderr}");
    assert!(stderr.contains("Database order-service: order_service_test_"), "{stderr}");
    let report = std::fs::read_to_string(&junit).unwrap();
    assert!(
        report.contains("<testsuite name=\"service.user-service\"") && report.contains("failures=\"0\""),
        "{report}"
    );

    // Nothing changed: every service is cached.
    let (code, stdout, stderr) = test(&["test"]);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert!(stdout.contains("test result: ok. 0 passed; 0 failed; 3 cached; 0 skipped"), "{stdout}");

    // End to end through the gateway: a user, their order, the order fetched.
    let (code, stdout, stderr) = test(&["test", "--e2e"]);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert!(stdout.contains("e2e cargo test") && stdout.contains("... ok"), "{stdout}");
    assert!(stderr.contains("test result: ok. 1 passed; 0 failed"), "the e2e test ran: {stderr}");

    // user-service's table gone: the platform still runs and is healthy, and the e2e test fails.
    let container = format!("{name}-postgres");
    docker(&["exec", &container, "psql", "-U", "postgres", "-d", "user_service", "-c", "DROP TABLE users CASCADE"]);
    let (code, stdout, stderr) = test(&["test", "--e2e"]);
    assert_eq!(code, Some(1), "{stdout}{stderr}");
    assert!(stderr.contains("create user:"), "the test says what failed: {stderr}");
    assert!(stderr.contains("error: the end-to-end tests failed: `cargo test"), "{stderr}");
}
