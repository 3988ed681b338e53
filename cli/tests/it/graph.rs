//! `plat graph`: tree, JSON waves and dot, on the repository's own sample platform.

use crate::context::TestContext;

fn sample() -> TestContext {
    let context = TestContext::new();
    context.manifest(include_str!("../../../workspace.toml"));
    context
}

#[test]
fn tree_shows_dependencies_and_start_order() {
    let run = sample().run(&["graph"]).expect_code(0);
    insta::assert_snapshot!(run.stdout);
}

#[test]
fn json_waves_start_dependencies_first() {
    let json = sample().run(&["graph", "--json"]).expect_code(0).json();
    assert_eq!(json["waves"], serde_json::json!([["nats", "user-service"], ["order-service"], ["api-gateway"]]));
    assert_eq!(json["services"][2]["name"], "order-service");
    assert_eq!(json["services"][2]["depends_on"]["user-service"], "healthy");
    assert_eq!(json["services"][2]["depends_on"]["nats"], "healthy");
}

#[test]
fn waves_group_independent_services() {
    let context = TestContext::new();
    context.manifest(
        "[workspace]\nname = \"p\"\n[services.web]\ndepends_on = [\"api\", \"auth\"]\n[services.auth]\n[services.api]\ndepends_on = { db = \"healthy\" }\n[services.db]\n",
    );
    let json = context.run(&["graph", "--json"]).expect_code(0).json();
    assert_eq!(json["waves"], serde_json::json!([["auth", "db"], ["api"], ["web"]]));
}

#[test]
fn dot_is_graphviz() {
    let run = sample().run(&["graph", "--dot"]).expect_code(0);
    insta::assert_snapshot!(run.stdout);
}
