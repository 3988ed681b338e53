//! `plat deploy render|apply` and `plat compose export` as a user runs them: images tagged with
//! the checkout's commit, the real kubectl refusing a context it does not know, and what the
//! compose file takes from the environment. (e2e/tests/deploy.rs and compose.rs check the
//! sample's tree with kubectl kustomize and run its compose file.)

use crate::context::TestContext;

/// A workspace whose one service lives in the workspace's own git repository.
fn committed_workspace() -> TestContext {
    let context = TestContext::new();
    context.manifest(
        "[workspace]\nname = \"shop\"\n[services.users]\nports = { grpc = 50051 }\nhealth = { grpc = \"\" }\n\
         database = {}\nenv = { TOKEN = \"dev-only\", LOG = \"info\" }\nsecrets = [\"TOKEN\"]\n",
    );
    let service = context.workspace.join("services/users");
    std::fs::create_dir_all(&service).unwrap();
    std::fs::write(service.join("main.rs"), "fn main() {}\n").unwrap();
    context.git(&context.workspace, &["init", "-q", "-b", "main"]);
    context.git(&context.workspace, &["add", "."]);
    context.git(&context.workspace, &["commit", "-q", "-m", "users"]);
    context
}

fn deployment(context: &TestContext) -> String {
    std::fs::read_to_string(context.workspace.join("deploy/k8s/base/users.yaml")).unwrap()
}

#[test]
fn render_tags_images_with_the_commit_and_says_when_the_checkout_changed() {
    let context = committed_workspace();
    let commit = context.git(&context.workspace, &["rev-parse", "--short=7", "HEAD"]);
    let run = context.run(&["deploy", "render"]).expect_code(0);
    assert!(run.stderr.contains("Rendered deploy/k8s"), "{}", run.stderr);
    assert!(deployment(&context).contains(&format!("image: shop/users:{commit}\n")), "{}", deployment(&context));
    assert!(!run.stderr.contains("warning"), "{}", run.stderr);
    let example =
        std::fs::read_to_string(context.workspace.join("deploy/k8s/overlays/dev/secrets.env.example")).unwrap();
    assert!(
        example.contains("TOKEN=change-me\nUSERS_DATABASE_URL") || example.contains("\nTOKEN=change-me\n"),
        "{example}"
    );
    assert!(!deployment(&context).contains("dev-only"), "a secret's value is not written");

    // A change under the service's directory: the image names no commit, and plat says so.
    std::fs::write(context.workspace.join("services/users/main.rs"), "fn main() { loop {} }\n").unwrap();
    let run = context.run(&["deploy", "render"]).expect_code(0);
    assert!(deployment(&context).contains(&format!("image: shop/users:{commit}-dirty\n")));
    assert!(run.stderr.contains("warning: users: its checkout has uncommitted changes"), "{}", run.stderr);

    // --tag fixes every built image's tag, and a render that changes nothing writes nothing.
    context.run(&["deploy", "render", "--tag", "v1"]).expect_code(0);
    assert!(deployment(&context).contains("image: shop/users:v1\n"));
    let run = context.run(&["deploy", "render", "--tag", "v1"]).expect_code(0);
    assert!(!run.stderr.contains("Wrote"), "{}", run.stderr);
}

#[test]
fn an_environment_name_that_cannot_be_a_namespace_is_a_usage_error() {
    let run = committed_workspace().run(&["deploy", "render", "--env", "Prod_1"]).expect_code(2);
    assert!(run.stderr.contains("invalid environment name `Prod_1`"), "{}", run.stderr);
}

#[test]
fn apply_to_a_context_kubectl_does_not_know_names_it_and_the_way_to_list_them() {
    let context = committed_workspace();
    context.run(&["deploy", "render"]).expect_code(0);
    // A kubeconfig with one context whose cluster is never contacted: plat stops before.
    let kubeconfig = context.workspace.join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        "apiVersion: v1\nkind: Config\nclusters:\n- name: dev\n  cluster:\n    server: https://127.0.0.1:1\n\
         contexts:\n- name: kind-dev\n  context:\n    cluster: dev\n    user: dev\ncurrent-context: kind-dev\n\
         users:\n- name: dev\n  user: {}\n",
    )
    .unwrap();
    let run = context
        .run_with_env(&["deploy", "apply", "--context", "prod"], &[("KUBECONFIG", kubeconfig.to_str().unwrap())]);
    let run = run.expect_code(1);
    assert!(run.stderr.contains("kubectl has no context named `prod` (it has: kind-dev)"), "{}", run.stderr);
    assert!(run.stderr.contains("`kubectl config get-contexts` lists the contexts"), "{}", run.stderr);

    // The context exists, the overlay's secrets.env does not: said before kubectl diffs.
    let run = context.run_with_env(
        &["deploy", "apply", "--context", "kind-dev", "--dry-run"],
        &[("KUBECONFIG", kubeconfig.to_str().unwrap())],
    );
    let run = run.expect_code(1);
    assert!(run.stderr.contains("secrets.env is missing"), "{}", run.stderr);
    assert!(run.stderr.contains("secrets.env.example"), "{}", run.stderr);
}

#[test]
fn compose_export_writes_secrets_as_references_to_the_environment() {
    let context = committed_workspace();
    let run = context.run(&["compose", "export", "--out", "-"]).expect_code(0);
    assert!(
        run.stdout.contains("TOKEN: '${TOKEN:?set TOKEN in the environment or .env: a secret of users}'"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("DATABASE_URL: postgres://postgres@postgres:5432/users"), "{}", run.stdout);
    assert!(!run.stdout.contains("dev-only"), "{}", run.stdout);
    context.run(&["compose", "export"]).expect_code(0);
    assert_eq!(std::fs::read_to_string(context.workspace.join("docker-compose.yml")).unwrap(), run.stdout);
}

#[test]
fn a_service_with_no_commit_renders_unversioned_and_says_why() {
    let context = TestContext::new();
    context.manifest("[workspace]\nname = \"shop\"\n[services.users]\nports = { http = 8080 }\n");
    let run = context.run(&["deploy", "render"]).expect_code(0);
    assert!(run.stderr.contains("warning: users: no commit to tag its image with"), "{}", run.stderr);
    assert!(deployment(&context).contains("image: shop/users:unversioned\n"), "{}", deployment(&context));
}
