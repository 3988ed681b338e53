//! `plat proto lint`: buf lint when buf is installed, otherwise plat's own checks of buf's
//! STANDARD rules (and a few more), with buf's rule IDs, messages and positions.
//!
//! buf points at an element's name for naming rules, at the whole declaration for RPC rules
//! about usage, at the `package` statement for package rules, and at the top of the file when
//! there is nothing to point at; plat reads the same spans from protox's SourceCodeInfo.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use prost_reflect::{DescriptorPool, DynamicMessage, EnumDescriptor, MessageDescriptor, Value};
use prost_types::field_descriptor_proto::{Label, Type};
use prost_types::{DescriptorProto, EnumDescriptorProto, FileDescriptorProto};

use super::config::{self, LintConfig, RuleInfo};
use super::source::{Loc, Pos, Spans, child, tag};
use super::{CheckReport, Engine, Finding, ProtoError, Ran, buf, load};

const MINIMAL: &str = "MINIMAL";
const BASIC: &str = "BASIC";
const STANDARD: &str = "STANDARD";
/// buf v1's name for STANDARD, still accepted in v1 files.
const DEFAULT: &str = "DEFAULT";
const COMMENTS: &str = "COMMENTS";
const UNARY_RPC: &str = "UNARY_RPC";

const M: &[&str] = &[MINIMAL, BASIC, STANDARD, DEFAULT];
const B: &[&str] = &[BASIC, STANDARD, DEFAULT];
const S: &[&str] = &[STANDARD, DEFAULT];

/// buf 1.75's lint rules and their categories (`buf config ls-lint-rules --version v2`).
pub const RULES: &[RuleInfo] = &[
    rule("DIRECTORY_SAME_PACKAGE", M, true),
    rule("PACKAGE_DEFINED", M, true),
    rule("PACKAGE_DIRECTORY_MATCH", M, true),
    rule("PACKAGE_NO_IMPORT_CYCLE", M, true),
    rule("PACKAGE_SAME_DIRECTORY", M, true),
    rule("ENUM_FIRST_VALUE_ZERO", B, true),
    rule("ENUM_NO_ALLOW_ALIAS", B, true),
    rule("ENUM_PASCAL_CASE", B, true),
    rule("ENUM_VALUE_UPPER_SNAKE_CASE", B, true),
    rule("FIELD_LOWER_SNAKE_CASE", B, true),
    rule("FIELD_NOT_REQUIRED", B, true),
    rule("IMPORT_NO_PUBLIC", B, true),
    rule("IMPORT_USED", B, true),
    rule("MESSAGE_PASCAL_CASE", B, true),
    rule("ONEOF_LOWER_SNAKE_CASE", B, true),
    rule("PACKAGE_LOWER_SNAKE_CASE", B, true),
    rule("PACKAGE_SAME_CSHARP_NAMESPACE", B, true),
    rule("PACKAGE_SAME_GO_PACKAGE", B, true),
    rule("PACKAGE_SAME_JAVA_MULTIPLE_FILES", B, true),
    rule("PACKAGE_SAME_JAVA_PACKAGE", B, true),
    rule("PACKAGE_SAME_PHP_NAMESPACE", B, true),
    rule("PACKAGE_SAME_RUBY_PACKAGE", B, true),
    rule("PACKAGE_SAME_SWIFT_PREFIX", B, true),
    rule("RPC_PASCAL_CASE", B, true),
    rule("SERVICE_PASCAL_CASE", B, true),
    rule("SYNTAX_SPECIFIED", B, true),
    rule("ENUM_VALUE_PREFIX", S, true),
    rule("ENUM_ZERO_VALUE_SUFFIX", S, true),
    rule("FILE_LOWER_SNAKE_CASE", S, true),
    rule("PACKAGE_VERSION_SUFFIX", S, true),
    rule("PROTOVALIDATE", S, false),
    rule("RPC_REQUEST_RESPONSE_UNIQUE", S, true),
    rule("RPC_REQUEST_STANDARD_NAME", S, true),
    rule("RPC_RESPONSE_STANDARD_NAME", S, true),
    rule("SERVICE_SUFFIX", S, true),
    rule("COMMENT_ENUM", &[COMMENTS], false),
    rule("COMMENT_ENUM_VALUE", &[COMMENTS], false),
    rule("COMMENT_FIELD", &[COMMENTS], false),
    rule("COMMENT_MESSAGE", &[COMMENTS], false),
    rule("COMMENT_ONEOF", &[COMMENTS], false),
    rule("COMMENT_RPC", &[COMMENTS], false),
    rule("COMMENT_SERVICE", &[COMMENTS], false),
    rule("RPC_NO_CLIENT_STREAMING", &[UNARY_RPC], true),
    rule("RPC_NO_SERVER_STREAMING", &[UNARY_RPC], true),
    rule("STABLE_PACKAGE_NO_IMPORT_UNSTABLE", &[], false),
];

const fn rule(id: &'static str, categories: &'static [&'static str], builtin: bool) -> RuleInfo {
    RuleInfo { id, categories, builtin }
}

/// How to lint.
#[derive(Debug, Clone, Copy, Default)]
pub struct LintOptions {
    /// buf or plat's own engine.
    pub engine: Engine,
}

/// Lints every `.proto` file of `proto_dir`.
pub fn check(proto_dir: &Path, options: LintOptions) -> Result<CheckReport, ProtoError> {
    check_with(proto_dir, options.engine.resolve()?.as_deref())
}

/// Lints with buf when `buf` is given, with plat's own engine otherwise.
pub fn check_with(proto_dir: &Path, buf: Option<&Path>) -> Result<CheckReport, ProtoError> {
    match buf {
        Some(buf) => Ok(CheckReport {
            findings: buf::lint(buf, proto_dir)?,
            ran: Ran::Buf(buf.to_path_buf()),
            unchecked: Vec::new(),
        }),
        None => {
            let config = config::read(proto_dir)?;
            config::validate(&config, RULES, super::breaking::RULES, &config::path_in(proto_dir))?;
            let compiled = load::compile(load::read_dir(proto_dir)?)?;
            let (findings, unchecked) = lint(&compiled, &config.lint, &config::path_in(proto_dir))?;
            Ok(CheckReport { ran: Ran::Builtin, findings, unchecked })
        }
    }
}

struct Linter<'a> {
    config: &'a LintConfig,
    rules: BTreeSet<&'static str>,
    findings: Vec<Finding>,
}

impl Linter<'_> {
    fn add(&mut self, rule: &'static str, file: &str, loc: impl Into<Loc>, message: String) {
        let Loc { pos, ignored } = loc.into();
        if self.rules.contains(rule)
            && !(self.config.comment_ignores() && ignored.iter().any(|ignored| ignored == rule))
            && !config::silenced(RULES, rule, &[file], &self.config.ignore, &self.config.ignore_only)
        {
            self.findings.push(Finding {
                path: file.to_owned(),
                line: pos.line,
                column: pos.column,
                rule: rule.to_owned(),
                message,
            });
        }
    }
}

/// Lints a compiled module; returns the findings and the selected rules plat does not check.
pub fn lint(
    compiled: &load::Compiled,
    config: &LintConfig,
    config_path: &Path,
) -> Result<(Vec<Finding>, Vec<String>), ProtoError> {
    let rules = config::select(RULES, &config.use_, &config.except, STANDARD, config_path)?;
    let unchecked = rules
        .iter()
        .filter(|id| !RULES.iter().any(|rule| rule.id == **id && rule.builtin))
        .map(|id| (*id).to_owned())
        .collect();
    let mut linter = Linter { config, rules, findings: Vec::new() };
    let files: Vec<&FileDescriptorProto> =
        compiled.descriptors.file.iter().filter(|file| compiled.sources.contains_key(file.name())).collect();
    let all: BTreeMap<&str, &FileDescriptorProto> =
        compiled.descriptors.file.iter().map(|file| (file.name(), file)).collect();
    let spans: BTreeMap<&str, Spans> =
        files.iter().map(|file| (file.name(), Spans::new(file, &compiled.sources[file.name()]))).collect();
    for file in &files {
        let options_from = files_of_used_options(&compiled.pool, file.name());
        lint_file(&mut linter, file, &spans[file.name()], &all, &options_from);
    }
    lint_across_files(&mut linter, &files, &spans);
    lint_import_cycles(&mut linter, &files, &spans, &all);
    let mut findings = linter.findings;
    findings.sort();
    findings.dedup();
    Ok((findings, unchecked))
}

fn lint_file(
    linter: &mut Linter,
    file: &FileDescriptorProto,
    spans: &Spans,
    all: &BTreeMap<&str, &FileDescriptorProto>,
    options_from: &BTreeSet<String>,
) {
    let name = file.name();
    let package = file.package();
    let package_pos = spans.loc(&[tag::FILE_PACKAGE]);

    // protoc leaves `syntax` unset for proto2 whether or not the file says so: whether the
    // statement is there is in the source info.
    if spans.get(&[tag::FILE_SYNTAX]).is_none() {
        linter.add(
            "SYNTAX_SPECIFIED",
            name,
            Pos::FILE,
            "Files must have a syntax explicitly specified. If no syntax is specified, the file defaults to \"proto2\".".to_owned(),
        );
    }
    let base = name.rsplit('/').next().unwrap_or(name);
    let stem = base.strip_suffix(".proto").unwrap_or(base);
    let expected = to_lower_snake_case(stem);
    if stem != expected {
        linter.add(
            "FILE_LOWER_SNAKE_CASE",
            name,
            Pos::FILE,
            format!("Filename \"{base}\" should be lower_snake_case.proto, such as \"{expected}.proto\"."),
        );
    }
    if package.is_empty() {
        linter.add("PACKAGE_DEFINED", name, Pos::FILE, "Files must have a package defined.".to_owned());
    } else {
        let expected_dir = package.replace('.', "/");
        let dir = name.rsplit_once('/').map_or(".", |(dir, _)| dir);
        if dir != expected_dir {
            linter.add(
                "PACKAGE_DIRECTORY_MATCH",
                name,
                package_pos.clone(),
                format!("Files with package \"{package}\" must be within a directory \"{expected_dir}\" relative to root but were in directory \"{dir}\"."),
            );
        }
        let expected = package.split('.').map(to_lower_snake_case).collect::<Vec<_>>().join(".");
        if package != expected {
            linter.add(
                "PACKAGE_LOWER_SNAKE_CASE",
                name,
                package_pos.clone(),
                format!("Package name \"{package}\" should be lower_snake.case, such as \"{expected}\"."),
            );
        }
        if !has_version_suffix(package) {
            linter.add(
                "PACKAGE_VERSION_SUFFIX",
                name,
                package_pos,
                format!("Package name \"{package}\" should be suffixed with a correctly formed version, such as \"{package}.v1\"."),
            );
        }
    }

    // Imports.
    let used = used_types(file);
    for (index, dependency) in file.dependency.iter().enumerate() {
        let pos = spans.loc(&[tag::FILE_DEPENDENCY, index as i32]);
        if file.public_dependency.contains(&(index as i32)) {
            linter.add("IMPORT_NO_PUBLIC", name, pos.clone(), format!("Import \"{dependency}\" must not be public."));
        }
        // A public import re-exports the file: it is there for the importers' sake.
        if !file.public_dependency.contains(&(index as i32)) && !import_used(dependency, all, &used, options_from) {
            linter.add("IMPORT_USED", name, pos, format!("Import \"{dependency}\" is unused."));
        }
    }

    for (i, message) in file.message_type.iter().enumerate() {
        lint_message(linter, name, spans, message, vec![tag::FILE_MESSAGE, i as i32]);
    }
    for (i, enumeration) in file.enum_type.iter().enumerate() {
        lint_enum(linter, name, spans, enumeration, vec![tag::FILE_ENUM, i as i32]);
    }
    for (s, service) in file.service.iter().enumerate() {
        let path = vec![tag::FILE_SERVICE, s as i32];
        let service_name = service.name();
        let expected = to_pascal_case(service_name);
        let name_pos = spans.loc(&child(&path, &[tag::SERVICE_NAME]));
        if service_name != expected {
            linter.add(
                "SERVICE_PASCAL_CASE",
                name,
                name_pos.clone(),
                format!("Service name \"{service_name}\" should be PascalCase, such as \"{expected}\"."),
            );
        }
        let suffix = linter.config.service_suffix.clone();
        if !service_name.ends_with(&suffix) {
            linter.add(
                "SERVICE_SUFFIX",
                name,
                name_pos,
                format!("Service name \"{service_name}\" should be suffixed with \"{suffix}\"."),
            );
        }
        for (m, method) in service.method.iter().enumerate() {
            let path = child(&path, &[tag::SERVICE_METHOD, m as i32]);
            let method_name = method.name();
            let expected = to_pascal_case(method_name);
            if method_name != expected {
                linter.add(
                    "RPC_PASCAL_CASE",
                    name,
                    spans.loc(&child(&path, &[tag::METHOD_NAME])),
                    format!("RPC name \"{method_name}\" should be PascalCase, such as \"{expected}\"."),
                );
            }
            if method.client_streaming() {
                linter.add(
                    "RPC_NO_CLIENT_STREAMING",
                    name,
                    spans.loc(&path),
                    format!("RPC \"{method_name}\" is client streaming."),
                );
            }
            if method.server_streaming() {
                linter.add(
                    "RPC_NO_SERVER_STREAMING",
                    name,
                    spans.loc(&path),
                    format!("RPC \"{method_name}\" is server streaming."),
                );
            }
            for (rule, type_name, kind, tag, allow_empty) in [
                (
                    "RPC_REQUEST_STANDARD_NAME",
                    method.input_type(),
                    "request",
                    tag::METHOD_INPUT,
                    linter.config.rpc_allow_google_protobuf_empty_requests,
                ),
                (
                    "RPC_RESPONSE_STANDARD_NAME",
                    method.output_type(),
                    "response",
                    tag::METHOD_OUTPUT,
                    linter.config.rpc_allow_google_protobuf_empty_responses,
                ),
            ] {
                let full = type_name.trim_start_matches('.');
                if allow_empty && full == "google.protobuf.Empty" {
                    continue;
                }
                let short = full.rsplit('.').next().unwrap_or(full);
                let suffix = if kind == "request" { "Request" } else { "Response" };
                let first = format!("{}{suffix}", to_pascal_case(method_name));
                let second = format!("{}{first}", to_pascal_case(service_name));
                if short != first && short != second {
                    linter.add(
                        rule,
                        name,
                        spans.loc(&child(&path, &[tag])),
                        format!("RPC {kind} type \"{short}\" should be named \"{first}\" or \"{second}\"."),
                    );
                }
            }
        }
    }
}

fn lint_message(linter: &mut Linter, file: &str, spans: &Spans, message: &DescriptorProto, path: Vec<i32>) {
    let is_map_entry = message.options.as_ref().and_then(|options| options.map_entry).unwrap_or(false);
    let name = message.name();
    if !is_map_entry {
        let expected = to_pascal_case(name);
        if name != expected {
            linter.add(
                "MESSAGE_PASCAL_CASE",
                file,
                spans.loc(&child(&path, &[tag::MESSAGE_NAME])),
                format!("Message name \"{name}\" should be PascalCase, such as \"{expected}\"."),
            );
        }
        for (i, field) in message.field.iter().enumerate() {
            let name_pos = spans.loc(&child(&path, &[tag::MESSAGE_FIELD, i as i32, tag::FIELD_NAME]));
            let field_name = field.name();
            let expected = to_lower_snake_case(field_name);
            if field_name != expected {
                linter.add(
                    "FIELD_LOWER_SNAKE_CASE",
                    file,
                    name_pos.clone(),
                    format!("Field name \"{field_name}\" should be lower_snake_case, such as \"{expected}\"."),
                );
            }
            if field.label() == Label::Required {
                linter.add(
                    "FIELD_NOT_REQUIRED",
                    file,
                    name_pos,
                    format!("Field named \"{field_name}\" should not be required."),
                );
            }
        }
    }
    for (i, oneof) in message.oneof_decl.iter().enumerate() {
        let oneof_name = oneof.name();
        let expected = to_lower_snake_case(oneof_name);
        let members: Vec<_> = message.field.iter().filter(|field| field.oneof_index == Some(i as i32)).collect();
        // The oneof protoc makes for a proto3 `optional` field is not the user's to name.
        let synthetic = members.len() == 1 && members[0].proto3_optional();
        if oneof_name != expected && !synthetic {
            linter.add(
                "ONEOF_LOWER_SNAKE_CASE",
                file,
                spans.loc(&child(&path, &[tag::MESSAGE_ONEOF, i as i32, tag::ONEOF_NAME])),
                format!("Oneof name \"{oneof_name}\" should be lower_snake_case, such as \"{expected}\"."),
            );
        }
    }
    for (i, inner) in message.nested_type.iter().enumerate() {
        lint_message(linter, file, spans, inner, child(&path, &[tag::MESSAGE_NESTED, i as i32]));
    }
    for (i, enumeration) in message.enum_type.iter().enumerate() {
        lint_enum(linter, file, spans, enumeration, child(&path, &[tag::MESSAGE_ENUM, i as i32]));
    }
}

fn lint_enum(linter: &mut Linter, file: &str, spans: &Spans, enumeration: &EnumDescriptorProto, path: Vec<i32>) {
    let name = enumeration.name();
    let expected = to_pascal_case(name);
    if name != expected {
        linter.add(
            "ENUM_PASCAL_CASE",
            file,
            spans.loc(&child(&path, &[tag::ENUM_NAME])),
            format!("Enum name \"{name}\" should be PascalCase, such as \"{expected}\"."),
        );
    }
    if enumeration.options.as_ref().and_then(|options| options.allow_alias).unwrap_or(false) {
        linter.add(
            "ENUM_NO_ALLOW_ALIAS",
            file,
            spans.loc(&child(&path, &[tag::ENUM_OPTIONS, tag::ENUM_OPTION_ALLOW_ALIAS])),
            format!("Enum option \"allow_alias\" on enum \"{name}\" must be false."),
        );
    }
    if let Some(first) = enumeration.value.first()
        && first.number() != 0
    {
        linter.add(
            "ENUM_FIRST_VALUE_ZERO",
            file,
            spans.loc(&child(&path, &[tag::ENUM_VALUE, 0, tag::ENUM_VALUE_NUMBER])),
            format!("First enum value \"{}\" should have a numeric value of 0", first.name()),
        );
    }
    let prefix = format!("{}_", to_upper_snake_case(name));
    let suffix = linter.config.enum_zero_value_suffix.clone();
    for (i, value) in enumeration.value.iter().enumerate() {
        let value_name = value.name();
        let pos = spans.loc(&child(&path, &[tag::ENUM_VALUE, i as i32, tag::ENUM_VALUE_NAME]));
        let expected = to_upper_snake_case(value_name);
        if value_name != expected {
            linter.add(
                "ENUM_VALUE_UPPER_SNAKE_CASE",
                file,
                pos.clone(),
                format!("Enum value name \"{value_name}\" should be UPPER_SNAKE_CASE, such as \"{expected}\"."),
            );
        }
        if !value_name.starts_with(&prefix) {
            linter.add(
                "ENUM_VALUE_PREFIX",
                file,
                pos.clone(),
                format!("Enum value name \"{value_name}\" should be prefixed with \"{prefix}\"."),
            );
        }
        if value.number() == 0 && !value_name.ends_with(&suffix) {
            linter.add(
                "ENUM_ZERO_VALUE_SUFFIX",
                file,
                pos,
                format!("Enum zero value name \"{value_name}\" should be suffixed with \"{suffix}\"."),
            );
        }
    }
}

/// Rules that look at several files at once: packages and directories, shared options, and
/// request/response types used by more than one RPC.
fn lint_across_files(linter: &mut Linter, files: &[&FileDescriptorProto], spans: &BTreeMap<&str, Spans>) {
    let dir_of = |file: &FileDescriptorProto| file.name().rsplit_once('/').map_or(".", |(dir, _)| dir).to_owned();
    let package_pos = |file: &FileDescriptorProto| spans[file.name()].loc(&[tag::FILE_PACKAGE]);

    let mut by_dir: BTreeMap<String, Vec<&FileDescriptorProto>> = BTreeMap::new();
    let mut by_package: BTreeMap<&str, Vec<&FileDescriptorProto>> = BTreeMap::new();
    for file in files {
        by_dir.entry(dir_of(file)).or_default().push(file);
        by_package.entry(file.package()).or_default().push(file);
    }
    for (dir, dir_files) in &by_dir {
        let mut packages: BTreeSet<&str> = dir_files.iter().map(|file| file.package()).collect();
        if packages.len() > 1 {
            let prefix = if packages.remove("") {
                let joined = packages.iter().copied().collect::<Vec<_>>().join(",");
                if packages.len() > 1 {
                    format!("Multiple packages \"{joined}\" and file with no package")
                } else {
                    format!("Package \"{joined}\" and file with no package")
                }
            } else {
                format!("Multiple packages \"{}\"", packages.iter().copied().collect::<Vec<_>>().join(","))
            };
            for file in dir_files {
                linter.add(
                    "DIRECTORY_SAME_PACKAGE",
                    file.name(),
                    package_pos(file),
                    format!("{prefix} detected within directory \"{dir}\"."),
                );
            }
        }
    }
    // Files with no package are checked together, as the package "" (buf does the same).
    for (package, package_files) in &by_package {
        let dirs: BTreeSet<String> = package_files.iter().map(|file| dir_of(file)).collect();
        if dirs.len() > 1 {
            let joined = dirs.iter().cloned().collect::<Vec<_>>().join(",");
            for file in package_files {
                linter.add(
                    "PACKAGE_SAME_DIRECTORY",
                    file.name(),
                    package_pos(file),
                    format!("Multiple directories \"{joined}\" contain files with package \"{package}\"."),
                );
            }
        }
        type Get = fn(&prost_types::FileOptions) -> Option<String>;
        let options: [(&'static str, &str, i32, Get); 7] = [
            ("PACKAGE_SAME_CSHARP_NAMESPACE", "csharp_namespace", 37, |o| o.csharp_namespace.clone()),
            ("PACKAGE_SAME_GO_PACKAGE", "go_package", 11, |o| o.go_package.clone()),
            ("PACKAGE_SAME_JAVA_MULTIPLE_FILES", "java_multiple_files", 10, |o| {
                o.java_multiple_files.map(|v| v.to_string())
            }),
            ("PACKAGE_SAME_JAVA_PACKAGE", "java_package", 1, |o| o.java_package.clone()),
            ("PACKAGE_SAME_PHP_NAMESPACE", "php_namespace", 41, |o| o.php_namespace.clone()),
            ("PACKAGE_SAME_RUBY_PACKAGE", "ruby_package", 45, |o| o.ruby_package.clone()),
            ("PACKAGE_SAME_SWIFT_PREFIX", "swift_prefix", 39, |o| o.swift_prefix.clone()),
        ];
        for (rule, option, number, get) in options {
            let values: Vec<String> =
                package_files.iter().map(|file| file.options.as_ref().and_then(get).unwrap_or_default()).collect();
            let mut distinct: BTreeSet<&str> = values.iter().map(String::as_str).collect();
            if distinct.len() < 2 {
                continue;
            }
            let none = distinct.remove("");
            let joined = distinct.into_iter().collect::<Vec<_>>().join(",");
            let message = if none {
                format!(
                    "Files in package \"{package}\" have both values \"{joined}\" and no value for option \"{option}\" and all values must be equal."
                )
            } else {
                format!(
                    "Files in package \"{package}\" have multiple values \"{joined}\" for option \"{option}\" and all values must be equal."
                )
            };
            for file in package_files {
                let pos = spans[file.name()].loc(&[tag::FILE_OPTIONS, number]);
                linter.add(rule, file.name(), pos, message.clone());
            }
        }
    }

    // Each request and response type belongs to one RPC.
    struct Rpc<'a> {
        file: &'a str,
        name: &'a str,
        input: &'a str,
        output: &'a str,
        pos: Loc,
    }
    let mut rpcs = Vec::new();
    for file in files {
        let spans = &spans[file.name()];
        for (s, service) in file.service.iter().enumerate() {
            for (m, method) in service.method.iter().enumerate() {
                rpcs.push(Rpc {
                    file: file.name(),
                    name: method.name(),
                    input: method.input_type().trim_start_matches('.'),
                    output: method.output_type().trim_start_matches('.'),
                    pos: spans.loc(&[tag::FILE_SERVICE, s as i32, tag::SERVICE_METHOD, m as i32]),
                });
            }
        }
    }
    let (allow_requests, allow_responses) = (
        linter.config.rpc_allow_google_protobuf_empty_requests,
        linter.config.rpc_allow_google_protobuf_empty_responses,
    );
    const EMPTY: &str = "google.protobuf.Empty";
    if !linter.config.rpc_allow_same_request_response {
        for rpc in rpcs.iter().filter(|rpc| rpc.input == rpc.output) {
            if !(rpc.input == EMPTY && allow_requests && allow_responses) {
                linter.add(
                    "RPC_REQUEST_RESPONSE_UNIQUE",
                    rpc.file,
                    rpc.pos.clone(),
                    format!("RPC \"{}\" has the same type \"{}\" for the request and response.", rpc.name, rpc.input),
                );
            }
        }
    }
    let mut users: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (index, rpc) in rpcs.iter().enumerate() {
        for type_name in BTreeSet::from([rpc.input, rpc.output]) {
            users.entry(type_name).or_default().push(index);
        }
    }
    for (type_name, indices) in users.iter().filter(|(_, indices)| indices.len() > 1) {
        let mut flag = |indices: Vec<usize>, message: String| {
            for index in indices {
                linter.add("RPC_REQUEST_RESPONSE_UNIQUE", rpcs[index].file, rpcs[index].pos.clone(), message.clone());
            }
        };
        if *type_name == EMPTY && (allow_requests || allow_responses) {
            if allow_requests && allow_responses {
                continue;
            }
            let requests: Vec<usize> = indices.iter().copied().filter(|i| rpcs[*i].input == EMPTY).collect();
            let responses: Vec<usize> = indices.iter().copied().filter(|i| rpcs[*i].output == EMPTY).collect();
            if !allow_requests && requests.len() > 1 {
                flag(requests, format!("\"{type_name}\" is used as the request for multiple RPCs."));
            }
            if !allow_responses && responses.len() > 1 {
                flag(responses, format!("\"{type_name}\" is used as the response for multiple RPCs."));
            }
        } else {
            flag(
                indices.clone(),
                format!("\"{type_name}\" is used as the request or response type for multiple RPCs."),
            );
        }
    }
}

/// PACKAGE_NO_IMPORT_CYCLE: an import from package P of a file in package D, when D's imports
/// lead back to P. Reported on the import, with the shortest cycle.
fn lint_import_cycles(
    linter: &mut Linter,
    files: &[&FileDescriptorProto],
    spans: &BTreeMap<&str, Spans>,
    all: &BTreeMap<&str, &FileDescriptorProto>,
) {
    let package_of = |name: &str| all.get(name).map(|file| file.package()).unwrap_or_default();
    let mut graph: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for file in all.values() {
        for dependency in &file.dependency {
            let (from, to) = (file.package(), package_of(dependency));
            if !from.is_empty() && !to.is_empty() && from != to {
                graph.entry(from).or_default().insert(to);
            }
        }
    }
    // The shortest path from `start` to `goal`, packages in name order on ties.
    let path = |start: &str, goal: &str| -> Option<Vec<String>> {
        let mut previous: BTreeMap<&str, &str> = BTreeMap::new();
        let mut queue = std::collections::VecDeque::from([start]);
        let mut seen = BTreeSet::from([start]);
        while let Some(package) = queue.pop_front() {
            if package == goal {
                let mut path = vec![goal.to_owned()];
                let mut at = goal;
                while let Some(before) = previous.get(at) {
                    path.push((*before).to_owned());
                    at = before;
                }
                path.reverse();
                return Some(path);
            }
            for next in graph.get(package).into_iter().flatten() {
                if seen.insert(next) {
                    previous.insert(next, package);
                    queue.push_back(next);
                }
            }
        }
        None
    };
    for file in files {
        let from = file.package();
        for (index, dependency) in file.dependency.iter().enumerate() {
            let to = package_of(dependency);
            if from.is_empty() || to.is_empty() || from == to {
                continue;
            }
            if let Some(back) = path(to, from) {
                let cycle = std::iter::once(from.to_owned()).chain(back).collect::<Vec<_>>().join(" -> ");
                let loc = spans[file.name()].loc(&[tag::FILE_DEPENDENCY, index as i32]);
                linter.add("PACKAGE_NO_IMPORT_CYCLE", file.name(), loc, format!("Package import cycle: {cycle}"));
            }
        }
    }
}

/// Full names (no leading dot) of the types a file refers to.
fn used_types(file: &FileDescriptorProto) -> BTreeSet<String> {
    fn message_types(message: &DescriptorProto, used: &mut BTreeSet<String>) {
        for field in message.field.iter().chain(&message.extension) {
            if matches!(field.r#type(), Type::Message | Type::Enum | Type::Group) {
                used.insert(field.type_name().trim_start_matches('.').to_owned());
            }
            if !field.extendee().is_empty() {
                used.insert(field.extendee().trim_start_matches('.').to_owned());
            }
        }
        for inner in &message.nested_type {
            message_types(inner, used);
        }
    }
    let mut used = BTreeSet::new();
    for message in &file.message_type {
        message_types(message, &mut used);
    }
    for field in &file.extension {
        used.insert(field.extendee().trim_start_matches('.').to_owned());
        if matches!(field.r#type(), Type::Message | Type::Enum | Type::Group) {
            used.insert(field.type_name().trim_start_matches('.').to_owned());
        }
    }
    for service in &file.service {
        for method in &service.method {
            used.insert(method.input_type().trim_start_matches('.').to_owned());
            used.insert(method.output_type().trim_start_matches('.').to_owned());
        }
    }
    used
}

/// Whether a file that imports `dependency` uses something it (or what it imports publicly)
/// defines: a type, or an extension set as a custom option (`options_from` holds their files).
fn import_used(
    dependency: &str,
    all: &BTreeMap<&str, &FileDescriptorProto>,
    used: &BTreeSet<String>,
    options_from: &BTreeSet<String>,
) -> bool {
    let mut pending = vec![dependency];
    let mut seen = BTreeSet::new();
    while let Some(name) = pending.pop() {
        if !seen.insert(name) {
            continue;
        }
        let Some(file) = all.get(name) else { return true };
        if options_from.contains(name) {
            return true;
        }
        let mut defined = BTreeSet::new();
        let prefix = if file.package().is_empty() { String::new() } else { format!("{}.", file.package()) };
        for message in &file.message_type {
            defined_types(message, &prefix, &mut defined);
        }
        for enumeration in &file.enum_type {
            defined.insert(format!("{prefix}{}", enumeration.name()));
        }
        if defined.iter().any(|name| used.contains(name)) {
            return true;
        }
        pending.extend(
            file.public_dependency.iter().filter_map(|index| file.dependency.get(*index as usize)).map(String::as_str),
        );
    }
    false
}

/// The files defining the extensions that file `name` sets as custom options, on any element
/// and inside option values (`option (a.b) = { [c.d]: 1 }`).
fn files_of_used_options(pool: &DescriptorPool, name: &str) -> BTreeSet<String> {
    fn visit(options: &DynamicMessage, files: &mut BTreeSet<String>) {
        for (extension, value) in options.extensions() {
            files.insert(extension.parent_file().name().to_owned());
            visit_value(value, files);
        }
        for (_, value) in options.fields() {
            visit_value(value, files);
        }
    }
    fn visit_value(value: &Value, files: &mut BTreeSet<String>) {
        match value {
            Value::Message(message) => visit(message, files),
            Value::List(values) => values.iter().for_each(|value| visit_value(value, files)),
            Value::Map(entries) => entries.values().for_each(|value| visit_value(value, files)),
            _ => {}
        }
    }
    fn message(descriptor: &MessageDescriptor, files: &mut BTreeSet<String>) {
        visit(&descriptor.options(), files);
        descriptor.fields().for_each(|field| visit(&field.options(), files));
        descriptor.oneofs().for_each(|oneof| visit(&oneof.options(), files));
        descriptor.child_extensions().for_each(|extension| visit(&extension.options(), files));
        descriptor.child_enums().for_each(|enumeration| enum_options(&enumeration, files));
        descriptor.child_messages().for_each(|inner| message(&inner, files));
    }
    fn enum_options(descriptor: &EnumDescriptor, files: &mut BTreeSet<String>) {
        visit(&descriptor.options(), files);
        descriptor.values().for_each(|value| visit(&value.options(), files));
    }
    let mut files = BTreeSet::new();
    let Some(file) = pool.get_file_by_name(name) else { return files };
    visit(&file.options(), &mut files);
    file.messages().for_each(|descriptor| message(&descriptor, &mut files));
    file.enums().for_each(|descriptor| enum_options(&descriptor, &mut files));
    file.extensions().for_each(|extension| visit(&extension.options(), &mut files));
    for service in file.services() {
        visit(&service.options(), &mut files);
        service.methods().for_each(|method| visit(&method.options(), &mut files));
    }
    files
}

fn defined_types(message: &DescriptorProto, prefix: &str, defined: &mut BTreeSet<String>) {
    let name = format!("{prefix}{}", message.name());
    for enumeration in &message.enum_type {
        defined.insert(format!("{name}.{}", enumeration.name()));
    }
    for inner in &message.nested_type {
        defined_types(inner, &format!("{name}."), defined);
    }
    defined.insert(name);
}

/// buf's PACKAGE_VERSION_SUFFIX: the last part is `v1`, `v1beta1`, `v1p1alpha1`, `v1test`...
fn has_version_suffix(package: &str) -> bool {
    let parts: Vec<&str> = package.split('.').collect();
    if parts.len() < 2 {
        return false;
    }
    let Some(version) = parts[parts.len() - 1].strip_prefix('v') else { return false };
    let positive = |text: &str| {
        !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) && text.parse::<i32>().is_ok_and(|n| n >= 1)
    };
    if let Some((major, _)) = version.split_once("test") {
        return positive(major);
    }
    let stability = match (version.contains("alpha"), version.contains("beta")) {
        (false, false) => return positive(version),
        (true, false) => "alpha",
        (false, true) => "beta",
        (true, true) => return false,
    };
    let (head, minor) = version.split_once(stability).expect("contains it");
    if !minor.is_empty() && !positive(minor) {
        return false;
    }
    match head.split_once('p') {
        Some((major, patch)) => positive(major) && positive(patch),
        None => positive(head),
    }
}

fn is_delimiter(c: char) -> bool {
    matches!(c, '.' | '-' | '_' | ' ' | '\t' | '\n' | '\r')
}

/// buf's PascalCase: delimiters dropped, the letter after one upper-cased, other upper-case
/// letters kept, everything else lower-cased.
pub fn to_pascal_case(name: &str) -> String {
    let mut out = String::new();
    let mut previous: Option<char> = None;
    for (i, c) in name.trim().chars().enumerate() {
        if !is_delimiter(c) {
            if i == 0 || previous.is_some_and(is_delimiter) || c.is_uppercase() {
                out.extend(c.to_uppercase());
            } else {
                out.extend(c.to_lowercase());
            }
        }
        previous = Some(c);
    }
    out
}

/// buf's snake_case: a new word starts at an upper-case letter that follows a lower-case one or
/// precedes one (so `HTTPServer` is `http_server`); digits do not start words.
fn to_snake_case(name: &str) -> String {
    let chars: Vec<char> = name.trim_matches(is_delimiter).chars().collect();
    let mut out = String::new();
    for (i, &c) in chars.iter().enumerate() {
        let c = if is_delimiter(c) { '_' } else { c };
        if i == 0 {
            out.push(c);
            continue;
        }
        let next = chars.get(i + 1).copied();
        let starts_word = c.is_uppercase()
            && !out.ends_with('_')
            && (next.is_some_and(|n| !n.is_uppercase() && !n.is_ascii_digit() && !is_delimiter(n))
                || chars[i - 1].is_lowercase());
        if starts_word {
            out.push('_');
            out.push(c);
        } else if !(c == '_' && out.ends_with('_')) {
            out.push(c);
        }
    }
    out
}

/// lower_snake_case, as buf spells it.
pub fn to_lower_snake_case(name: &str) -> String {
    to_snake_case(name).to_lowercase()
}

/// UPPER_SNAKE_CASE, as buf spells it.
pub fn to_upper_snake_case(name: &str) -> String {
    to_snake_case(name).to_uppercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cases_follow_buf() {
        assert_eq!(to_pascal_case("foo_api"), "FooApi");
        assert_eq!(to_pascal_case("get_thing"), "GetThing");
        assert_eq!(to_pascal_case("HTTPServer"), "HTTPServer");
        assert_eq!(to_lower_snake_case("BadName"), "bad_name");
        assert_eq!(to_lower_snake_case("HTTPServer"), "http_server");
        assert_eq!(to_lower_snake_case("field1"), "field1");
        assert_eq!(to_lower_snake_case("_opt"), "opt");
        assert_eq!(to_upper_snake_case("color_green"), "COLOR_GREEN");
        assert_eq!(to_upper_snake_case("OrderStatus"), "ORDER_STATUS");
        assert_eq!(to_lower_snake_case("Baz"), "baz");
    }

    #[test]
    fn version_suffixes_follow_buf() {
        for good in ["a.v1", "a.b.v2", "a.v1beta1", "a.v1alpha", "a.v1p1alpha1", "a.v1test", "a.v1testfoo"] {
            assert!(has_version_suffix(good), "{good}");
        }
        for bad in ["v1", "a", "a.v0", "a.v", "a.version1", "a.v1alphabeta1", "a.b"] {
            assert!(!has_version_suffix(bad), "{bad}");
        }
    }
}
