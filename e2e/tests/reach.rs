//! `plat up` where plat cannot route to the containers, as on Docker Desktop or with a remote
//! Engine: plat itself in a container on Docker's default bridge with the Engine's socket
//! mounted (the workspace network's addresses are not reachable from there), and plat on this
//! machine with `DOCKER_HOST=tcp://` to a relay on loopback the test runs (an Engine plat takes
//! for remote). Health checks, migrations and contract probes all go through the Engine then;
//! the platform comes up healthy and its contracts pass. Also: two `plat up` at once, and a
//! second checkout of the same workspace refused with a way out.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};

use platform_e2e::plat::{Cleanup, Plat, docker, free_port, sample_manifest, sample_workspace, texts};
use platform_e2e::platform::repo_root;
use serde_json::Value;

/// A TCP listener on loopback that passes every connection on to the Engine's unix socket, as
/// `DOCKER_HOST=tcp://` to a remote Engine would reach it.
fn engine_relay() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for client in listener.incoming().map_while(Result::ok) {
            let Ok(engine) = std::os::unix::net::UnixStream::connect("/var/run/docker.sock") else { continue };
            let (mut client_in, mut engine_in) = (client.try_clone().unwrap(), engine.try_clone().unwrap());
            let (mut client_out, mut engine_out) = (client, engine);
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut client_in, &mut engine_out);
                let _ = engine_out.shutdown(std::net::Shutdown::Write);
            });
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut engine_in, &mut client_out);
                let _ = client_out.shutdown(std::net::Shutdown::Write);
            });
        }
    });
    port
}

fn healthy_rows(stdout: &str) -> Vec<(String, String)> {
    let rows: Vec<Value> = serde_json::from_str(stdout).unwrap_or_else(|error| panic!("{error}: {stdout}"));
    rows.iter()
        .filter(|row| row["service"] != "postgres")
        .map(|row| (row["service"].as_str().unwrap().to_owned(), row["health"].as_str().unwrap_or("-").to_owned()))
        .collect()
}

#[test]
fn plat_reaches_containers_through_the_engine_when_it_cannot_route_to_them() {
    let root = repo_root();
    let name = format!("reach{}", std::process::id());
    let _cleanup = Cleanup { workspace: name.clone() };
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    sample_workspace(&root, dir.path(), &sample_manifest(&root, &name, Some(port)), &["services", "pkg", "proto"]);
    let plat = Plat::build(dir.path(), env!("CARGO_TARGET_TMPDIR"));
    plat.ok(&["build"]);

    // plat in a container on the default bridge: Debian's, as the PostgreSQL image is, with
    // plat's binary, the workspace at the same path, and the Engine's socket.
    let binary = Path::new(env!("CARGO_TARGET_TMPDIR")).parent().unwrap().join("debug/plat");
    let workspace_dir = dir.path().to_str().unwrap();
    let in_container = |args: &[&str]| {
        Command::new("docker")
            .args(["run", "--rm", "--network", "bridge", "-e", "NO_COLOR=1"])
            .args(["-v", "/var/run/docker.sock:/var/run/docker.sock"])
            .args(["-v", &format!("{}:/usr/local/bin/plat:ro", binary.display())])
            .args(["-v", &format!("{}:{}", root.display(), root.display())])
            .args(["-v", &format!("{workspace_dir}:{workspace_dir}"), "-w", workspace_dir])
            .args(["--entrypoint", "/usr/local/bin/plat", "plat/postgres:15"])
            .args(args)
            .output()
            .unwrap()
    };
    let output = in_container(&["up", "--no-build"]);
    let (stdout, stderr) = texts(&output);
    assert!(output.status.success(), "plat up in a container:\n{stdout}{stderr}");
    assert!(stderr.contains("Migrated user-service"), "migrations through the Engine: {stderr}");
    assert!(stderr.contains("Ready api-gateway"), "{stderr}");
    let relay = docker(&["ps", "-q", "--filter", &format!("name=^{name}-relay$")]);
    assert!(!relay.is_empty(), "the probes went through the relay container");

    let output = in_container(&["ps", "--json"]);
    let (stdout, stderr) = texts(&output);
    assert!(output.status.success(), "{stdout}{stderr}");
    for (service, health) in healthy_rows(&stdout) {
        assert_eq!(health, "healthy", "{service} probed from inside a container: {stdout}");
    }
    let output = in_container(&["test", "--contract"]);
    let (stdout, stderr) = texts(&output);
    assert!(output.status.success(), "contracts from inside a container:\n{stdout}{stderr}");
    assert!(stdout.contains("contract test result: ok."), "{stdout}");

    // An Engine over TCP is remote to plat: everything goes through it, from this machine too.
    let tcp = format!("tcp://127.0.0.1:{}", engine_relay());
    let remote = |args: &[&str]| {
        let output = plat.command(args).env("DOCKER_HOST", &tcp).output().unwrap();
        let (stdout, stderr) = texts(&output);
        assert!(output.status.success(), "DOCKER_HOST={tcp} plat {args:?}:\n{stdout}{stderr}");
        (stdout, stderr)
    };
    let (stdout, _) = remote(&["ps", "--json"]);
    for (service, health) in healthy_rows(&stdout) {
        assert_eq!(health, "healthy", "{service} over a remote Engine: {stdout}");
    }
    let (_, stderr) = remote(&["up", "--no-build"]);
    assert!(stderr.contains("Running user-service (unchanged)"), "the same checkout's containers: {stderr}");
    let (stdout, _) = remote(&["test", "--contract"]);
    assert!(stdout.contains("contract test result: ok."), "{stdout}");

    // A second checkout of the same workspace is refused, with a way out; under a name of its
    // own it is a platform of its own.
    let second = tempfile::tempdir().unwrap();
    sample_workspace(
        &root,
        second.path(),
        &sample_manifest(&root, &name, Some(free_port())),
        &["services", "pkg", "proto"],
    );
    let other = Plat::build(second.path(), env!("CARGO_TARGET_TMPDIR"));
    let output = other.run(&["up", "--no-build"]);
    let (stdout, stderr) = texts(&output);
    assert_eq!(output.status.code(), Some(1), "{stdout}{stderr}");
    assert!(stderr.contains(&format!("workspace `{name}` runs from another checkout")), "{stderr}");
    assert!(stderr.contains("--project NAME"), "{stderr}");
    let (_, stderr) = other.ok(&["down"]);
    assert!(stderr.contains("left alone:"), "down does not touch the first checkout's: {stderr}");
    assert!(!docker(&["ps", "-q", "--filter", &format!("name=^{name}-user-service$")]).is_empty());

    // Two `plat up` at once from nothing (no network, no container): both succeed, nothing is
    // duplicated.
    plat.ok(&["down"]);
    let start = || plat.command(&["up", "--no-build"]).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    let (mut first, mut second) = (start(), start());
    for child in [&mut first, &mut second] {
        let mut stderr = String::new();
        child.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
        assert!(child.wait().unwrap().success(), "{stderr}");
    }
    let networks = docker(&["network", "ls", "-q", "--filter", &format!("name=^{name}-net$")]);
    assert_eq!(networks.lines().count(), 1, "one network");
    for service in ["user-service", "order-service", "api-gateway"] {
        let containers = docker(&["ps", "-q", "--filter", &format!("name=^{name}-{service}$")]);
        assert_eq!(containers.lines().count(), 1, "one {service}");
    }

    // One that finds the workspace busy says with what, waits, then goes on: the lock held here
    // as another plat holds it (an OS lock on .plat/lock, and who holds it written in it).
    let mut held = std::fs::OpenOptions::new().write(true).open(dir.path().join(".plat/lock")).unwrap();
    held.lock().unwrap();
    held.set_len(0).unwrap();
    write!(held, "{} plat build", std::process::id()).unwrap();
    let mut waiting = plat.command(&["up", "--no-build"]).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    let mut stderr = BufReader::new(waiting.stderr.take().unwrap());
    let mut line = String::new();
    stderr.read_line(&mut line).unwrap();
    let expected = format!("Waiting for `plat build` (pid {}) to finish with workspace `{name}`", std::process::id());
    assert!(line.contains(&expected), "the first thing it says: {line}");
    drop(held);
    let mut rest = String::new();
    stderr.read_to_string(&mut rest).unwrap();
    assert!(waiting.wait().unwrap().success(), "{rest}");
    assert!(rest.contains("Running api-gateway (unchanged)"), "{rest}");

    let (_, stderr) = plat.ok(&["down", "--volumes"]);
    assert!(stderr.contains(&format!("Removed volume {name}-postgres-data")), "{stderr}");
    assert!(docker(&["ps", "-aq", "--filter", &format!("label=dev.plat.workspace={name}")]).is_empty());
    let (_, stderr) = plat.ok(&["down", "--volumes"]);
    assert!(!stderr.contains("Removed"), "down reports only what it removed: {stderr}");
}
