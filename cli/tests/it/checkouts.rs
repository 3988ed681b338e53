//! What `plat build` and `plat up` say about the checkouts they are about to build: a repository
//! not cloned stops them, one off its rev or plat.lock is named (and built as it is), and
//! `--locked` refuses anything but plat.lock's commits, clean. None of this needs the Engine: it
//! happens before anything is built (the services' `command` builds fail on purpose, after it).

use crate::context::TestContext;

/// A workspace whose service and library are repositories of their own; the service's build
/// is a command that fails, so a build that gets past the checks ends there, with no Engine.
fn polyrepo(context: &TestContext) -> (crate::context::Remote, crate::context::Remote) {
    let service = context.remote("svc");
    let library = context.remote("shared");
    context.manifest(&format!(
        "[workspace]\nname = \"p\"\n\n[libraries.pkg]\nrepo = \"{}\"\n\n[services.svc]\nrepo = \"{}\"\nbuild = {{ command = \"echo reached the build >&2; exit 3\" }}\n",
        library.url, service.url
    ));
    (service, library)
}

#[test]
fn a_repository_not_cloned_yet_stops_the_build() {
    let context = TestContext::new();
    polyrepo(&context);
    for command in [&["build"][..], &["up"][..]] {
        let run = context.run(command).expect_code(1);
        assert!(
            run.stderr.contains("error: not cloned yet: library pkg (pkg), service svc (services/svc)"),
            "{}",
            run.stderr
        );
        assert!(run.stderr.contains("hint: `plat sync` clones them"), "{}", run.stderr);
        assert!(!run.stderr.contains("reached the build"), "{}", run.stderr);
    }
}

#[test]
fn a_checkout_off_its_rev_or_lock_is_named_and_built_as_it_is() {
    let context = TestContext::new();
    let (_, library) = polyrepo(&context);
    context.run(&["sync"]).expect_code(0);
    let run = context.run(&["build"]).expect_code(1);
    assert!(!run.stderr.contains("warning:"), "at rev and lock, nothing to say: {}", run.stderr);
    assert!(run.stderr.contains("reached the build"), "{}", run.stderr);

    // A local commit in the service: ahead of its rev, off its lock.
    let svc = context.checkout("svc");
    std::fs::write(svc.join("local.txt"), "mine").unwrap();
    context.git(&svc, &["add", "local.txt"]);
    context.git(&svc, &["commit", "--quiet", "-m", "local"]);
    // The library's remote moves on and is fetched, but its checkout is moved back by hand.
    library.commit(&context, "lib.rs", "v2");
    library.push(&context, "main");
    context.run(&["sync", "pkg"]).expect_code(0);
    let pkg = context.workspace.join("pkg");
    context.git(&pkg, &["switch", "--quiet", "--detach", "HEAD~1"]);

    let run = context.run(&["build"]).expect_code(1);
    let head = |dir: &std::path::Path| context.head(dir)[..7].to_owned();
    assert!(
        run.stderr.contains(&format!(
            "warning: service svc (services/svc) is at {}: 1 commit ahead of main (origin/main); plat.lock says",
            head(&svc)
        )),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("hint: push the commits of svc"), "{}", run.stderr);
    assert!(
        run.stderr
            .contains(&format!("warning: library pkg (pkg) is at {}: 1 commit behind main (origin/main", head(&pkg))),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("hint: `plat sync` moves checkouts to their rev"), "{}", run.stderr);
    assert!(run.stderr.contains("reached the build"), "warned, then built as it is: {}", run.stderr);

    // --locked refuses both, and names a dirty file too; nothing is built.
    std::fs::write(svc.join("README.md"), "edited").unwrap();
    let run = context.run(&["build", "--locked"]).expect_code(1);
    assert!(run.stderr.contains("error: --locked: not what plat.lock says:"), "{}", run.stderr);
    assert!(run.stderr.contains("1 uncommitted file"), "{}", run.stderr);
    assert!(run.stderr.contains("library pkg (pkg) is at"), "{}", run.stderr);
    assert!(run.stderr.contains("plat sync --locked"), "{}", run.stderr);
    assert!(!run.stderr.contains("reached the build"), "{}", run.stderr);

    // Back at the lock, clean: --locked builds.
    context.git(&svc, &["checkout", "--quiet", "--", "README.md"]);
    context.run(&["sync", "--locked"]).expect_code(0);
    let run = context.run(&["up", "--locked"]).expect_code(1);
    assert!(!run.stderr.contains("--locked:"), "{}", run.stderr);
    assert!(run.stderr.contains("reached the build"), "{}", run.stderr);
}

#[test]
fn locked_without_a_lock_file_is_refused() {
    let context = TestContext::new();
    polyrepo(&context);
    context.run(&["sync"]).expect_code(0);
    std::fs::remove_file(context.workspace.join("plat.lock")).unwrap();
    let run = context.run(&["build", "--locked"]).expect_code(1);
    assert!(run.stderr.contains("error: --locked needs plat.lock, and there is none"), "{}", run.stderr);
    assert!(!run.stderr.contains("reached the build"), "{}", run.stderr);
}
