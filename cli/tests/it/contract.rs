//! `plat test --contract`'s edge suites where no provider needs to run: a consumer whose recorded
//! contract is missing, an interaction file that cannot be read, and `--can-deploy` answering
//! from records that do not exist yet. The suites against running providers are end-to-end
//! tests (e2e/tests/contracts.rs).

use crate::context::TestContext;

const USER_PROTO: &str = "syntax = \"proto3\";\npackage user.v1;\nmessage User {}\nservice UserService {\n  rpc GetUser(User) returns (User);\n}\n";

/// users serves user.v1, orders uses it, billing has no contract; code generated.
fn workspace() -> TestContext {
    let context = TestContext::new();
    let name = format!("ct{}x{}", std::process::id(), context.workspace.to_string_lossy().len());
    context.manifest(&format!(
        "[workspace]\nname = \"{name}\"\n\n[services.users]\nports = {{ grpc = 50051 }}\nproto = {{ serves = [\"user.v1\"] }}\n\n\
         [services.orders]\nproto = {{ uses = [\"user.v1\"] }}\n\n[services.billing]\n"
    ));
    let proto = context.workspace.join("proto/user/v1");
    std::fs::create_dir_all(&proto).unwrap();
    std::fs::write(proto.join("user.proto"), USER_PROTO).unwrap();
    for service in ["users", "orders", "billing"] {
        std::fs::create_dir_all(context.checkout(service)).unwrap();
    }
    context.run(&["proto", "gen", "--engine", "builtin"]).expect_code(0);
    context
}

#[test]
fn a_consumer_without_its_recorded_contract_and_an_unreadable_interaction_fail_saying_why() {
    let context = workspace();
    std::fs::remove_file(context.checkout("orders").join("src/proto/descriptor.bin")).unwrap();
    let contracts = context.checkout("orders").join("contracts");
    std::fs::create_dir_all(&contracts).unwrap();
    std::fs::write(contracts.join("get.toml"), "[[step]]\nrpc = \"user.v1.UserService/GetUser\"\nexpect = \"OK\"\n")
        .unwrap();

    let run = context.run(&["test", "--contract", "--engine", "builtin"]).expect_code(1);
    assert!(
        run.stdout.contains(
            "contract compatible orders uses user.v1 as recorded, users serves it ... FAILED\n    \
             services/orders/src/proto/descriptor.bin is missing: `plat proto gen` records the contract"
        ),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("contract interactions orders contracts/get.toml ... FAILED\n"), "{}", run.stdout);
    assert!(run.stdout.contains("    services/orders/contracts/get.toml: "), "{}", run.stdout);
    assert!(run.stdout.contains("unknown field `expect`"), "{}", run.stdout);
    // Neither says anything of the provider: nothing is recorded.
    assert!(!context.workspace.join(".plat/contracts.json").exists());
}

#[test]
fn can_deploy_names_each_edge_not_verified_at_the_versions_checked_out() {
    let context = workspace();
    // Not a git checkout: no version to verify.
    let run = context.run(&["test", "--contract", "--can-deploy", "orders"]).expect_code(1);
    assert!(run.stdout.contains("orders → users ... unverified\n    "), "{}", run.stdout);
    assert!(run.stdout.contains("is not in a git repository: only commits are recorded"), "{}", run.stdout);

    context.git(&context.workspace, &["init", "--quiet", "--initial-branch=main"]);
    context.git(&context.workspace, &["add", "-A"]);
    context.git(&context.workspace, &["commit", "--quiet", "-m", "platform"]);
    let head = context.head(&context.workspace);
    let run = context.run(&["test", "--contract", "--can-deploy", "users"]).expect_code(1);
    let short = &head[..12];
    assert!(run.stdout.contains(&format!("orders → users ({short} → {short}) ... unverified")), "{}", run.stdout);
    assert!(run.stderr.contains("users cannot deploy: 1 contract is not verified at these versions"), "{}", run.stderr);
    let json = context.run(&["test", "--contract", "--can-deploy", "users", "--json"]).expect_code(1).json();
    assert_eq!(json["can_deploy"], false);
    assert_eq!(json["edges"][0]["state"], "unverified");
    assert_eq!(json["edges"][0]["versions"][0], head.as_str());

    // A change under a service's directory is a version no record can speak for yet.
    std::fs::write(context.checkout("orders").join("notes.txt"), "draft\n").unwrap();
    let run = context.run(&["test", "--contract", "--can-deploy", "users"]).expect_code(1);
    assert!(run.stdout.contains(&format!("orders → users ({short}+dirty.")), "{}", run.stdout);

    let run = context.run(&["test", "--contract", "--can-deploy", "billing"]).expect_code(0);
    assert!(run.stderr.contains("billing can deploy (it has no contract with any service)"), "{}", run.stderr);
    let run = context.run(&["test", "--contract", "--can-deploy", "payments"]).expect_code(2);
    assert!(run.stderr.contains("no service `payments` in the workspace"), "{}", run.stderr);
}
