//! `plat proto breaking`: compares `proto/` with its state at a git ref, with buf or with plat's
//! own checks of buf's rules.
//!
//! The old files come straight from the git object database ([`load::read_git`]): no checkout,
//! no network. With buf, they are written to a temporary directory that `buf breaking` reads as
//! `--against`, so buf needs no clone and no network either. Without buf, both trees are compiled
//! by protox and compared here, rule by rule, reporting what buf reports where buf reports it:
//! in the new file, or for a deleted element in the element that held it (or the file).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;

use prost_types::field_descriptor_proto::{Label, Type};
use prost_types::{
    DescriptorProto, EnumDescriptorProto, FieldDescriptorProto, FileDescriptorProto, ServiceDescriptorProto,
};

use super::config::{self, BreakingConfig, RuleInfo};
use super::source::{Pos, Spans, child, tag};
use super::{CheckReport, Engine, Finding, ProtoError, Ran, buf, load};

/// How to check.
#[derive(Debug, Clone)]
pub struct BreakingOptions {
    /// buf or plat's own engine.
    pub engine: Engine,
    /// The git ref to compare with: a branch, tag, commit or `HEAD~1`.
    pub against: String,
}

const FILE: &str = "FILE";
const PACKAGE: &str = "PACKAGE";
const WIRE_JSON: &str = "WIRE_JSON";
const WIRE: &str = "WIRE";
const CSR: &str = "CSR";

/// buf 1.75's breaking rules and their categories (`buf config ls-breaking-rules --version v2`).
pub const RULES: &[RuleInfo] = &[
    rule("EXTENSION_NO_DELETE", &[FILE], true),
    rule("SERVICE_NO_DELETE", &[FILE], true),
    rule("ENUM_NO_DELETE", &[CSR, FILE], true),
    rule("FILE_NO_DELETE", &[CSR, FILE], true),
    rule("MESSAGE_NO_DELETE", &[CSR, FILE], true),
    rule("ENUM_SAME_TYPE", &[FILE, PACKAGE], true),
    rule("FIELD_SAME_CARDINALITY", &[FILE, PACKAGE], true),
    rule("FIELD_SAME_CPP_STRING_TYPE", &[FILE, PACKAGE], true),
    rule("FIELD_SAME_JAVA_UTF8_VALIDATION", &[FILE, PACKAGE], true),
    rule("FIELD_SAME_JSTYPE", &[FILE, PACKAGE], true),
    rule("FIELD_SAME_UTF8_VALIDATION", &[FILE, PACKAGE], true),
    rule("FILE_SAME_CC_ENABLE_ARENAS", &[FILE, PACKAGE], true),
    rule("FILE_SAME_CC_GENERIC_SERVICES", &[FILE, PACKAGE], true),
    rule("FILE_SAME_CSHARP_NAMESPACE", &[FILE, PACKAGE], true),
    rule("FILE_SAME_GO_PACKAGE", &[FILE, PACKAGE], true),
    rule("FILE_SAME_JAVA_GENERIC_SERVICES", &[FILE, PACKAGE], true),
    rule("FILE_SAME_JAVA_MULTIPLE_FILES", &[FILE, PACKAGE], true),
    rule("FILE_SAME_JAVA_OUTER_CLASSNAME", &[FILE, PACKAGE], true),
    rule("FILE_SAME_JAVA_PACKAGE", &[FILE, PACKAGE], true),
    rule("FILE_SAME_OBJC_CLASS_PREFIX", &[FILE, PACKAGE], true),
    rule("FILE_SAME_OPTIMIZE_FOR", &[FILE, PACKAGE], true),
    rule("FILE_SAME_PHP_CLASS_PREFIX", &[FILE, PACKAGE], true),
    rule("FILE_SAME_PHP_METADATA_NAMESPACE", &[FILE, PACKAGE], true),
    rule("FILE_SAME_PHP_NAMESPACE", &[FILE, PACKAGE], true),
    rule("FILE_SAME_PY_GENERIC_SERVICES", &[FILE, PACKAGE], true),
    rule("FILE_SAME_RUBY_PACKAGE", &[FILE, PACKAGE], true),
    rule("FILE_SAME_SWIFT_PREFIX", &[FILE, PACKAGE], true),
    rule("RPC_NO_DELETE", &[FILE, PACKAGE], true),
    rule("ENUM_VALUE_NO_DELETE", &[CSR, FILE, PACKAGE], true),
    rule("EXTENSION_MESSAGE_NO_DELETE", &[CSR, FILE, PACKAGE], true),
    rule("FIELD_NO_DELETE", &[CSR, FILE, PACKAGE], true),
    rule("FIELD_SAME_TYPE", &[CSR, FILE, PACKAGE], true),
    rule("FILE_SAME_SYNTAX", &[CSR, FILE, PACKAGE], true),
    rule("MESSAGE_NO_REMOVE_STANDARD_DESCRIPTOR_ACCESSOR", &[CSR, FILE, PACKAGE], true),
    rule("ONEOF_NO_DELETE", &[CSR, FILE, PACKAGE], true),
    rule("ENUM_SAME_JSON_FORMAT", &[CSR, FILE, PACKAGE, WIRE_JSON], true),
    rule("ENUM_VALUE_SAME_NAME", &[CSR, FILE, PACKAGE, WIRE_JSON], true),
    rule("FIELD_SAME_JSON_NAME", &[CSR, FILE, PACKAGE, WIRE_JSON], true),
    rule("FIELD_SAME_NAME", &[CSR, FILE, PACKAGE, WIRE_JSON], true),
    rule("MESSAGE_SAME_JSON_FORMAT", &[CSR, FILE, PACKAGE, WIRE_JSON], true),
    rule("FIELD_SAME_DEFAULT", &[CSR, FILE, PACKAGE, WIRE_JSON, WIRE], false),
    rule("FIELD_SAME_ONEOF", &[CSR, FILE, PACKAGE, WIRE_JSON, WIRE], true),
    rule("FILE_SAME_PACKAGE", &[CSR, FILE, PACKAGE, WIRE_JSON, WIRE], true),
    rule("MESSAGE_SAME_REQUIRED_FIELDS", &[CSR, FILE, PACKAGE, WIRE_JSON, WIRE], true),
    rule("RESERVED_ENUM_NO_DELETE", &[CSR, FILE, PACKAGE, WIRE_JSON, WIRE], true),
    rule("RESERVED_MESSAGE_NO_DELETE", &[CSR, FILE, PACKAGE, WIRE_JSON, WIRE], true),
    rule("RPC_SAME_CLIENT_STREAMING", &[CSR, FILE, PACKAGE, WIRE_JSON, WIRE], true),
    rule("RPC_SAME_IDEMPOTENCY_LEVEL", &[CSR, FILE, PACKAGE, WIRE_JSON, WIRE], true),
    rule("RPC_SAME_REQUEST_TYPE", &[CSR, FILE, PACKAGE, WIRE_JSON, WIRE], true),
    rule("RPC_SAME_RESPONSE_TYPE", &[CSR, FILE, PACKAGE, WIRE_JSON, WIRE], true),
    rule("RPC_SAME_SERVER_STREAMING", &[CSR, FILE, PACKAGE, WIRE_JSON, WIRE], true),
    rule("PACKAGE_ENUM_NO_DELETE", &[PACKAGE], true),
    rule("PACKAGE_EXTENSION_NO_DELETE", &[PACKAGE], true),
    rule("PACKAGE_MESSAGE_NO_DELETE", &[PACKAGE], true),
    rule("PACKAGE_NO_DELETE", &[PACKAGE], true),
    rule("PACKAGE_SERVICE_NO_DELETE", &[PACKAGE], true),
    rule("ENUM_VALUE_NO_DELETE_UNLESS_NAME_RESERVED", &[CSR, WIRE_JSON], true),
    rule("FIELD_NO_DELETE_UNLESS_NAME_RESERVED", &[CSR, WIRE_JSON], true),
    rule("FIELD_WIRE_JSON_COMPATIBLE_CARDINALITY", &[CSR, WIRE_JSON], true),
    rule("FIELD_WIRE_JSON_COMPATIBLE_TYPE", &[CSR, WIRE_JSON], true),
    rule("ENUM_VALUE_NO_DELETE_UNLESS_NUMBER_RESERVED", &[CSR, WIRE_JSON, WIRE], true),
    rule("FIELD_NO_DELETE_UNLESS_NUMBER_RESERVED", &[CSR, WIRE_JSON, WIRE], true),
    rule("FIELD_WIRE_COMPATIBLE_CARDINALITY", &[WIRE], true),
    rule("FIELD_WIRE_COMPATIBLE_TYPE", &[WIRE], true),
];

const fn rule(id: &'static str, categories: &'static [&'static str], builtin: bool) -> RuleInfo {
    RuleInfo { id, categories, builtin }
}

/// Checks `proto_dir` against its state at `options.against`.
pub fn check(proto_dir: &Path, options: &BreakingOptions) -> Result<CheckReport, ProtoError> {
    let buf = options.engine.resolve()?;
    let old = read_against(proto_dir, &options.against)?;
    check_sources(proto_dir, &old, buf.as_deref(), &options.against)
}

/// Checks `proto_dir` against `old` (the files as they were at `rev`, which is for messages)
/// with buf when `buf` is given, with plat's own engine otherwise.
pub fn check_sources(
    proto_dir: &Path,
    old: &load::Sources,
    buf: Option<&Path>,
    rev: &str,
) -> Result<CheckReport, ProtoError> {
    match buf {
        // Nothing existed, so nothing can break; buf would refuse an empty module instead. The
        // input is still checked as buf would check it, so both engines fail on the same inputs.
        Some(buf) if old.is_empty() => {
            buf::build(buf, proto_dir)?;
            let config = config::read(proto_dir)?;
            config::validate(&config, super::lint::RULES, RULES, &config::path_in(proto_dir))?;
            Ok(CheckReport { ran: Ran::Buf(buf.to_path_buf()), findings: Vec::new(), unchecked: Vec::new() })
        }
        Some(buf) => {
            let mut findings = buf::breaking(buf, proto_dir, old)?;
            fill_deleted_paths(&mut findings, old);
            findings.sort();
            Ok(CheckReport { ran: Ran::Buf(buf.to_path_buf()), findings, unchecked: Vec::new() })
        }
        None => {
            let config = config::read(proto_dir)?;
            config::validate(&config, super::lint::RULES, RULES, &config::path_in(proto_dir))?;
            let new = load::compile(load::read_dir(proto_dir)?)?;
            let old = load::compile(old.clone()).map_err(|error| match error {
                ProtoError::Compile { location, message } => {
                    ProtoError::Compile { location: format!("{location} (at {rev})"), message }
                }
                other => other,
            })?;
            let (findings, unchecked) = compare(&old, &new, &config.breaking, &config::path_in(proto_dir))?;
            Ok(CheckReport { ran: Ran::Builtin, findings, unchecked })
        }
    }
}

/// The `.proto` files of `proto_dir` as they were at `rev`.
fn read_against(proto_dir: &Path, rev: &str) -> Result<load::Sources, ProtoError> {
    let dir = proto_dir.canonicalize().map_err(|_| ProtoError::NoProtoDir(proto_dir.to_path_buf()))?;
    // The repository holding the proto directory (the workspace's own, usually). Only this
    // function opens it; everything after reads blobs of one tree.
    let repo = git2::Repository::discover(&dir).map_err(|_| ProtoError::NotARepository(proto_dir.to_path_buf()))?;
    let workdir = repo.workdir().ok_or_else(|| ProtoError::NotARepository(proto_dir.to_path_buf()))?;
    let workdir = workdir.canonicalize()?;
    let subdir = dir.strip_prefix(&workdir).unwrap_or(Path::new("")).to_string_lossy().replace('\\', "/");
    if repo.revparse_single(rev).and_then(|object| object.peel_to_commit()).is_err() {
        return Err(ProtoError::RevNotFound { rev: rev.to_owned(), repo: workdir, shallow: repo.is_shallow() });
    }
    load::read_git(&repo, rev, &subdir)
}

/// buf reports a deleted file, a deleted package, and an element deleted along with its file
/// with no path; plat names the old file it was in, as its own engine does.
fn fill_deleted_paths(findings: &mut [Finding], old: &load::Sources) {
    if !findings.iter().any(|finding| finding.path.is_empty()) {
        return;
    }
    // Only to find where things were; if the old files do not compile, buf's own verdict stands.
    let compiled = load::compile(old.clone()).ok();
    let side = compiled.as_ref().map(Side::new);
    for finding in findings.iter_mut().filter(|finding| finding.path.is_empty()) {
        let quoted: Vec<&str> = finding.message.split('"').skip(1).step_by(2).collect();
        let name = quoted.first().copied().unwrap_or_default();
        let package = quoted.get(1).copied().unwrap_or_default();
        let in_package = |file: &FileIndex| file.desc.package() == package;
        let found = match (finding.rule.as_str(), &side) {
            ("FILE_NO_DELETE", _) => Some(name.to_owned()),
            ("PACKAGE_NO_DELETE", Some(side)) => {
                side.files.iter().find(|(_, file)| file.desc.package() == name).map(|(path, _)| (*path).to_owned())
            }
            ("PACKAGE_MESSAGE_NO_DELETE", Some(side)) => side
                .files
                .iter()
                .find(|(_, file)| in_package(file) && file.messages.contains_key(name))
                .map(|(path, _)| (*path).to_owned()),
            ("PACKAGE_ENUM_NO_DELETE", Some(side)) => side
                .files
                .iter()
                .find(|(_, file)| in_package(file) && file.enums.contains_key(name))
                .map(|(path, _)| (*path).to_owned()),
            ("PACKAGE_SERVICE_NO_DELETE", Some(side)) => side
                .files
                .iter()
                .find(|(_, file)| in_package(file) && file.services.contains_key(name))
                .map(|(path, _)| (*path).to_owned()),
            _ => None,
        };
        if let Some(path) = found {
            finding.path = path;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The built-in engine.

/// One side of the comparison: the module's files and the files they import (buf compares whole
/// images, so an import that goes away is a deleted file), indexed the ways buf pairs elements.
struct Side<'a> {
    files: BTreeMap<&'a str, FileIndex<'a>>,
    /// Every message by full name (no leading dot).
    messages: HashMap<String, Element<'a, DescriptorProto>>,
    enums: HashMap<String, Element<'a, EnumDescriptorProto>>,
    services: HashMap<String, Element<'a, ServiceDescriptorProto>>,
    /// Every extension by the message it extends (full name) and its number, as buf pairs them.
    extensions: BTreeMap<(String, i32), Extension<'a>>,
}

/// An extension, with where it is.
struct Extension<'a> {
    file: &'a str,
    desc: &'a FieldDescriptorProto,
    /// Its source path in the file.
    path: Vec<i32>,
    /// Its full name (`shop.v1.label`, `shop.v1.Holder.label`).
    full_name: String,
}

struct FileIndex<'a> {
    desc: &'a FileDescriptorProto,
    spans: Spans,
    /// Messages and enums by name inside the package (`Outer.Inner`).
    messages: BTreeMap<String, Element<'a, DescriptorProto>>,
    enums: BTreeMap<String, Element<'a, EnumDescriptorProto>>,
    services: BTreeMap<String, Element<'a, ServiceDescriptorProto>>,
    /// Extensions by name inside the package (`ext`, or `Outer.ext` when declared in a message).
    extensions: BTreeSet<String>,
}

/// A message, enum or service, with where it is.
struct Element<'a, T> {
    file: &'a str,
    desc: &'a T,
    /// Its source path in the file.
    path: Vec<i32>,
    /// Name inside the package (`Outer.Inner`).
    nested: String,
}

impl<T> Clone for Element<'_, T> {
    fn clone(&self) -> Self {
        Element { file: self.file, desc: self.desc, path: self.path.clone(), nested: self.nested.clone() }
    }
}

impl<'a> Side<'a> {
    fn new(compiled: &'a load::Compiled) -> Side<'a> {
        let mut side = Side {
            files: BTreeMap::new(),
            messages: HashMap::new(),
            enums: HashMap::new(),
            services: HashMap::new(),
            extensions: BTreeMap::new(),
        };
        for file in &compiled.descriptors.file {
            let name = file.name();
            // An imported file (a well-known type) has no text here; nothing in it changes, so
            // nothing in it needs a position.
            let source = compiled.sources.get(name).map_or("", String::as_str);
            let mut index = FileIndex {
                desc: file,
                spans: Spans::new(file, source),
                messages: BTreeMap::new(),
                enums: BTreeMap::new(),
                services: BTreeMap::new(),
                extensions: file.extension.iter().map(|extension| extension.name().to_owned()).collect(),
            };
            for (i, message) in file.message_type.iter().enumerate() {
                index_message(&mut index, name, message, vec![tag::FILE_MESSAGE, i as i32], "");
            }
            for (i, enumeration) in file.enum_type.iter().enumerate() {
                let element = Element {
                    file: name,
                    desc: enumeration,
                    path: vec![tag::FILE_ENUM, i as i32],
                    nested: enumeration.name().to_owned(),
                };
                index.enums.insert(element.nested.clone(), element);
            }
            for (i, service) in file.service.iter().enumerate() {
                let element = Element {
                    file: name,
                    desc: service,
                    path: vec![tag::FILE_SERVICE, i as i32],
                    nested: service.name().to_owned(),
                };
                index.services.insert(element.nested.clone(), element);
            }
            let qualify = |nested: &str| {
                if file.package().is_empty() { nested.to_owned() } else { format!("{}.{nested}", file.package()) }
            };
            let mut extensions: Vec<(&str, &FieldDescriptorProto, Vec<i32>)> = file
                .extension
                .iter()
                .enumerate()
                .map(|(i, extension)| ("", extension, vec![tag::FILE_EXTENSION, i as i32]))
                .collect();
            for element in index.messages.values() {
                for (i, extension) in element.desc.extension.iter().enumerate() {
                    extensions.push((
                        &element.nested,
                        extension,
                        child(&element.path, &[tag::MESSAGE_EXTENSION, i as i32]),
                    ));
                }
            }
            for (scope, extension, path) in extensions {
                let nested = if scope.is_empty() {
                    extension.name().to_owned()
                } else {
                    format!("{scope}.{}", extension.name())
                };
                let key = (extension.extendee().trim_start_matches('.').to_owned(), extension.number());
                side.extensions
                    .insert(key, Extension { file: name, desc: extension, path, full_name: qualify(&nested) });
            }
            for element in index.messages.values() {
                side.messages.insert(qualify(&element.nested), element.clone());
            }
            for element in index.enums.values() {
                side.enums.insert(qualify(&element.nested), element.clone());
            }
            for element in index.services.values() {
                side.services.insert(qualify(&element.nested), element.clone());
            }
            side.files.insert(name, index);
        }
        side
    }

    fn spans(&self, file: &str) -> &Spans {
        &self.files[file].spans
    }

    fn is_map_entry(&self, type_name: &str) -> bool {
        self.messages
            .get(type_name.trim_start_matches('.'))
            .is_some_and(|message| message.desc.options.as_ref().and_then(|options| options.map_entry).unwrap_or(false))
    }

    fn syntax(&self, file: &str) -> &'a str {
        syntax(self.files[file].desc)
    }
}

fn index_message<'a>(
    index: &mut FileIndex<'a>,
    file: &'a str,
    message: &'a DescriptorProto,
    path: Vec<i32>,
    prefix: &str,
) {
    let nested = format!("{prefix}{}", message.name());
    index.extensions.extend(message.extension.iter().map(|extension| format!("{nested}.{}", extension.name())));
    for (i, inner) in message.nested_type.iter().enumerate() {
        index_message(index, file, inner, child(&path, &[tag::MESSAGE_NESTED, i as i32]), &format!("{nested}."));
    }
    for (i, enumeration) in message.enum_type.iter().enumerate() {
        let element = Element {
            file,
            desc: enumeration,
            path: child(&path, &[tag::MESSAGE_ENUM, i as i32]),
            nested: format!("{nested}.{}", enumeration.name()),
        };
        index.enums.insert(element.nested.clone(), element);
    }
    index.messages.insert(nested.clone(), Element { file, desc: message, path, nested });
}

fn syntax(file: &FileDescriptorProto) -> &str {
    match file.syntax() {
        "" => "proto2",
        syntax => syntax,
    }
}

/// A finding before `ignore` is applied: it also knows the old file it came from.
struct Raw {
    rule: &'static str,
    path: String,
    pos: Pos,
    against: String,
    message: String,
}

struct Checker<'a> {
    old: Side<'a>,
    new: Side<'a>,
    rules: BTreeSet<&'static str>,
    raw: Vec<Raw>,
}

impl Checker<'_> {
    fn add(&mut self, rule: &'static str, path: &str, pos: Pos, against: &str, message: String) {
        if self.rules.contains(rule) {
            self.raw.push(Raw { rule, path: path.to_owned(), pos, against: against.to_owned(), message });
        }
    }
}

/// Compares two compiled trees; returns the findings and the selected rules plat does not check.
pub fn compare(
    old: &load::Compiled,
    new: &load::Compiled,
    config: &BreakingConfig,
    config_path: &Path,
) -> Result<(Vec<Finding>, Vec<String>), ProtoError> {
    let rules = config::select(RULES, &config.use_, &config.except, FILE, config_path)?;
    let unchecked = rules
        .iter()
        .filter(|id| !RULES.iter().any(|rule| rule.id == **id && rule.builtin))
        .map(|id| (*id).to_owned())
        .collect();
    let mut checker = Checker { old: Side::new(old), new: Side::new(new), rules, raw: Vec::new() };
    check_files(&mut checker);
    check_packages(&mut checker);
    check_messages(&mut checker);
    check_extensions(&mut checker);
    check_enums(&mut checker);
    check_services(&mut checker);

    let mut findings: Vec<Finding> = checker
        .raw
        .into_iter()
        .filter(|raw| {
            !config::silenced(RULES, raw.rule, &[&raw.path, &raw.against], &config.ignore, &config.ignore_only)
        })
        .map(|raw| Finding {
            path: if raw.path.is_empty() { raw.against } else { raw.path },
            line: raw.pos.line,
            column: raw.pos.column,
            rule: raw.rule.to_owned(),
            message: raw.message,
        })
        .collect();
    findings.sort();
    findings.dedup();
    Ok((findings, unchecked))
}

/// Where buf points for an element deleted from `file`: the closest enclosing message that is
/// still there, or the top of the file.
fn deleted_element_pos(checker: &Checker, file: &str, nested: &str) -> Pos {
    let index = &checker.new.files[file];
    let parts: Vec<&str> = nested.split('.').collect();
    for end in (1..parts.len()).rev() {
        if let Some(parent) = index.messages.get(&parts[..end].join(".")) {
            return index.spans.at(&parent.path);
        }
    }
    Pos::FILE
}

fn check_files(checker: &mut Checker) {
    let pairs: Vec<(&str, bool)> =
        checker.old.files.keys().map(|path| (*path, checker.new.files.contains_key(path))).collect();
    for (path, kept) in pairs {
        if !kept {
            checker.add(
                "FILE_NO_DELETE",
                "",
                Pos::FILE,
                path,
                format!("Previously present file \"{path}\" was deleted."),
            );
            continue;
        }
        let (old, new) = (&checker.old.files[path], &checker.new.files[path]);
        let mut found: Vec<(&'static str, Pos, String)> = Vec::new();

        // Elements deleted from the file (moving them to another file breaks generated code
        // that imports by file, so FILE checks per file).
        for nested in old.messages.keys().filter(|nested| !new.messages.contains_key(*nested)) {
            found.push((
                "MESSAGE_NO_DELETE",
                Pos::FILE,
                format!("Previously present message \"{nested}\" was deleted from file."),
            ));
        }
        for nested in old.enums.keys().filter(|nested| !new.enums.contains_key(*nested)) {
            found.push((
                "ENUM_NO_DELETE",
                Pos::FILE,
                format!("Previously present enum \"{nested}\" was deleted from file."),
            ));
        }
        for nested in old.extensions.iter().filter(|nested| !new.extensions.contains(*nested)) {
            found.push((
                "EXTENSION_NO_DELETE",
                Pos::FILE,
                format!("Previously present extension \"{nested}\" was deleted from file."),
            ));
        }
        for name in old.services.keys().filter(|name| !new.services.contains_key(*name)) {
            found.push((
                "SERVICE_NO_DELETE",
                Pos::FILE,
                format!("Previously present service \"{name}\" was deleted from file."),
            ));
        }
        let (old_desc, new_desc) = (old.desc, new.desc);
        let same_value = |found: &mut Vec<_>, rule, what: &str, before: String, after: String, pos: Pos| {
            if before != after {
                found.push((rule, pos, format!("File {what} changed from {} to {}.", quote(&before), quote(&after))));
            }
        };
        same_value(
            &mut found,
            "FILE_SAME_PACKAGE",
            "package",
            old_desc.package().to_owned(),
            new_desc.package().to_owned(),
            new.spans.at(&[tag::FILE_PACKAGE]),
        );
        same_value(
            &mut found,
            "FILE_SAME_SYNTAX",
            "syntax",
            syntax(old_desc).to_owned(),
            syntax(new_desc).to_owned(),
            new.spans.at(&[tag::FILE_SYNTAX]),
        );
        for option in FILE_OPTIONS {
            let before = (option.value)(old_desc.options.as_ref());
            let after = (option.value)(new_desc.options.as_ref());
            let what = format!("option \"{}\"", option.name);
            same_value(
                &mut found,
                option.rule,
                &what,
                before,
                after,
                new.spans.at(&[tag::FILE_OPTIONS, option.number]),
            );
        }
        for (rule, pos, message) in found {
            let pos = match rule {
                "MESSAGE_NO_DELETE" | "ENUM_NO_DELETE" | "EXTENSION_NO_DELETE" => {
                    let nested = message.split('"').nth(1).unwrap_or_default().to_owned();
                    deleted_element_pos(checker, path, &nested)
                }
                _ => pos,
            };
            checker.add(rule, path, pos, path, message);
        }
    }
}

/// Elements deleted from a package: moving them between files of the package is fine here.
fn check_packages(checker: &mut Checker) {
    let packages = |side: &Side| -> BTreeMap<String, Vec<String>> {
        let mut packages: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (path, file) in &side.files {
            packages.entry(file.desc.package().to_owned()).or_default().push((*path).to_owned());
        }
        packages
    };
    let (old_packages, new_packages) = (packages(&checker.old), packages(&checker.new));
    for (package, files) in &old_packages {
        if !new_packages.contains_key(package) {
            // buf attributes it to the first file of the package, so `ignore` can match it.
            let first = files.first().cloned().unwrap_or_default();
            checker.add(
                "PACKAGE_NO_DELETE",
                "",
                Pos::FILE,
                &first,
                format!("Previously present package \"{package}\" was deleted."),
            );
            continue;
        }
        let qualify = |nested: &str| if package.is_empty() { nested.to_owned() } else { format!("{package}.{nested}") };
        // buf 1.75 indexes messages and enums by package and skips a package that has none left,
        // so deleting the last message (or enum) of a package is not reported; plat gives the
        // same verdict (FILE's MESSAGE_NO_DELETE / ENUM_NO_DELETE still catch it).
        let new_files = &new_packages[package];
        let has = |kind: fn(&FileIndex) -> bool| new_files.iter().any(|file| kind(&checker.new.files[file.as_str()]));
        let (messages_left, enums_left) = (has(|file| !file.messages.is_empty()), has(|file| !file.enums.is_empty()));
        let extensions_left = has(|file| !file.extensions.is_empty());
        let new_extensions: BTreeSet<&String> =
            new_files.iter().flat_map(|file| &checker.new.files[file.as_str()].extensions).collect();
        let mut found = Vec::new();
        for file in files {
            let old = &checker.old.files[file.as_str()];
            for nested in old
                .messages
                .keys()
                .filter(|nested| messages_left && !checker.new.messages.contains_key(&qualify(nested)))
            {
                found.push((
                    "PACKAGE_MESSAGE_NO_DELETE",
                    file.clone(),
                    nested.clone(),
                    format!("Previously present message \"{nested}\" was deleted from package \"{package}\"."),
                ));
            }
            for nested in
                old.enums.keys().filter(|nested| enums_left && !checker.new.enums.contains_key(&qualify(nested)))
            {
                found.push((
                    "PACKAGE_ENUM_NO_DELETE",
                    file.clone(),
                    nested.clone(),
                    format!("Previously present enum \"{nested}\" was deleted from package \"{package}\"."),
                ));
            }
            for nested in old.extensions.iter().filter(|nested| extensions_left && !new_extensions.contains(nested)) {
                found.push((
                    "PACKAGE_EXTENSION_NO_DELETE",
                    file.clone(),
                    nested.clone(),
                    format!("Previously present extension \"{nested}\" was deleted from package \"{package}\"."),
                ));
            }
            for name in old.services.keys().filter(|name| !checker.new.services.contains_key(&qualify(name))) {
                found.push((
                    "PACKAGE_SERVICE_NO_DELETE",
                    file.clone(),
                    String::new(),
                    format!("Previously present service \"{name}\" was deleted from package \"{package}\"."),
                ));
            }
        }
        for (rule, file, nested, message) in found {
            if checker.new.files.contains_key(file.as_str()) {
                let pos = if nested.is_empty() { Pos::FILE } else { deleted_element_pos(checker, &file, &nested) };
                checker.add(rule, &file, pos, &file, message);
            } else {
                // The file is gone too: buf has no new file to point at.
                checker.add(rule, "", Pos::FILE, &file, message);
            }
        }
    }
}

/// A value in double quotes, escaped as buf (Go's `%q`) prints it: `"Shop\\V1"` for `Shop\V1`.
fn quote(value: &str) -> String {
    let mut out = String::from('"');
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{b}' => out.push_str("\\v"),
            '\u{c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A file option FILE_SAME_* compares, with how buf prints its value.
struct FileOption {
    rule: &'static str,
    name: &'static str,
    number: i32,
    value: fn(Option<&prost_types::FileOptions>) -> String,
}

macro_rules! string_option {
    ($rule:literal, $name:literal, $number:literal, $field:ident) => {
        FileOption {
            rule: $rule,
            name: $name,
            number: $number,
            value: |options| options.map(|o| o.$field().to_owned()).unwrap_or_default(),
        }
    };
}
macro_rules! bool_option {
    ($rule:literal, $name:literal, $number:literal, $field:ident) => {
        FileOption {
            rule: $rule,
            name: $name,
            number: $number,
            value: |options| options.map_or(prost_types::FileOptions::default().$field(), |o| o.$field()).to_string(),
        }
    };
}

const FILE_OPTIONS: &[FileOption] = &[
    bool_option!("FILE_SAME_CC_ENABLE_ARENAS", "cc_enable_arenas", 31, cc_enable_arenas),
    bool_option!("FILE_SAME_CC_GENERIC_SERVICES", "cc_generic_services", 16, cc_generic_services),
    string_option!("FILE_SAME_CSHARP_NAMESPACE", "csharp_namespace", 37, csharp_namespace),
    string_option!("FILE_SAME_GO_PACKAGE", "go_package", 11, go_package),
    bool_option!("FILE_SAME_JAVA_GENERIC_SERVICES", "java_generic_services", 17, java_generic_services),
    bool_option!("FILE_SAME_JAVA_MULTIPLE_FILES", "java_multiple_files", 10, java_multiple_files),
    string_option!("FILE_SAME_JAVA_OUTER_CLASSNAME", "java_outer_classname", 8, java_outer_classname),
    string_option!("FILE_SAME_JAVA_PACKAGE", "java_package", 1, java_package),
    string_option!("FILE_SAME_OBJC_CLASS_PREFIX", "objc_class_prefix", 36, objc_class_prefix),
    FileOption {
        rule: "FILE_SAME_OPTIMIZE_FOR",
        name: "optimize_for",
        number: 9,
        value: |options| options.map(|o| o.optimize_for()).unwrap_or_default().as_str_name().to_owned(),
    },
    string_option!("FILE_SAME_PHP_CLASS_PREFIX", "php_class_prefix", 40, php_class_prefix),
    string_option!("FILE_SAME_PHP_METADATA_NAMESPACE", "php_metadata_namespace", 44, php_metadata_namespace),
    string_option!("FILE_SAME_PHP_NAMESPACE", "php_namespace", 41, php_namespace),
    bool_option!("FILE_SAME_PY_GENERIC_SERVICES", "py_generic_services", 18, py_generic_services),
    string_option!("FILE_SAME_RUBY_PACKAGE", "ruby_package", 45, ruby_package),
    string_option!("FILE_SAME_SWIFT_PREFIX", "swift_prefix", 39, swift_prefix),
];

/// How many values a field holds, in buf's words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cardinality {
    Explicit,
    Implicit,
    Required,
    Repeated,
    Map,
}

impl Cardinality {
    fn name(self) -> &'static str {
        match self {
            Cardinality::Explicit => "optional with explicit presence",
            Cardinality::Implicit => "optional with implicit presence",
            Cardinality::Required => "required",
            Cardinality::Repeated => "repeated",
            Cardinality::Map => "map",
        }
    }

    /// Cardinalities the binary encoding cannot tell apart share a group.
    fn wire_group(self) -> u8 {
        match self {
            Cardinality::Explicit | Cardinality::Implicit => 1,
            Cardinality::Required => 2,
            Cardinality::Repeated | Cardinality::Map => 3,
        }
    }

    /// Maps and repeated fields differ in JSON.
    fn wire_json_group(self) -> u8 {
        match self {
            Cardinality::Map => 4,
            other => other.wire_group(),
        }
    }
}

/// A field's cardinality; an `extension`'s presence is always explicit.
fn cardinality(side: &Side, file: &str, field: &FieldDescriptorProto, extension: bool) -> Cardinality {
    match field.label() {
        Label::Repeated if field.r#type() == Type::Message && side.is_map_entry(field.type_name()) => Cardinality::Map,
        Label::Repeated => Cardinality::Repeated,
        Label::Required => Cardinality::Required,
        Label::Optional => {
            let explicit = match side.syntax(file) {
                "proto3" if extension => true,
                "proto3" => field.r#type() == Type::Message || field.oneof_index.is_some() || field.proto3_optional(),
                // proto2 and editions (whose default is explicit presence).
                _ => true,
            };
            if explicit { Cardinality::Explicit } else { Cardinality::Implicit }
        }
    }
}

/// protoreflect's name of a field kind, as buf prints it.
fn kind_name(kind: Type) -> &'static str {
    match kind {
        Type::Double => "double",
        Type::Float => "float",
        Type::Int64 => "int64",
        Type::Uint64 => "uint64",
        Type::Int32 => "int32",
        Type::Fixed64 => "fixed64",
        Type::Fixed32 => "fixed32",
        Type::Bool => "bool",
        Type::String => "string",
        Type::Group => "group",
        Type::Message => "message",
        Type::Bytes => "bytes",
        Type::Uint32 => "uint32",
        Type::Enum => "enum",
        Type::Sfixed32 => "sfixed32",
        Type::Sfixed64 => "sfixed64",
        Type::Sint32 => "sint32",
        Type::Sint64 => "sint64",
    }
}

/// Kinds whose binary encodings can be read as each other share a group.
fn wire_group(kind: Type) -> u8 {
    match kind {
        Type::Int32 | Type::Int64 | Type::Uint32 | Type::Uint64 | Type::Bool => 1,
        Type::Sint32 | Type::Sint64 => 2,
        Type::String => 3,
        Type::Bytes => 4,
        Type::Fixed32 | Type::Sfixed32 => 5,
        Type::Fixed64 | Type::Sfixed64 => 6,
        Type::Double => 7,
        Type::Float => 8,
        Type::Group => 9,
        Type::Message => 10,
        Type::Enum => 11,
    }
}

/// Kinds compatible both in binary and in JSON share a group.
fn wire_json_group(kind: Type) -> u8 {
    match kind {
        Type::Int32 | Type::Uint32 => 1,
        Type::Int64 | Type::Uint64 => 2,
        Type::Fixed32 | Type::Sfixed32 => 3,
        Type::Fixed64 | Type::Sfixed64 => 4,
        Type::Bool => 5,
        Type::Sint32 => 6,
        Type::Sint64 => 7,
        Type::String => 8,
        Type::Bytes => 9,
        Type::Double => 10,
        Type::Float => 11,
        Type::Group => 12,
        Type::Message => 13,
        Type::Enum => 14,
    }
}

const WIRE_NOTE: &str =
    "See https://developers.google.com/protocol-buffers/docs/proto3#updating for wire compatibility rules.";
const WIRE_JSON_NOTE: &str = "See https://developers.google.com/protocol-buffers/docs/proto3#updating for wire compatibility rules and https://developers.google.com/protocol-buffers/docs/proto3#json for JSON compatibility rules.";
const BYTES_TO_STRING_NOTE: &str = "Note that while string and bytes are compatible if the data is valid UTF-8, there is no way to enforce that a bytes field is UTF-8, so these fields may be incompatible.";

/// `Field "1" with name "id" on message "User"`.
fn describe(field: &FieldDescriptorProto, message: &DescriptorProto) -> String {
    format!("Field \"{}\" with name \"{}\" on message \"{}\"", field.number(), field.name(), message.name())
}

fn json_name(field: &FieldDescriptorProto) -> String {
    if let Some(name) = &field.json_name {
        return name.clone();
    }
    // protoc's default: drop underscores, capitalise the letter after each.
    let mut out = String::new();
    let mut upper = false;
    for c in field.name().chars() {
        if c == '_' {
            upper = true;
        } else if upper {
            out.extend(c.to_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

/// How strings are checked for UTF-8 when parsed: proto3 verifies, proto2 does not.
fn utf8_validation(syntax: &str) -> &'static str {
    if syntax == "proto3" { "VERIFY" } else { "NONE" }
}

/// Whether JSON is fully supported: proto3 yes (ALLOW), proto2 only best effort.
fn json_format(syntax: &str) -> &'static str {
    if syntax == "proto3" { "ALLOW" } else { "LEGACY_BEST_EFFORT" }
}

fn is_synthetic_oneof(message: &DescriptorProto, index: i32) -> bool {
    let members: Vec<&FieldDescriptorProto> =
        message.field.iter().filter(|field| field.oneof_index == Some(index)).collect();
    members.len() == 1 && members[0].proto3_optional()
}

/// The oneof a field is really in (not the synthetic one of a proto3 `optional`).
fn real_oneof<'a>(message: &'a DescriptorProto, field: &FieldDescriptorProto) -> Option<&'a str> {
    let index = field.oneof_index?;
    if is_synthetic_oneof(message, index) {
        return None;
    }
    message.oneof_decl.get(index as usize).map(|oneof| oneof.name())
}

fn check_messages(checker: &mut Checker) {
    let mut names: Vec<&String> = checker.old.messages.keys().collect();
    names.sort();
    let names: Vec<String> =
        names.into_iter().filter(|name| checker.new.messages.contains_key(*name)).cloned().collect();
    for name in names {
        let old = checker.old.messages[&name].clone();
        let new = checker.new.messages[&name].clone();
        check_message_pair(checker, &old, &new);
    }
}

/// The source path of the map field whose entry message `entry` is, when it is one.
fn map_field_path(checker: &Checker, entry: &Element<DescriptorProto>) -> Option<Vec<i32>> {
    let is_entry = entry.desc.options.as_ref().and_then(|options| options.map_entry).unwrap_or(false);
    let (parent, _) = entry.nested.rsplit_once('.')?;
    if !is_entry {
        return None;
    }
    let parent = checker.new.files[entry.file].messages.get(parent)?;
    let suffix = format!(".{}", entry.nested);
    let index = parent.desc.field.iter().position(|field| field.type_name().ends_with(&suffix))?;
    Some(child(&parent.path, &[tag::MESSAGE_FIELD, index as i32]))
}

fn check_message_pair(checker: &mut Checker, old: &Element<DescriptorProto>, new: &Element<DescriptorProto>) {
    let (old_desc, new_desc) = (old.desc, new.desc);
    let spans = checker.new.spans(new.file);
    let message_pos = spans.at(&new.path);
    let mut found: Vec<(&'static str, Pos, String)> = Vec::new();

    let old_fields: BTreeMap<i32, (usize, &FieldDescriptorProto)> =
        old_desc.field.iter().enumerate().map(|(i, f)| (f.number(), (i, f))).collect();
    let new_fields: BTreeMap<i32, (usize, &FieldDescriptorProto)> =
        new_desc.field.iter().enumerate().map(|(i, f)| (f.number(), (i, f))).collect();
    let number_reserved =
        |number: i32| new_desc.reserved_range.iter().any(|range| range.start() <= number && number < range.end());
    let name_reserved = |name: &str| new_desc.reserved_name.iter().any(|reserved| reserved == name);

    for (number, (_, field)) in &old_fields {
        if new_fields.contains_key(number) {
            continue;
        }
        let what = format!(
            "Previously present field \"{number}\" with name \"{}\" on message \"{}\" was deleted",
            field.name(),
            old_desc.name()
        );
        found.push(("FIELD_NO_DELETE", message_pos, format!("{what}.")));
        if !number_reserved(*number) {
            found.push((
                "FIELD_NO_DELETE_UNLESS_NUMBER_RESERVED",
                message_pos,
                format!("{what} without reserving the number \"{number}\"."),
            ));
        }
        if !name_reserved(field.name()) {
            found.push((
                "FIELD_NO_DELETE_UNLESS_NAME_RESERVED",
                message_pos,
                format!("{what} without reserving the name \"{}\".", field.name()),
            ));
        }
    }

    // Map entries are generated; their fields' presence means nothing (buf skips them too).
    let map_entry =
        |desc: &DescriptorProto| desc.options.as_ref().and_then(|options| options.map_entry).unwrap_or(false);
    let both_map_entries = map_entry(old_desc) && map_entry(new_desc);
    for (number, (new_index, field)) in &new_fields {
        let Some((_, before)) = old_fields.get(number) else { continue };
        let pair = FieldPair {
            old_file: old.file,
            new_file: new.file,
            before,
            field,
            path: child(&new.path, &[tag::MESSAGE_FIELD, *new_index as i32]),
            owner: FieldOwner::Message { old: old_desc, new: new_desc, both_map_entries },
        };
        found.extend(compare_field(checker, &pair));
    }

    // Required fields added or removed (proto2).
    let required = |fields: &BTreeMap<i32, (usize, &FieldDescriptorProto)>| -> BTreeSet<i32> {
        fields.iter().filter(|(_, (_, field))| field.label() == Label::Required).map(|(number, _)| *number).collect()
    };
    let (was_required, is_required) = (required(&old_fields), required(&new_fields));
    for number in was_required.difference(&is_required) {
        found.push(("MESSAGE_SAME_REQUIRED_FIELDS", message_pos, format!("Message \"{}\" had required field \"{number}\" deleted. Required fields must always be sent, so if one side does not know about the required field, this will result in a breakage.", old_desc.name())));
    }
    for number in is_required.difference(&was_required) {
        let pos = spans.at(&child(&new.path, &[tag::MESSAGE_FIELD, new_fields[number].0 as i32]));
        found.push(("MESSAGE_SAME_REQUIRED_FIELDS", pos, format!("Message \"{}\" had required field \"{number}\" added. Required fields must always be sent, so if one side does not know about the required field, this will result in a breakage.", new_desc.name())));
    }

    // Oneofs.
    let new_oneofs: BTreeSet<&str> = new_desc.oneof_decl.iter().map(|oneof| oneof.name()).collect();
    for (index, oneof) in old_desc.oneof_decl.iter().enumerate() {
        if !new_oneofs.contains(oneof.name()) && !is_synthetic_oneof(old_desc, index as i32) {
            found.push((
                "ONEOF_NO_DELETE",
                message_pos,
                format!(
                    "Previously present oneof \"{}\" on message \"{}\" was deleted.",
                    oneof.name(),
                    new_desc.name()
                ),
            ));
        }
    }

    // JSON support and the descriptor accessor.
    let (old_syntax, new_syntax) = (checker.old.syntax(old.file), checker.new.syntax(new.file));
    if json_format(old_syntax) == "ALLOW" && json_format(new_syntax) != "ALLOW" {
        found.push((
            "MESSAGE_SAME_JSON_FORMAT",
            message_pos,
            format!(
                "Message \"{}\" JSON format support changed from ALLOW to {}.",
                new_desc.name(),
                json_format(new_syntax)
            ),
        ));
    }
    let accessor = |desc: &DescriptorProto| {
        desc.options.as_ref().and_then(|options| options.no_standard_descriptor_accessor).unwrap_or(false)
    };
    if !accessor(old_desc) && accessor(new_desc) {
        found.push((
            "MESSAGE_NO_REMOVE_STANDARD_DESCRIPTOR_ACCESSOR",
            spans.at(&child(&new.path, &[tag::MESSAGE_OPTIONS, 2])),
            "Message option \"no_standard_descriptor_accessor\" changed from \"false\" to \"true\".".to_owned(),
        ));
    }
    let extension_ranges = |desc: &DescriptorProto| -> Vec<(i32, i32)> {
        desc.extension_range.iter().map(|range| (range.start(), range.end() - 1)).collect()
    };
    let max_tag = if new_desc.options.as_ref().and_then(|options| options.message_set_wire_format).unwrap_or(false) {
        2_147_483_646
    } else {
        536_870_911
    };
    for message in
        missing_ranges(&extension_ranges(old_desc), &extension_ranges(new_desc), max_tag, "message", new_desc.name())
    {
        found.push((
            "EXTENSION_MESSAGE_NO_DELETE",
            message_pos,
            message.replacen("reserved range", "extension range", 1),
        ));
    }

    // Reserved numbers and names.
    let old_ranges: Vec<(i32, i32)> =
        old_desc.reserved_range.iter().map(|range| (range.start(), range.end() - 1)).collect();
    let new_ranges: Vec<(i32, i32)> =
        new_desc.reserved_range.iter().map(|range| (range.start(), range.end() - 1)).collect();
    let max = if new_desc.options.as_ref().and_then(|options| options.message_set_wire_format).unwrap_or(false) {
        2_147_483_646
    } else {
        536_870_911
    };
    for message in missing_ranges(&old_ranges, &new_ranges, max, "message", new_desc.name()) {
        found.push(("RESERVED_MESSAGE_NO_DELETE", message_pos, message));
    }
    for name in old_desc.reserved_name.iter().filter(|name| !new_desc.reserved_name.contains(name)) {
        found.push((
            "RESERVED_MESSAGE_NO_DELETE",
            message_pos,
            format!("Previously present reserved name \"{name}\" on message \"{}\" was deleted.", new_desc.name()),
        ));
    }

    // A map's entry message has no text of its own: buf points at the map field instead.
    let anchor = map_field_path(checker, new).map(|path| checker.new.spans(new.file).at(&path));
    for (rule, pos, message) in found {
        let pos = anchor.unwrap_or(pos);
        checker.add(rule, new.file, pos, old.file, message);
    }
}

/// Which kind of field two versions of are compared: a message's own, or an extension (which buf
/// names by its full name and the message it extends, and whose presence is always explicit).
enum FieldOwner<'a> {
    Message { old: &'a DescriptorProto, new: &'a DescriptorProto, both_map_entries: bool },
    Extension { extendee: &'a str, old_name: &'a str, new_name: &'a str },
}

/// A field as it was and as it is.
struct FieldPair<'a> {
    old_file: &'a str,
    new_file: &'a str,
    before: &'a FieldDescriptorProto,
    field: &'a FieldDescriptorProto,
    /// The new field's source path.
    path: Vec<i32>,
    owner: FieldOwner<'a>,
}

/// The FIELD_* rules for one field kept under its number: name, JSON name, cardinality, type,
/// and what decides strings and 64-bit numbers.
fn compare_field(checker: &Checker, pair: &FieldPair) -> Vec<(&'static str, Pos, String)> {
    let (before, field, path) = (pair.before, pair.field, &pair.path);
    let number = field.number();
    let spans = checker.new.spans(pair.new_file);
    let mut found: Vec<(&'static str, Pos, String)> = Vec::new();
    let field_pos = spans.at(path);
    let type_pos = spans.at(&child(path, &[tag::FIELD_TYPE]));
    let type_name_pos = spans.at(&child(path, &[tag::FIELD_TYPE_NAME]));
    let (describe_new, renamed) = match &pair.owner {
        FieldOwner::Message { new: new_desc, .. } => (
            describe(field, new_desc),
            (before.name() != field.name()).then(|| {
                format!(
                    "Field \"{number}\" on message \"{}\" changed name from \"{}\" to \"{}\".",
                    new_desc.name(),
                    before.name(),
                    field.name()
                )
            }),
        ),
        FieldOwner::Extension { extendee, old_name, new_name } => (
            format!("Extension \"{number}\" with name \"{new_name}\" on message \"{extendee}\""),
            (old_name != new_name).then(|| {
                format!(
                    "Extension \"{number}\" on message \"{extendee}\" changed name from \"{old_name}\" to \"{new_name}\"."
                )
            }),
        ),
    };
    let extension = matches!(pair.owner, FieldOwner::Extension { .. });
    let both_map_entries = matches!(pair.owner, FieldOwner::Message { both_map_entries: true, .. });

    // Name and JSON name (buf does not compare an extension's JSON name).
    if let Some(message) = renamed {
        found.push(("FIELD_SAME_NAME", spans.at(&child(path, &[tag::FIELD_NAME])), message));
    }
    if !extension && json_name(before) != json_name(field) {
        let pos = spans.get(&child(path, &[tag::FIELD_JSON_NAME])).unwrap_or(field_pos);
        found.push((
            "FIELD_SAME_JSON_NAME",
            pos,
            format!(
                "{describe_new} changed option \"json_name\" from \"{}\" to \"{}\".",
                json_name(before),
                json_name(field)
            ),
        ));
    }

    // Cardinality.
    if !both_map_entries {
        let (was, is) = (
            cardinality(&checker.old, pair.old_file, before, extension),
            cardinality(&checker.new, pair.new_file, field, extension),
        );
        let message = format!("{describe_new} changed cardinality from \"{}\" to \"{}\".", was.name(), is.name());
        if was != is {
            found.push(("FIELD_SAME_CARDINALITY", field_pos, message.clone()));
        }
        if was.wire_group() != is.wire_group() {
            found.push(("FIELD_WIRE_COMPATIBLE_CARDINALITY", field_pos, message.clone()));
        }
        if was.wire_json_group() != is.wire_json_group() {
            found.push(("FIELD_WIRE_JSON_COMPATIBLE_CARDINALITY", field_pos, message));
        }
    }

    // Type.
    let (was, is) = (before.r#type(), field.r#type());
    let kind_pos = if matches!(is, Type::Message | Type::Enum | Type::Group) { type_name_pos } else { type_pos };
    let kind_changed = |note: Option<&str>| {
        let note = note.map(|note| format!(" {note}")).unwrap_or_default();
        format!("{describe_new} changed type from \"{}\" to \"{}\".{note}", kind_name(was), kind_name(is))
    };
    let name_changed = format!(
        "{describe_new} changed type from \"{}\" to \"{}\".",
        before.type_name().trim_start_matches('.'),
        field.type_name().trim_start_matches('.')
    );
    let named = matches!(is, Type::Message | Type::Enum | Type::Group);
    if was != is {
        found.push(("FIELD_SAME_TYPE", kind_pos, kind_changed(None)));
    } else if named && before.type_name() != field.type_name() {
        found.push(("FIELD_SAME_TYPE", type_name_pos, name_changed.clone()));
    }
    if wire_group(was) != wire_group(is) {
        match (was, is) {
            (Type::String, Type::Bytes) => {}
            (Type::Bytes, Type::String) => found.push((
                "FIELD_WIRE_COMPATIBLE_TYPE",
                kind_pos,
                kind_changed(Some(&format!("{WIRE_NOTE} {BYTES_TO_STRING_NOTE}"))),
            )),
            _ => found.push(("FIELD_WIRE_COMPATIBLE_TYPE", kind_pos, kind_changed(Some(WIRE_NOTE)))),
        }
    } else if named && before.type_name() != field.type_name() && !compatible_enums(checker, before, field) {
        found.push(("FIELD_WIRE_COMPATIBLE_TYPE", type_name_pos, name_changed.clone()));
    }
    if wire_json_group(was) != wire_json_group(is) {
        found.push(("FIELD_WIRE_JSON_COMPATIBLE_TYPE", kind_pos, kind_changed(Some(WIRE_JSON_NOTE))));
    } else if named && before.type_name() != field.type_name() && !compatible_enums(checker, before, field) {
        found.push(("FIELD_WIRE_JSON_COMPATIBLE_TYPE", type_name_pos, name_changed));
    }

    // What proto2 and proto3 (and options) decide about strings and 64-bit numbers.
    let (old_syntax, new_syntax) = (checker.old.syntax(pair.old_file), checker.new.syntax(pair.new_file));
    if was == Type::String && is == Type::String {
        let (a, b) = (utf8_validation(old_syntax), utf8_validation(new_syntax));
        if a != b {
            found.push((
                "FIELD_SAME_UTF8_VALIDATION",
                field_pos,
                format!("{describe_new} changed UTF8 validation from {a} to {b}."),
            ));
        }
        let java = |side: &Side, file: &str, syntax: &str| {
            let checked = side.files[file].desc.options.as_ref().and_then(|options| options.java_string_check_utf8);
            if checked == Some(true) { "VERIFY" } else { utf8_validation(syntax) }
        };
        let (a, b) = (java(&checker.old, pair.old_file, old_syntax), java(&checker.new, pair.new_file, new_syntax));
        if a != b {
            let pos = spans.get(&[tag::FILE_OPTIONS, 27]).unwrap_or(field_pos);
            found.push((
                "FIELD_SAME_JAVA_UTF8_VALIDATION",
                pos,
                format!("{describe_new} changed Java string UTF8 validation from \"{a}\" to \"{b}\"."),
            ));
        }
    }
    let sixty_four =
        |kind: Type| matches!(kind, Type::Int64 | Type::Sint64 | Type::Uint64 | Type::Fixed64 | Type::Sfixed64);
    if sixty_four(was) && sixty_four(is) {
        let jstype = |f: &FieldDescriptorProto| {
            f.options.as_ref().map(|options| options.jstype()).unwrap_or_default().as_str_name()
        };
        if jstype(before) != jstype(field) {
            let pos = spans.get(&child(path, &[tag::FIELD_OPTIONS, 6])).unwrap_or(field_pos);
            found.push((
                "FIELD_SAME_JSTYPE",
                pos,
                format!(
                    "{describe_new} changed option \"jstype\" from \"{}\" to \"{}\".",
                    jstype(before),
                    jstype(field)
                ),
            ));
        }
    }
    let stringy = |kind: Type| matches!(kind, Type::String | Type::Bytes);
    if stringy(was) && stringy(is) && !both_map_entries {
        let ctype = |f: &FieldDescriptorProto| f.options.as_ref().map(|options| options.ctype()).unwrap_or_default();
        let (a, b) = (ctype(before), ctype(field));
        // Moving from STRING_PIECE to STRING is allowed.
        if a != b
            && !(a == prost_types::field_options::CType::StringPiece && b == prost_types::field_options::CType::String)
        {
            let pos = spans.get(&child(path, &[tag::FIELD_OPTIONS, 1])).unwrap_or(field_pos);
            found.push((
                "FIELD_SAME_CPP_STRING_TYPE",
                pos,
                format!(
                    "{describe_new} changed C++ string type from \"{}\" to \"{}\".",
                    a.as_str_name(),
                    b.as_str_name()
                ),
            ));
        }
    }

    // Oneof membership.
    let oneofs = match &pair.owner {
        FieldOwner::Message { old, new, .. } => (real_oneof(old, before), real_oneof(new, field)),
        FieldOwner::Extension { .. } => (None, None),
    };
    match oneofs {
        (None, None) => {}
        (Some(a), Some(b)) if a == b => {}
        (Some(a), Some(b)) => found.push((
            "FIELD_SAME_ONEOF",
            field_pos,
            format!("{describe_new} moved from oneof \"{a}\" to oneof \"{b}\"."),
        )),
        (Some(_), None) => {
            found.push(("FIELD_SAME_ONEOF", field_pos, format!("{describe_new} moved from inside to outside a oneof.")))
        }
        (None, Some(_)) => {
            found.push(("FIELD_SAME_ONEOF", field_pos, format!("{describe_new} moved from outside to inside a oneof.")))
        }
    }
    found
}

/// Extensions kept under the same extended message and number: the same FIELD_* rules as fields.
fn check_extensions(checker: &mut Checker) {
    let keys: Vec<(String, i32)> =
        checker.old.extensions.keys().filter(|key| checker.new.extensions.contains_key(*key)).cloned().collect();
    let mut found = Vec::new();
    for key in keys {
        let (old, new) = (&checker.old.extensions[&key], &checker.new.extensions[&key]);
        let pair = FieldPair {
            old_file: old.file,
            new_file: new.file,
            before: old.desc,
            field: new.desc,
            path: new.path.clone(),
            owner: FieldOwner::Extension { extendee: &key.0, old_name: &old.full_name, new_name: &new.full_name },
        };
        for (rule, pos, message) in compare_field(checker, &pair) {
            found.push((rule, new.file.to_owned(), pos, old.file.to_owned(), message));
        }
    }
    for (rule, file, pos, against, message) in found {
        checker.add(rule, &file, pos, &against, message);
    }
}

/// An enum field whose enum was renamed elsewhere stays wire compatible when the enum keeps its
/// short name and every value it had (buf lets values be added in the same change).
fn compatible_enums(checker: &Checker, before: &FieldDescriptorProto, field: &FieldDescriptorProto) -> bool {
    if field.r#type() != Type::Enum {
        return false;
    }
    let (Some(old), Some(new)) = (
        checker.old.enums.get(before.type_name().trim_start_matches('.')),
        checker.new.enums.get(field.type_name().trim_start_matches('.')),
    ) else {
        return false;
    };
    old.desc.name() == new.desc.name()
        && old.desc.value.iter().all(|value| {
            new.desc.value.iter().any(|other| other.name() == value.name() && other.number() == value.number())
        })
}

/// `[5]`, `[5,9]`, `[5,max]`.
fn range_string(start: i32, end: i32, max: i32) -> String {
    if start == end {
        format!("[{start}]")
    } else if end == max {
        format!("[{start},max]")
    } else {
        format!("[{start},{end}]")
    }
}

/// For each old reserved range (inclusive bounds) not wholly covered by the new ones: buf's message.
fn missing_ranges(old: &[(i32, i32)], new: &[(i32, i32)], max: i32, kind: &str, name: &str) -> Vec<String> {
    let mut out = Vec::new();
    for &(start, end) in old {
        let mut missing = Vec::new();
        let mut next = start;
        while next <= end {
            if let Some(&(_, covered_end)) =
                new.iter().filter(|(s, e)| *s <= next && next <= *e).max_by_key(|(_, e)| *e)
            {
                if covered_end >= end {
                    break;
                }
                next = covered_end + 1;
                continue;
            }
            // Not covered: runs until the next range that starts within [next, end].
            let gap_end = new.iter().filter(|(s, _)| *s > next && *s <= end).map(|(s, _)| s - 1).min().unwrap_or(end);
            missing.push(range_string(next, gap_end, max));
            next = gap_end.saturating_add(1);
            if gap_end == i32::MAX {
                break;
            }
        }
        if !missing.is_empty() {
            out.push(format!(
                "Previously present reserved range \"{}\" on {kind} \"{name}\" is missing values: {} were removed.",
                range_string(start, end, max),
                missing.join(", ")
            ));
        }
    }
    out
}

fn check_enums(checker: &mut Checker) {
    let mut names: Vec<String> =
        checker.old.enums.keys().filter(|name| checker.new.enums.contains_key(*name)).cloned().collect();
    names.sort();
    for name in names {
        let old = checker.old.enums[&name].clone();
        let new = checker.new.enums[&name].clone();
        let spans = checker.new.spans(new.file);
        let enum_pos = spans.at(&new.path);
        let (old_desc, new_desc) = (old.desc, new.desc);
        let mut found: Vec<(&'static str, Pos, String)> = Vec::new();

        let by_number = |desc: &EnumDescriptorProto| -> BTreeMap<i32, Vec<(usize, String)>> {
            let mut map: BTreeMap<i32, Vec<(usize, String)>> = BTreeMap::new();
            for (i, value) in desc.value.iter().enumerate() {
                map.entry(value.number()).or_default().push((i, value.name().to_owned()));
            }
            for names in map.values_mut() {
                names.sort_by(|a, b| a.1.cmp(&b.1));
            }
            map
        };
        let (old_values, new_values) = (by_number(old_desc), by_number(new_desc));
        let number_reserved =
            |number: i32| new_desc.reserved_range.iter().any(|range| range.start() <= number && number <= range.end());
        let quoted = |names: &[(usize, String)]| {
            names.iter().map(|(_, name)| format!("\"{name}\"")).collect::<Vec<_>>().join(", ")
        };
        for (number, names) in &old_values {
            let Some(now) = new_values.get(number) else {
                let what =
                    format!("Previously present enum value \"{number}\" on enum \"{}\" was deleted", new_desc.name());
                found.push(("ENUM_VALUE_NO_DELETE", enum_pos, format!("{what}.")));
                if !number_reserved(*number) {
                    found.push((
                        "ENUM_VALUE_NO_DELETE_UNLESS_NUMBER_RESERVED",
                        enum_pos,
                        format!("{what} without reserving the number \"{number}\"."),
                    ));
                }
                if !names.iter().all(|(_, name)| new_desc.reserved_name.contains(name)) {
                    let plural = if names.len() > 1 { "s" } else { "" };
                    found.push((
                        "ENUM_VALUE_NO_DELETE_UNLESS_NAME_RESERVED",
                        enum_pos,
                        format!("{what} without reserving the name{plural} {}.", quoted(names)),
                    ));
                }
                continue;
            };
            // Every name the number has now must be one it had.
            if !now.iter().all(|(_, name)| names.iter().any(|(_, old)| old == name)) {
                let plural = if names.len() > 1 && now.len() > 1 { "s" } else { "" };
                for (index, _) in now {
                    let pos = spans.at(&child(&new.path, &[tag::ENUM_VALUE, *index as i32, tag::ENUM_VALUE_NUMBER]));
                    found.push((
                        "ENUM_VALUE_SAME_NAME",
                        pos,
                        format!(
                            "Enum value \"{number}\" on enum \"{}\" changed name{plural} from {} to {}.",
                            new_desc.name(),
                            quoted(names),
                            quoted(now)
                        ),
                    ));
                }
            }
        }

        let (old_syntax, new_syntax) = (checker.old.syntax(old.file), checker.new.syntax(new.file));
        // proto3 enums are open (unknown values are kept), proto2 enums closed.
        let open = |syntax: &str| syntax == "proto3";
        if open(old_syntax) != open(new_syntax) {
            let (a, b) = if open(old_syntax) { ("open", "closed") } else { ("closed", "open") };
            found.push(("ENUM_SAME_TYPE", enum_pos, format!("Enum \"{}\" changed from {a} to {b}.", new_desc.name())));
        }
        if json_format(old_syntax) == "ALLOW" && json_format(new_syntax) != "ALLOW" {
            found.push((
                "ENUM_SAME_JSON_FORMAT",
                enum_pos,
                format!(
                    "Enum \"{}\" JSON format support changed from ALLOW to {}.",
                    new_desc.name(),
                    json_format(new_syntax)
                ),
            ));
        }

        let ranges = |desc: &EnumDescriptorProto| -> Vec<(i32, i32)> {
            desc.reserved_range.iter().map(|range| (range.start(), range.end())).collect()
        };
        for message in missing_ranges(&ranges(old_desc), &ranges(new_desc), i32::MAX, "enum", new_desc.name()) {
            found.push(("RESERVED_ENUM_NO_DELETE", enum_pos, message));
        }
        for reserved in old_desc.reserved_name.iter().filter(|name| !new_desc.reserved_name.contains(name)) {
            found.push((
                "RESERVED_ENUM_NO_DELETE",
                enum_pos,
                format!("Previously present reserved name \"{reserved}\" on enum \"{}\" was deleted.", new_desc.name()),
            ));
        }
        for (rule, pos, message) in found {
            checker.add(rule, new.file, pos, old.file, message);
        }
    }
}

fn check_services(checker: &mut Checker) {
    let mut names: Vec<String> =
        checker.old.services.keys().filter(|name| checker.new.services.contains_key(*name)).cloned().collect();
    names.sort();
    for name in names {
        let old = checker.old.services[&name].clone();
        let new = checker.new.services[&name].clone();
        let spans = checker.new.spans(new.file);
        let service = new.desc.name();
        let mut found: Vec<(&'static str, Pos, String)> = Vec::new();
        let new_methods: BTreeMap<&str, usize> =
            new.desc.method.iter().enumerate().map(|(i, m)| (m.name(), i)).collect();
        for method in &old.desc.method {
            let Some(&index) = new_methods.get(method.name()) else {
                found.push((
                    "RPC_NO_DELETE",
                    spans.at(&new.path),
                    format!("Previously present RPC \"{}\" on service \"{service}\" was deleted.", method.name()),
                ));
                continue;
            };
            let now = &new.desc.method[index];
            let path = child(&new.path, &[tag::SERVICE_METHOD, index as i32]);
            let rpc = format!("RPC \"{}\" on service \"{service}\"", now.name());
            let trim = |name: &str| name.trim_start_matches('.').to_owned();
            if method.input_type() != now.input_type() {
                found.push((
                    "RPC_SAME_REQUEST_TYPE",
                    spans.at(&child(&path, &[tag::METHOD_INPUT])),
                    format!(
                        "{rpc} changed request type from \"{}\" to \"{}\".",
                        trim(method.input_type()),
                        trim(now.input_type())
                    ),
                ));
            }
            if method.output_type() != now.output_type() {
                found.push((
                    "RPC_SAME_RESPONSE_TYPE",
                    spans.at(&child(&path, &[tag::METHOD_OUTPUT])),
                    format!(
                        "{rpc} changed response type from \"{}\" to \"{}\".",
                        trim(method.output_type()),
                        trim(now.output_type())
                    ),
                ));
            }
            let streaming = |yes: bool| if yes { "streaming" } else { "unary" };
            if method.client_streaming() != now.client_streaming() {
                found.push((
                    "RPC_SAME_CLIENT_STREAMING",
                    spans.at(&path),
                    format!(
                        "{rpc} changed from client {} to client {}.",
                        streaming(method.client_streaming()),
                        streaming(now.client_streaming())
                    ),
                ));
            }
            if method.server_streaming() != now.server_streaming() {
                found.push((
                    "RPC_SAME_SERVER_STREAMING",
                    spans.at(&path),
                    format!(
                        "{rpc} changed from server {} to server {}.",
                        streaming(method.server_streaming()),
                        streaming(now.server_streaming())
                    ),
                ));
            }
            let level = |m: &prost_types::MethodDescriptorProto| {
                m.options.as_ref().map(|o| o.idempotency_level()).unwrap_or_default().as_str_name()
            };
            if level(method) != level(now) {
                found.push((
                    "RPC_SAME_IDEMPOTENCY_LEVEL",
                    spans.at(&child(&path, &[tag::METHOD_OPTIONS, tag::METHOD_OPTION_IDEMPOTENCY])),
                    format!(
                        "{rpc} changed option \"idempotency_level\" from \"{}\" to \"{}\".",
                        level(method),
                        level(now)
                    ),
                ));
            }
        }
        for (rule, pos, message) in found {
            checker.add(rule, new.file, pos, old.file, message);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_quoted_like_go() {
        assert_eq!(quote("Shop\\V1"), r#""Shop\\V1""#);
        assert_eq!(quote("a\"b\n"), r#""a\"b\n""#);
        assert_eq!(quote("é"), "\"é\"");
    }

    #[test]
    fn missing_reserved_ranges_are_listed_like_buf() {
        let found = missing_ranges(&[(20, 20)], &[], 536_870_911, "message", "M");
        assert_eq!(
            found[0],
            "Previously present reserved range \"[20]\" on message \"M\" is missing values: [20] were removed."
        );
        let found = missing_ranges(&[(1, 10)], &[(3, 4), (8, 8)], 536_870_911, "message", "M");
        assert_eq!(
            found[0],
            "Previously present reserved range \"[1,10]\" on message \"M\" is missing values: [1,2], [5,7], [9,10] were removed."
        );
        assert!(missing_ranges(&[(5, 9)], &[(1, 20)], 536_870_911, "message", "M").is_empty());
    }
}
