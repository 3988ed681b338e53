//! `plat proto lint` and `plat proto breaking`: the real binary in a temporary git repository,
//! with buf and with plat's own engine, and what the user reads.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::context::{Run, TestContext};
use crate::proto_gen::buf_dir;

const MANIFEST: &str = "[workspace]\nname = \"p\"\n\n[services.users]\nproto = { serves = [\"user.v1\"] }\n";

/// A workspace that is a git repository, with a copy of the repository's contracts committed.
fn repository() -> TestContext {
    let context = TestContext::new();
    context.manifest(MANIFEST);
    copy_dir(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../proto"), &context.workspace.join("proto"));
    context.git(&context.workspace, &["init", "--quiet", "--initial-branch=main"]);
    commit(&context, "contracts");
    context
}

fn commit(context: &TestContext, message: &str) {
    context.git(&context.workspace, &["add", "--all"]);
    context.git(&context.workspace, &["commit", "--quiet", "-m", message]);
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let path = entry.unwrap().path();
        let target = to.join(path.file_name().unwrap());
        if path.is_dir() {
            copy_dir(&path, &target);
        } else {
            std::fs::copy(&path, &target).unwrap();
        }
    }
}

/// Edits `proto/<file>`, replacing `from` (which must be there) with `to`.
fn edit(context: &TestContext, file: &str, from: &str, to: &str) {
    let path = context.workspace.join("proto").join(file);
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains(from), "{file} has no {from:?}");
    std::fs::write(&path, text.replacen(from, to, 1)).unwrap();
}

fn path_with_buf() -> std::ffi::OsString {
    let mut paths: Vec<PathBuf> = vec![buf_dir()];
    paths.extend(std::env::split_paths(&std::env::var_os("PATH").unwrap()));
    std::env::join_paths(paths).unwrap()
}

/// Runs plat with buf on PATH (for `--engine buf`) or with no buf at all (for `auto`).
pub(crate) fn run(context: &TestContext, args: &[&str], with_buf: bool) -> Run {
    let mut command: Command = context.plat();
    command.args(args);
    if with_buf {
        command.env("PATH", path_with_buf());
    } else {
        command.env("PATH", without_buf());
    }
    let output = command.output().unwrap();
    Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// PATH minus every directory that holds a buf.
fn without_buf() -> std::ffi::OsString {
    let paths = std::env::split_paths(&std::env::var_os("PATH").unwrap())
        .filter(|dir| !dir.join("buf").exists())
        .collect::<Vec<_>>();
    std::env::join_paths(paths).unwrap()
}

/// Two breaking changes (a field deleted, an RPC's request type changed) and a safe one (a
/// field added), committed on top of the contracts.
fn break_contracts(context: &TestContext) {
    edit(context, "user/v1/user.proto", "  string display_name = 3;\n", "");
    edit(context, "user/v1/user.proto", "rpc GetUser(GetUserRequest)", "rpc GetUser(ListUsersRequest)");
    edit(
        context,
        "order/v1/order.proto",
        "  string currency_code = 2;\n",
        "  string currency_code = 2;\n\n  // Added: safe.\n  string note = 3;\n",
    );
    commit(context, "break the user contract");
}

#[test]
fn breaking_against_head_1_with_both_engines() {
    let context = repository();
    break_contracts(&context);

    let builtin =
        run(&context, &["proto", "breaking", "--against", "HEAD~1", "--engine", "builtin"], false).expect_code(1);
    insta::assert_snapshot!("breaking_text", builtin.stdout);
    assert!(
        builtin.stderr.contains("error: 2 breaking changes against HEAD~1 (checked with plat's built-in engine"),
        "{}",
        builtin.stderr
    );
    assert!(builtin.stderr.contains("hint: "), "{}", builtin.stderr);

    let with_buf = run(&context, &["proto", "breaking", "--against", "HEAD~1", "--engine", "buf"], true).expect_code(1);
    assert_eq!(with_buf.stdout, builtin.stdout, "buf and plat's engine report the same");
    assert!(with_buf.stderr.contains("checked with buf ("), "{}", with_buf.stderr);

    // Without buf on PATH, `auto` is plat's engine; --json is an array of findings.
    let json = run(&context, &["proto", "breaking", "--against", "HEAD~1", "--json"], false).expect_code(1).json();
    let findings = json.as_array().unwrap();
    assert_eq!(findings.len(), 2);
    assert_eq!(
        findings[1],
        serde_json::json!({
            "path": "user/v1/user.proto",
            "line": 40,
            "column": 1,
            "rule": "FIELD_NO_DELETE",
            "message": "Previously present field \"3\" with name \"display_name\" on message \"User\" was deleted."
        })
    );
}

#[test]
fn a_safe_change_passes_with_both_engines() {
    let context = repository();
    edit(
        &context,
        "user/v1/user.proto",
        "  google.protobuf.Timestamp create_time = 4;\n",
        "  google.protobuf.Timestamp create_time = 4;\n\n  // Added: safe.\n  string locale = 5;\n",
    );
    edit(
        &context,
        "user/v1/user.proto",
        "// A User is a registered account of the platform.",
        "// A User is a registered account.",
    );
    commit(&context, "add a field");
    for (engine, with_buf) in [("builtin", false), ("buf", true)] {
        let run =
            run(&context, &["proto", "breaking", "--against", "HEAD~1", "--engine", engine], with_buf).expect_code(0);
        assert_eq!(run.stdout, "");
        assert!(run.stderr.contains("no breaking changes against HEAD~1"), "{engine}: {}", run.stderr);
    }
}

#[test]
fn breaking_honours_buf_yaml_settings() {
    let context = repository();
    break_contracts(&context);
    // WIRE: a deleted field is fine once its number is reserved; request types still matter.
    std::fs::write(
        context.workspace.join("proto/buf.yaml"),
        "version: v2\nmodules:\n  - path: .\nbreaking:\n  use: [WIRE]\n",
    )
    .unwrap();
    let builtin =
        run(&context, &["proto", "breaking", "--against", "HEAD~1", "--engine", "builtin"], false).expect_code(1);
    assert!(
        builtin.stdout.contains("FIELD_NO_DELETE_UNLESS_NUMBER_RESERVED")
            && !builtin.stdout.contains(" FIELD_NO_DELETE "),
        "{}",
        builtin.stdout
    );
    let with_buf = run(&context, &["proto", "breaking", "--against", "HEAD~1", "--engine", "buf"], true).expect_code(1);
    assert_eq!(with_buf.stdout, builtin.stdout);

    std::fs::write(
        context.workspace.join("proto/buf.yaml"),
        "version: v2\nbreaking:\n  use: [WIRE]\n  except: [RPC_SAME_REQUEST_TYPE]\n  ignore: [user/v1/user.proto]\n",
    )
    .unwrap();
    for (engine, with_buf) in [("builtin", false), ("buf", true)] {
        run(&context, &["proto", "breaking", "--against", "HEAD~1", "--engine", engine], with_buf).expect_code(0);
    }
}

#[test]
fn contracts_that_did_not_exist_at_the_ref_break_nothing() {
    let context = TestContext::new();
    context.manifest(MANIFEST);
    context.git(&context.workspace, &["init", "--quiet", "--initial-branch=main"]);
    commit(&context, "manifest only");
    copy_dir(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../proto"), &context.workspace.join("proto"));
    commit(&context, "contracts");
    for (engine, with_buf) in [("builtin", false), ("buf", true)] {
        run(&context, &["proto", "breaking", "--against", "HEAD~1", "--engine", engine], with_buf).expect_code(0);
    }
}

#[test]
fn a_missing_ref_is_a_clear_error() {
    let context = repository();
    // A ref the repository does not hold is wrong input (exit 2), not a breaking change (exit 1).
    let run = run(&context, &["proto", "breaking", "--against", "no-such-branch", "--engine", "builtin"], false)
        .expect_code(2);
    let stderr = run.stderr.replace(&context.workspace.canonicalize().unwrap().display().to_string(), "[WS]");
    insta::assert_snapshot!("missing_ref", stderr);
}

#[test]
fn a_shallow_clone_says_how_to_deepen_it() {
    let context = repository();
    break_contracts(&context);
    let clone = context.workspace.parent().unwrap().join("shallow");
    let url = format!("file://{}", context.workspace.display());
    context
        .git(context.workspace.parent().unwrap(), &["clone", "--quiet", "--depth", "1", &url, clone.to_str().unwrap()]);
    let run = run(
        &context,
        &["-C", clone.to_str().unwrap(), "proto", "breaking", "--against", "HEAD~1", "--engine", "builtin"],
        false,
    )
    .expect_code(2);
    assert!(
        run.stderr.contains("`HEAD~1` is not a commit of the repository at")
            && run.stderr.contains("(a shallow clone)"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("git fetch --deepen"), "{}", run.stderr);
    // Fetching the history makes it work, still without a checkout of the old commit.
    context.git(&clone, &["fetch", "--quiet", "--unshallow"]);
    let run = self::run(
        &context,
        &["-C", clone.to_str().unwrap(), "proto", "breaking", "--against", "HEAD~1", "--engine", "builtin"],
        false,
    );
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(run.stdout.contains("FIELD_NO_DELETE"), "{}", run.stdout);
}

#[test]
fn lint_with_both_engines() {
    let context = repository();
    run(&context, &["proto", "lint", "--engine", "builtin"], false).expect_code(0);
    run(&context, &["proto", "lint", "--engine", "buf"], true).expect_code(0);

    edit(&context, "user/v1/user.proto", "message GetUserRequest {", "message get_user_request {");
    edit(&context, "user/v1/user.proto", "rpc GetUser(GetUserRequest)", "rpc GetUser(get_user_request)");
    edit(&context, "user/v1/user.proto", "  string display_name = 3;", "  string displayName = 3;");
    edit(&context, "order/v1/order.proto", "  ORDER_STATUS_CANCELLED = 3;", "  CANCELLED = 3;");
    let builtin = run(&context, &["proto", "lint", "--engine", "builtin"], false).expect_code(1);
    insta::assert_snapshot!("lint_text", builtin.stdout);
    assert!(
        builtin.stderr.contains("lint findings (checked with plat's built-in engine; 1 selected rule needs buf"),
        "{}",
        builtin.stderr
    );
    let with_buf = run(&context, &["proto", "lint", "--engine", "buf"], true).expect_code(1);
    assert_eq!(with_buf.stdout, builtin.stdout, "buf and plat's engine report the same");

    let json = run(&context, &["proto", "lint", "--json"], false).expect_code(1).json();
    let rules: Vec<&str> = json.as_array().unwrap().iter().map(|finding| finding["rule"].as_str().unwrap()).collect();
    assert!(rules.contains(&"FIELD_LOWER_SNAKE_CASE") && rules.contains(&"ENUM_VALUE_PREFIX"), "{rules:?}");

    // `except` in buf.yaml, honoured by both.
    std::fs::write(
        context.workspace.join("proto/buf.yaml"),
        "version: v2\nlint:\n  use: [STANDARD]\n  except: [FIELD_LOWER_SNAKE_CASE, ENUM_VALUE_PREFIX, MESSAGE_PASCAL_CASE, RPC_REQUEST_STANDARD_NAME]\n",
    )
    .unwrap();
    run(&context, &["proto", "lint", "--engine", "builtin"], false).expect_code(0);
    run(&context, &["proto", "lint", "--engine", "buf"], true).expect_code(0);
}

#[test]
fn a_bad_buf_yaml_names_the_file_and_the_value() {
    let context = repository();
    std::fs::write(context.workspace.join("proto/buf.yaml"), "version: v2\nlint:\n  use: [STANDART]\n").unwrap();
    let run = run(&context, &["proto", "lint", "--engine", "builtin"], false).expect_code(2);
    assert!(run.stderr.contains("proto/buf.yaml: `STANDART` is not a rule or category plat knows"), "{}", run.stderr);
    assert!(run.stderr.contains("hint: docs/proto.md"), "{}", run.stderr);
}

#[test]
fn proto_commands_have_examples() {
    let context = TestContext::new();
    for command in ["gen", "lint", "breaking"] {
        let help = context.run(&["proto", command, "--help"]).expect_code(0).stdout;
        assert!(help.contains("Examples:"), "`plat proto {command} --help` has no examples:\n{help}");
    }
}
