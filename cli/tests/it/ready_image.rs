//! Ready images (`image = "name:tag"` and no `build`) against the real Docker Engine: run as they
//! are beside services cloned from their own repositories, never built, synced or tagged `:dev`;
//! their named volumes kept by `plat down` and removed by `plat down --volumes`; and one that is
//! missing stops `plat up` before anything is built or started, with the way to make it.

use crate::context::{TestContext, ensure_nats_image, ensure_postgres_image};
use crate::docker::{Names, docker};

/// NATS from the sample's ready image, and `app`, a service of its own repository (built by
/// tagging the PostgreSQL image, which has bash) that is healthy once it reaches NATS by its
/// service name on the workspace network and reads the server's greeting.
fn manifest(workspace: &str, app_repo: &str) -> String {
    format!(
        "[workspace]\nname = \"{workspace}\"\n\n\
         [services.nats]\nimage = \"plat/nats:2\"\nports = {{ client = 4222, monitoring = 8222 }}\n\
         health = {{ http = \"/healthz\", port = \"monitoring\", interval = \"200ms\" }}\nvolumes = {{ data = \"/data\" }}\n\n\
         [services.app]\nrepo = \"{app_repo}\"\nbuild = {{ command = \"docker tag plat/postgres:15 \\\"$PLAT_IMAGE\\\"\" }}\n\
         ports = {{ pg = 5432 }}\ndepends_on = {{ nats = \"healthy\" }}\n\
         health = {{ cmd = [\"bash\", \"-c\", \"exec 3<>/dev/tcp/nats/4222 && head -c 4 <&3 | grep -q INFO\"], interval = \"200ms\" }}\n"
    )
}

#[test]
fn up_runs_a_ready_image_beside_a_service_of_its_own_repository() {
    ensure_postgres_image();
    ensure_nats_image();
    let names = Names::new("ready");
    let context = TestContext::new();
    let app = context.remote("app");
    context.manifest(&manifest(&names.workspace, &app.url));

    // sync clones the service and has nothing to do for the ready image: no directory, no lock entry.
    context.run(&["sync"]).expect_code(0);
    assert!(context.checkout("app").join("README.md").is_file());
    assert!(!context.checkout("nats").exists(), "a ready image gets no directory");
    let lock = std::fs::read_to_string(context.workspace.join("plat.lock")).unwrap();
    assert!(lock.contains("app") && !lock.contains("nats"), "{lock}");
    for command in ["sync", "status"] {
        let run = context.run(&[command, "nats"]).expect_code(2);
        assert!(
            run.stderr
                .contains("error: service `nats` runs the ready image plat/nats:2: it has no code to clone or inspect"),
            "{}",
            run.stderr
        );
    }

    let run = context.run(&["up"]).expect_code(0);
    let at = |needle: &str| run.stderr.find(needle).unwrap_or_else(|| panic!("no `{needle}` in:\n{}", run.stderr));
    assert!(at("Fresh nats plat/nats:2") < at("Created nats"), "looked up, never built: {}", run.stderr);
    assert!(at("Ready nats after") < at("Created app"), "app waits for NATS to be healthy: {}", run.stderr);
    assert!(at("Ready app after") > at("Created app"), "app reached NATS by its name: {}", run.stderr);
    assert!(!run.stderr.contains("plat/nats:2:dev") && !run.stderr.contains("nats:dev"), "{}", run.stderr);
    let image = docker(&["inspect", "--format", "{{.Config.Image}}", &format!("{}-nats", names.workspace)]);
    assert!(image.starts_with("sha256:"), "the container runs the image by id: {image}");
    let tagged = docker(&["image", "inspect", "--format", "{{.Id}}", "plat/nats:2"]);
    assert_eq!(image, tagged, "the container runs plat/nats:2 itself");

    let rows = context.run(&["ps", "--json"]).expect_code(0).json();
    assert_eq!(rows[0]["service"], "nats", "{rows}");
    assert_eq!((rows[0]["state"].as_str(), rows[0]["health"].as_str()), (Some("running"), Some("healthy")), "{rows}");
    assert_eq!(rows[0]["up_to_date"], true, "{rows}");

    // doctor lists the ready image as present.
    let doctor = context.run(&["doctor", "--json"]).json();
    let check = doctor["checks"].as_array().unwrap().iter().find(|check| check["name"] == "plat/nats:2").cloned();
    let check = check.unwrap_or_else(|| panic!("doctor checks plat/nats:2: {doctor}"));
    assert_eq!((check["ok"].as_bool(), check["required"].as_bool()), (Some(true), Some(true)), "{check}");

    // Up again: nothing changed.
    let run = context.run(&["up"]).expect_code(0);
    assert!(run.stderr.contains("Running nats (unchanged)"), "{}", run.stderr);

    // The named volume: created for the service, kept by down, removed by down --volumes.
    let volume = format!("{}-nats-data", names.workspace);
    assert_eq!(docker(&["volume", "ls", "-q", "--filter", &format!("name={volume}")]), volume);
    let stored = docker(&["exec", &format!("{}-nats", names.workspace), "/usr/sbin/nats-server", "--version"]);
    assert!(stored.contains("v2."), "{stored}");
    context.run(&["down"]).expect_code(0);
    assert_eq!(docker(&["volume", "ls", "-q", "--filter", &format!("name={volume}")]), volume, "down keeps it");
    let run = context.run(&["down", "--volumes"]).expect_code(0);
    assert!(run.stderr.contains(&format!("Removed volume {volume}")), "{}", run.stderr);
    assert_eq!(docker(&["volume", "ls", "-q", "--filter", &format!("name={volume}")]), "");
}

#[test]
fn a_missing_ready_image_stops_up_before_anything_is_built_or_started() {
    let names = Names::new("ready");
    let context = TestContext::new();
    let missing = format!("{}/missing:1", names.workspace);
    context.manifest(&format!(
        "[workspace]\nname = \"{}\"\n\n[services.app]\nbuild = {{ command = \"echo reached the build >&2; exit 3\" }}\n\n\
         [services.ghost]\nimage = \"{missing}\"\ndepends_on = [\"app\"]\n",
        names.workspace
    ));
    std::fs::create_dir_all(context.checkout("app")).unwrap();

    let run = context.run(&["up"]).expect_code(1);
    assert!(
        run.stderr.contains(&format!(
            "error: ghost: image {missing} is not on this machine, and plat does not build it (the service has no \
             `build`) nor pull it from a registry"
        )),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains(&format!("hint: make it on this machine (`docker build -t {missing} ...`")),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains("reached the build"), "nothing was built first: {}", run.stderr);
    let left = docker(&["ps", "-aq", "--filter", &format!("label=dev.plat.workspace={}", names.workspace)]);
    assert_eq!(left, "", "nothing was started");

    // doctor names it, missing, with the same way to make it; `plat build` says it too.
    let doctor = context.run(&["doctor", "--json"]).json();
    let check = doctor["checks"].as_array().unwrap().iter().find(|check| check["name"] == missing.as_str()).cloned();
    let check = check.unwrap_or_else(|| panic!("doctor checks {missing}: {doctor}"));
    assert_eq!((check["ok"].as_bool(), check["required"].as_bool()), (Some(false), Some(true)), "{check}");
    assert_eq!(check["problem"], "the image is not on this machine", "{check}");
    assert!(check["hint"].as_str().unwrap().contains(&format!("docker build -t {missing}")), "{check}");
    let run = context.run(&["build", "ghost"]).expect_code(1);
    assert!(run.stderr.contains(&format!("error: ghost: image {missing} is not on this machine")), "{}", run.stderr);
}
