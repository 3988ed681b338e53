//! `plat status`: branch, commit, changes, upstream distance and lock drift.

use crate::context::TestContext;

#[test]
fn reports_each_checkout_and_its_drift() {
    let context = TestContext::new();
    let clean = context.remote("clean");
    let busy = context.remote("busy");
    let later = context.remote("later");
    context.manifest(&format!(
        "[workspace]\nname = \"p\"\n[services.clean]\nrepo = \"{}\"\n[services.busy]\nrepo = \"{}\"\n[services.later]\nrepo = \"{}\"\n",
        clean.url, busy.url, later.url
    ));
    context.run(&["sync", "clean", "busy"]).expect_code(0);

    let busy_dir = context.checkout("busy");
    std::fs::write(busy_dir.join("README.md"), "changed").unwrap();
    std::fs::write(busy_dir.join("new.txt"), "new").unwrap();
    std::fs::write(busy_dir.join("local.txt"), "l").unwrap();
    context.git(&busy_dir, &["add", "local.txt"]);
    context.git(&busy_dir, &["commit", "--quiet", "-m", "local"]);

    let json = context.run(&["status", "--json"]).expect_code(0).json();
    let by_name = |name: &str| json.as_array().unwrap().iter().find(|s| s["name"] == name).unwrap().clone();

    let clean_status = by_name("clean");
    assert_eq!(clean_status["branch"], "main");
    assert_eq!(clean_status["commit"], context.head(&context.checkout("clean")));
    assert_eq!(clean_status["dirty"], 0);
    assert_eq!(clean_status["ahead"], 0);
    assert_eq!(clean_status["behind"], 0);
    assert_eq!(clean_status["locked"], true);

    let busy_status = by_name("busy");
    assert_eq!(busy_status["dirty"], 2);
    assert_eq!(busy_status["ahead"], 1);
    assert_eq!(busy_status["locked"], false, "HEAD moved past the locked commit");

    let later_status = by_name("later");
    assert_eq!(later_status["present"], false);
    assert_eq!(later_status["locked"], false);

    let table = context.run(&["status"]).expect_code(0);
    let stdout = table
        .stdout
        .replace(&context.head(&context.checkout("clean"))[..7], "<clean>")
        .replace(&context.head(&busy_dir)[..7], "<busy>");
    insta::assert_snapshot!(stdout);
    assert!(table.stderr.contains("run `plat sync`"), "{}", table.stderr);
}

#[test]
fn local_services_report_the_workspace_repository() {
    let context = TestContext::new();
    context.manifest("[workspace]\nname = \"p\"\n[services.a]\n[services.b]\n");
    context.git(&context.workspace, &["init", "--quiet", "--initial-branch=trunk"]);
    std::fs::create_dir_all(context.workspace.join("services/a")).unwrap();
    std::fs::create_dir_all(context.workspace.join("services/b")).unwrap();
    std::fs::write(context.workspace.join("services/a/main.rs"), "fn main() {}").unwrap();
    context.git(&context.workspace, &["add", "--all"]);
    context.git(&context.workspace, &["commit", "--quiet", "-m", "init"]);
    std::fs::write(context.workspace.join("services/a/main.rs"), "fn main() { }").unwrap();

    let json = context.run(&["status", "--json"]).expect_code(0).json();
    assert_eq!(json[0]["name"], "a");
    assert_eq!(json[0]["source"], "local");
    assert_eq!(json[0]["branch"], "trunk");
    assert_eq!(json[0]["dirty"], 1);
    assert_eq!(json[1]["dirty"], 0, "changes are counted per service directory");
    assert!(json[0]["locked"].is_null());
}

#[test]
fn a_workspace_in_a_subdirectory_of_its_repository_counts_changes_per_service() {
    let context = TestContext::new();
    context.git(&context.workspace, &["init", "--quiet", "--initial-branch=main"]);
    let platform = context.workspace.join("platform");
    std::fs::create_dir_all(platform.join("services/a")).unwrap();
    std::fs::write(platform.join("workspace.toml"), "[workspace]\nname = \"p\"\n[services.a]\n").unwrap();
    std::fs::write(platform.join("services/a/main.rs"), "fn main() {}").unwrap();
    context.git(&context.workspace, &["add", "--all"]);
    context.git(&context.workspace, &["commit", "--quiet", "-m", "init"]);
    std::fs::write(platform.join("services/a/main.rs"), "fn main() { }").unwrap();
    let run = context.plat().current_dir(&platform).args(["status", "--json"]).output().unwrap();
    let json: serde_json::Value = serde_json::from_slice(&run.stdout).unwrap();
    assert_eq!(json[0]["dirty"], 1, "{json}");
}
