//! `plat sync` against real repositories: clone, fetch, pins, the lock, and never losing work.

use std::time::{Duration, Instant};

use crate::context::{Remote, TestContext};

/// A workspace of the given `(service, remote, extra manifest lines)`.
fn workspace(context: &TestContext, services: &[(&str, &Remote, &str)]) {
    let mut text = String::from("[workspace]\nname = \"test\"\n");
    for (name, remote, extra) in services {
        text.push_str(&format!("\n[services.{name}]\nrepo = \"{}\"\n{extra}\n", remote.url));
    }
    context.manifest(&text);
}

fn lock(context: &TestContext) -> toml::Table {
    let text = std::fs::read_to_string(context.workspace.join("plat.lock")).expect("plat.lock exists");
    text.parse().unwrap()
}

fn locked_commit(context: &TestContext, service: &str) -> String {
    lock(context)["service"]
        .as_array()
        .unwrap()
        .iter()
        .find(|entry| entry["name"].as_str() == Some(service))
        .unwrap_or_else(|| panic!("{service} is not in plat.lock"))["commit"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[test]
fn clones_then_fast_forwards_and_locks() {
    let context = TestContext::new();
    let users = context.remote("users");
    let orders = context.remote("orders");
    workspace(&context, &[("user-service", &users, ""), ("order-service", &orders, "rev = \"main\"")]);

    let run = context.run(&["sync"]).expect_code(0);
    assert!(run.stderr.contains("Cloned user-service"), "{}", run.stderr);
    assert!(run.stderr.contains("plat.lock updated"), "{}", run.stderr);
    let users_dir = context.checkout("user-service");
    assert_eq!(context.head(&users_dir), context.head(&context.checkout("user-service")));
    assert_eq!(context.branch(&users_dir).as_deref(), Some("main"));
    assert_eq!(locked_commit(&context, "user-service"), context.head(&users_dir));

    let new_commit = users.commit(&context, "src.txt", "v2");
    users.push(&context, "main");
    let run = context.run(&["sync"]).expect_code(0);
    assert!(run.stderr.contains("Updated user-service main"), "{}", run.stderr);
    assert!(run.stderr.contains("Fresh order-service"), "{}", run.stderr);
    assert_eq!(context.head(&users_dir), new_commit);
    assert_eq!(locked_commit(&context, "user-service"), new_commit);
    // The local branch tracks its upstream.
    assert_eq!(context.git(&users_dir, &["rev-parse", "--abbrev-ref", "main@{upstream}"]), "origin/main");
}

#[test]
fn pins_to_a_branch_a_tag_and_a_commit() {
    let context = TestContext::new();
    let remote = context.remote("svc");
    let first = context.head(&context.checkout_dir_of(&remote));
    remote.tag(&context, "v1.0.0");
    remote.branch(&context, "release");
    let release = remote.commit(&context, "release.txt", "r");
    remote.push(&context, "release");
    workspace(
        &context,
        &[
            ("by-branch", &remote, "rev = \"release\""),
            ("by-tag", &remote, "rev = \"v1.0.0\"\npath = \"services/by-tag\""),
            ("by-commit", &remote, &format!("rev = \"{}\"", &first[..12])),
        ],
    );
    let run = context.run(&["sync"]).expect_code(0);
    assert!(run.stderr.contains("tag v1.0.0"), "{}", run.stderr);
    assert!(run.stderr.contains("detached as pinned"), "{}", run.stderr);

    let branch_dir = context.checkout("by-branch");
    assert_eq!(context.head(&branch_dir), release);
    assert_eq!(context.branch(&branch_dir).as_deref(), Some("release"));

    let tag_dir = context.checkout("by-tag");
    assert_eq!(context.head(&tag_dir), first);
    assert_eq!(context.branch(&tag_dir), None, "a tag is checked out detached");

    let commit_dir = context.checkout("by-commit");
    assert_eq!(context.head(&commit_dir), first);
    assert_eq!(context.branch(&commit_dir), None, "a commit is checked out detached");

    // Pins do not move when the branch does.
    remote.commit(&context, "later.txt", "l");
    remote.push(&context, "main");
    context.run(&["sync"]).expect_code(0);
    assert_eq!(context.head(&tag_dir), first);
    assert_eq!(context.head(&commit_dir), first);
}

#[test]
fn locked_checks_out_the_lock_and_refuses_a_stale_or_missing_one() {
    let context = TestContext::new();
    let remote = context.remote("svc");
    workspace(&context, &[("svc", &remote, "rev = \"main\"")]);

    let run = context.run(&["sync", "--locked"]).expect_code(1);
    assert!(run.stderr.contains("plat.lock does not exist"), "{}", run.stderr);
    assert!(!context.checkout("svc").exists(), "nothing is cloned without a lock");

    context.run(&["sync"]).expect_code(0);
    let locked = locked_commit(&context, "svc");
    remote.commit(&context, "new.txt", "n");
    remote.push(&context, "main");

    // A fresh machine: the checkout is gone, the lock is committed.
    std::fs::remove_dir_all(context.checkout("svc")).unwrap();
    let run = context.run(&["sync", "--locked"]).expect_code(0);
    assert!(!run.stderr.contains("plat.lock updated"), "--locked never rewrites the lock: {}", run.stderr);
    assert_eq!(context.head(&context.checkout("svc")), locked, "the locked commit, not the newer one");
    assert_eq!(locked_commit(&context, "svc"), locked);

    // The manifest moved on: the lock no longer matches.
    workspace(&context, &[("svc", &remote, "rev = \"v2\"")]);
    let run = context.run(&["sync", "--locked"]).expect_code(1);
    assert!(run.stderr.contains("is locked to") && run.stderr.contains("workspace.toml says"), "{}", run.stderr);
    assert!(run.stderr.contains("hint:"), "{}", run.stderr);
}

#[test]
fn never_overwrites_local_changes_and_says_how_to_move_on() {
    let context = TestContext::new();
    let remote = context.remote("svc");
    workspace(&context, &[("svc", &remote, "")]);
    context.run(&["sync"]).expect_code(0);
    let dir = context.checkout("svc");
    let before = context.head(&dir);
    std::fs::write(dir.join("README.md"), "my unsaved work\n").unwrap();

    remote.commit(&context, "README.md", "upstream change\n");
    remote.push(&context, "main");
    let run = context.run(&["sync"]).expect_code(1);
    assert!(
        run.stderr.contains("error: svc: not moved to main at") && run.stderr.contains("local changes to README.md"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("git -C services/svc stash --include-untracked"), "{}", run.stderr);
    assert!(run.stderr.contains("1 left as they were"), "{}", run.stderr);
    assert_eq!(std::fs::read_to_string(dir.join("README.md")).unwrap(), "my unsaved work\n");
    assert_eq!(context.head(&dir), before);

    // The lock holds what `main` resolved to; --locked cannot move the checkout there either,
    // and says so with exit 1, leaving the work where it was.
    let run = context.run(&["sync", "--locked"]).expect_code(1);
    assert!(run.stderr.contains("cannot check out locked commit"), "{}", run.stderr);
    assert_eq!(std::fs::read_to_string(dir.join("README.md")).unwrap(), "my unsaved work\n");
    assert_eq!(context.head(&dir), before);

    // Stashed as the hint says, the next sync moves it.
    context.git(&dir, &["stash", "--quiet", "--include-untracked"]);
    context.run(&["sync"]).expect_code(0);
    assert_eq!(std::fs::read_to_string(dir.join("README.md")).unwrap(), "upstream change\n");
}

#[test]
fn moves_whenever_git_would_keeping_untracked_ignored_and_untouched_changes() {
    let context = TestContext::new();
    let remote = context.remote("svc");
    remote.commit(&context, ".gitignore", "/target\n");
    remote.commit(&context, "src/lib.rs", "// v1\n");
    remote.push(&context, "main");
    workspace(&context, &[("svc", &remote, "")]);
    context.run(&["sync"]).expect_code(0);
    let dir = context.checkout("svc");

    // What a developer leaves in a checkout: build output (ignored), a scratch file
    // (untracked), an edit and a staged edit to files upstream does not touch.
    std::fs::create_dir_all(dir.join("target/debug")).unwrap();
    std::fs::write(dir.join("target/debug/svc"), "binary").unwrap();
    std::fs::write(dir.join("notes.txt"), "scratch").unwrap();
    std::fs::write(dir.join("README.md"), "# svc, edited\n").unwrap();
    std::fs::write(dir.join(".gitignore"), "/target\n/dist\n").unwrap();
    context.git(&dir, &["add", ".gitignore"]);

    let next = remote.commit(&context, "src/lib.rs", "// v2\n");
    remote.push(&context, "main");
    let run = context.run(&["sync"]).expect_code(0);
    assert!(run.stderr.contains("Updated svc main"), "{}", run.stderr);
    assert_eq!(context.head(&dir), next);
    assert_eq!(std::fs::read_to_string(dir.join("src/lib.rs")).unwrap(), "// v2\n");
    assert_eq!(std::fs::read_to_string(dir.join("target/debug/svc")).unwrap(), "binary");
    assert_eq!(std::fs::read_to_string(dir.join("notes.txt")).unwrap(), "scratch");
    assert_eq!(std::fs::read_to_string(dir.join("README.md")).unwrap(), "# svc, edited\n");
    let staged = context.git(&dir, &["diff", "--cached", "--name-only"]);
    assert_eq!(staged, ".gitignore", "the staged change stays staged");
    assert_eq!(locked_commit(&context, "svc"), next);

    // An untracked file where upstream adds one: git refuses, and so does plat, naming it.
    std::fs::write(dir.join("new.rs"), "mine").unwrap();
    remote.commit(&context, "new.rs", "theirs");
    remote.push(&context, "main");
    let run = context.run(&["sync"]).expect_code(1);
    assert!(run.stderr.contains("local changes to new.rs"), "{}", run.stderr);
    assert_eq!(std::fs::read_to_string(dir.join("new.rs")).unwrap(), "mine");
    assert_eq!(context.head(&dir), next);
}

#[test]
fn does_not_carry_uncommitted_changes_off_a_branch() {
    let context = TestContext::new();
    let remote = context.remote("svc");
    workspace(&context, &[("svc", &remote, "")]);
    context.run(&["sync"]).expect_code(0);
    let dir = context.checkout("svc");
    context.git(&dir, &["switch", "--quiet", "-c", "feature"]);
    std::fs::write(dir.join("README.md"), "feature work\n").unwrap();
    remote.commit(&context, "other.txt", "o");
    remote.push(&context, "main");

    let run = context.run(&["sync"]).expect_code(1);
    assert!(run.stderr.contains("it is on branch feature with uncommitted changes to README.md"), "{}", run.stderr);
    assert_eq!(context.branch(&dir).as_deref(), Some("feature"));
    assert_eq!(std::fs::read_to_string(dir.join("README.md")).unwrap(), "feature work\n");

    // An untracked file alone does not hold it back.
    context.git(&dir, &["checkout", "--quiet", "--", "README.md"]);
    std::fs::write(dir.join("scratch.txt"), "s").unwrap();
    let run = context.run(&["sync"]).expect_code(0);
    assert!(run.stderr.contains("Switched svc to main"), "{}", run.stderr);
    assert!(dir.join("scratch.txt").exists());
}

#[test]
fn never_loses_unpushed_or_diverged_commits() {
    let context = TestContext::new();
    let remote = context.remote("svc");
    workspace(&context, &[("svc", &remote, "")]);
    context.run(&["sync"]).expect_code(0);
    let dir = context.checkout("svc");

    std::fs::write(dir.join("local.txt"), "mine").unwrap();
    context.git(&dir, &["add", "local.txt"]);
    context.git(&dir, &["commit", "--quiet", "-m", "local work"]);
    let local = context.head(&dir);
    // Ahead only: the checkout holds the remote's commit, nothing to move, nothing skipped.
    let run = context.run(&["sync"]).expect_code(0);
    assert!(
        run.stderr.contains("Ahead svc main at") && run.stderr.contains("1 local commit not pushed yet"),
        "{}",
        run.stderr
    );
    assert_eq!(context.head(&dir), local);

    remote.commit(&context, "theirs.txt", "theirs");
    remote.push(&context, "main");
    let run = context.run(&["sync"]).expect_code(1);
    assert!(run.stderr.contains("its branch main and the remote have diverged"), "{}", run.stderr);
    assert!(run.stderr.contains("git -C services/svc pull --rebase origin main"), "{}", run.stderr);
    assert_eq!(context.head(&dir), local, "a diverged branch is not moved");
}

#[test]
fn keeps_a_detached_head_that_no_branch_contains() {
    let context = TestContext::new();
    let remote = context.remote("svc");
    workspace(&context, &[("svc", &remote, "")]);
    context.run(&["sync"]).expect_code(0);
    let dir = context.checkout("svc");
    context.git(&dir, &["switch", "--quiet", "--detach"]);
    std::fs::write(dir.join("experiment.txt"), "x").unwrap();
    context.git(&dir, &["add", "experiment.txt"]);
    context.git(&dir, &["commit", "--quiet", "-m", "experiment"]);
    let orphan = context.head(&dir);

    let run = context.run(&["sync"]).expect_code(1);
    assert!(run.stderr.contains("a commit no branch or tag contains"), "{}", run.stderr);
    assert!(run.stderr.contains(&format!("switch -c <name> {}", &orphan[..7])), "{}", run.stderr);
    assert_eq!(context.head(&dir), orphan);
}

#[test]
fn one_failing_repository_does_not_stop_the_others() {
    let context = TestContext::new();
    let good = context.remote("good");
    let missing = Remote::at(&format!("file://{}/remotes/nope.git", context.workspace.parent().unwrap().display()));
    workspace(
        &context,
        &[
            ("bad", &missing, ""),
            ("good", &good, ""),
            ("wrong-rev", &good, "rev = \"no-such-branch\"\npath = \"services/wrong-rev\""),
        ],
    );

    let run = context.run(&["sync", "-j", "1"]).expect_code(1);
    assert!(run.stderr.contains("error: bad:"), "{}", run.stderr);
    assert!(run.stderr.contains("error: wrong-rev: `no-such-branch` is not a branch, tag or commit"), "{}", run.stderr);
    assert!(run.stderr.contains("Cloned good"), "{}", run.stderr);
    assert!(run.stderr.contains("2 failed"), "{}", run.stderr);
    assert!(context.checkout("good").join("README.md").exists());
    assert!(!context.checkout("bad").exists(), "a failed clone leaves nothing behind");
    // The lock records what succeeded.
    assert_eq!(locked_commit(&context, "good"), context.head(&context.checkout("good")));
}

#[test]
fn refuses_a_directory_that_is_not_a_clone_of_the_repo() {
    let context = TestContext::new();
    let remote = context.remote("svc");
    let other = context.remote("other");
    workspace(&context, &[("svc", &remote, ""), ("not-git", &remote, "")]);
    std::fs::create_dir_all(context.checkout("not-git")).unwrap();
    std::fs::write(context.checkout("not-git").join("notes.txt"), "keep me").unwrap();
    context.git(&context.workspace, &["clone", "--quiet", &other.url, "services/svc"]);

    let run = context.run(&["sync"]).expect_code(1);
    assert!(run.stderr.contains("is not a git repository"), "{}", run.stderr);
    assert!(run.stderr.contains("is a clone of"), "{}", run.stderr);
    assert_eq!(std::fs::read_to_string(context.checkout("not-git").join("notes.txt")).unwrap(), "keep me");
}

#[test]
fn the_git_cli_does_the_same_work_when_asked() {
    let context = TestContext::new();
    let remote = context.remote("svc");
    workspace(&context, &[("svc", &remote, "")]);
    let run = context.run_with_env(&["sync"], &[("PLAT_GIT_FETCH_WITH_CLI", "true")]).expect_code(0);
    assert!(run.stderr.contains("Cloned svc"), "{}", run.stderr);
    let next = remote.commit(&context, "b.txt", "b");
    remote.push(&context, "main");
    context.run_with_env(&["sync"], &[("PLAT_GIT_FETCH_WITH_CLI", "true")]).expect_code(0);
    assert_eq!(context.head(&context.checkout("svc")), next);
}

#[test]
fn falls_back_to_the_git_cli_for_urls_libgit2_cannot_open() {
    let context = TestContext::new();
    let remote = context.remote("svc");
    let bare = remote.url.trim_start_matches("file://");
    // `ext::` runs a command as the transport: the git CLI has it, libgit2 does not.
    let ext = Remote::at(&format!("ext::git %s {bare}"));
    workspace(&context, &[("svc", &ext, "")]);
    let allow_ext =
        [("GIT_CONFIG_COUNT", "1"), ("GIT_CONFIG_KEY_0", "protocol.ext.allow"), ("GIT_CONFIG_VALUE_0", "always")];
    let run = context.run_with_env(&["sync"], &allow_ext).expect_code(0);
    assert!(run.stderr.contains("Cloned svc"), "{}", run.stderr);
    let next = remote.commit(&context, "c.txt", "c");
    remote.push(&context, "main");
    context.run_with_env(&["sync"], &allow_ext).expect_code(0);
    assert_eq!(context.head(&context.checkout("svc")), next);
}

#[test]
fn unreachable_and_unauthorised_remotes_fail_fast_without_prompting() {
    let context = TestContext::new();
    let server = crate::context::UnauthorizedServer::start();
    let http = Remote::at(&format!("http://127.0.0.1:{}/svc.git", server.port()));
    let ssh = Remote::at("ssh://git@127.0.0.1:1/svc.git");
    workspace(&context, &[("http-svc", &http, ""), ("ssh-svc", &ssh, "")]);
    // A credential helper that always answers, with credentials the server always refuses:
    // without a bound, libgit2 would ask again forever.
    context.git(
        &context.workspace,
        &["config", "--global", "credential.helper", "!f() { echo username=u; echo password=wrong; }; f"],
    );
    let started = Instant::now();
    let run = context.run(&["sync"]).expect_code(1);
    assert!(started.elapsed() < Duration::from_secs(30), "took {:?}", started.elapsed());
    assert!(run.stderr.contains("error: http-svc: authentication failed"), "{}", run.stderr);
    assert!(run.stderr.contains(&format!("after {} attempt(s)", plat::git::MAX_AUTH_ATTEMPTS)), "{}", run.stderr);
    assert!(run.stderr.contains("error: ssh-svc:"), "{}", run.stderr);
    assert!(server.requests() <= 2 + plat::git::MAX_AUTH_ATTEMPTS as usize, "{} requests", server.requests());
    assert!(!context.workspace.join("plat.lock").exists(), "nothing to lock when every repository failed");
}

#[test]
fn does_not_switch_to_a_branch_it_could_not_then_update() {
    let context = TestContext::new();
    let remote = context.remote("svc");
    workspace(&context, &[("svc", &remote, "")]);
    context.run(&["sync"]).expect_code(0);
    let dir = context.checkout("svc");
    // Local `main` gets a commit of its own, then the developer moves to a feature branch.
    std::fs::write(dir.join("local.txt"), "mine").unwrap();
    context.git(&dir, &["add", "local.txt"]);
    context.git(&dir, &["commit", "--quiet", "-m", "local"]);
    context.git(&dir, &["switch", "--quiet", "-c", "feature"]);
    remote.commit(&context, "theirs.txt", "theirs");
    remote.push(&context, "main");

    let run = context.run(&["sync"]).expect_code(1);
    assert!(run.stderr.contains("diverged"), "{}", run.stderr);
    assert_eq!(context.branch(&dir).as_deref(), Some("feature"), "left exactly where it was");
}

#[test]
fn switches_back_to_the_branch_and_fast_forwards_it() {
    let context = TestContext::new();
    let remote = context.remote("svc");
    workspace(&context, &[("svc", &remote, "")]);
    context.run(&["sync"]).expect_code(0);
    let dir = context.checkout("svc");
    context.git(&dir, &["switch", "--quiet", "-c", "feature"]);
    let next = remote.commit(&context, "next.txt", "n");
    remote.push(&context, "main");

    let run = context.run(&["sync"]).expect_code(0);
    assert!(run.stderr.contains("Switched svc to main"), "{}", run.stderr);
    assert_eq!(context.branch(&dir).as_deref(), Some("main"));
    assert_eq!(context.head(&dir), next);
    assert_eq!(
        context.git(&dir, &["rev-parse", "feature"]),
        context.git(&dir, &["rev-parse", "HEAD~1"]),
        "feature is kept"
    );
}

#[test]
fn a_relative_repo_path_is_relative_to_the_workspace() {
    let context = TestContext::new();
    let remote = context.remote("svc");
    let bare = std::path::PathBuf::from(remote.url.trim_start_matches("file://"));
    let relative = format!("../remotes/{}", bare.file_name().unwrap().to_str().unwrap());
    context.manifest(&format!("[workspace]\nname = \"p\"\n[services.svc]\nrepo = \"{relative}\"\n"));
    let nested = context.workspace.join("services");
    std::fs::create_dir_all(&nested).unwrap();
    // Run from a subdirectory: the path still resolves against the workspace root.
    let run = context.plat().current_dir(&nested).arg("sync").output().unwrap();
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let run = context.run(&["sync"]).expect_code(0);
    assert!(run.stderr.contains("Fresh svc"), "{}", run.stderr);
}

#[test]
fn libraries_are_cloned_locked_and_shown_like_services() {
    let context = TestContext::new();
    let users = context.remote("users");
    let shared = context.remote("shared");
    context.manifest(&format!(
        "[workspace]\nname = \"p\"\n[services.user-service]\nrepo = \"{}\"\n[libraries.pkg]\nrepo = \"{}\"\n",
        users.url, shared.url
    ));
    let run = context.run(&["sync"]).expect_code(0);
    assert!(run.stderr.contains("Cloned pkg main at"), "{}", run.stderr);
    assert!(run.stderr.contains("2 repositories"), "{}", run.stderr);
    let pkg = context.workspace.join("pkg");
    assert!(pkg.join("README.md").exists(), "a library lives at its name by default");
    let lock = lock(&context);
    let library = &lock["library"].as_array().expect("[[library]] entries")[0];
    assert_eq!(library["name"].as_str(), Some("pkg"));
    assert_eq!(library["commit"].as_str(), Some(context.head(&pkg).as_str()));
    assert_eq!(lock["service"].as_array().unwrap().len(), 1, "services keep their own entries");

    // Selected by name, like a service; a new commit is fetched and locked.
    let next = shared.commit(&context, "lib.rs", "pub fn f() {}");
    shared.push(&context, "main");
    let run = context.run(&["sync", "pkg"]).expect_code(0);
    assert!(run.stderr.contains("Updated pkg main"), "{}", run.stderr);
    assert!(!run.stderr.contains("user-service"), "only what was named: {}", run.stderr);
    assert_eq!(context.head(&pkg), next);

    let json = context.run(&["status", "--json"]).expect_code(0).json();
    let rows = json.as_array().unwrap();
    let pkg_row = rows.iter().find(|row| row["name"] == "pkg").expect("pkg in status");
    assert_eq!(pkg_row["kind"], "library");
    assert_eq!(pkg_row["locked"], true);
    assert_eq!(rows.iter().find(|row| row["name"] == "user-service").unwrap()["kind"], "service");

    let run = context.run(&["sync", "pkgs"]).expect_code(2);
    assert!(run.stderr.contains("no service or library named `pkgs`"), "{}", run.stderr);
    assert!(run.stderr.contains("did you mean `pkg`?"), "{}", run.stderr);
}
