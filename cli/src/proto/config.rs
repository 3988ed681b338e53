//! buf.yaml's `lint` and `breaking` settings, read for plat's built-in engine.
//!
//! buf itself reads buf.yaml when it runs; plat reads the same file so that its own engine
//! checks the same rules with the same exceptions. Versions v1 and v2 are understood; in v2 the
//! settings of the module at `.` win over the top-level ones, as in buf.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::ProtoError;

/// The file, in the proto directory.
pub const BUF_YAML: &str = "buf.yaml";

/// The parts of buf.yaml plat uses.
#[derive(Debug, Clone, Default)]
pub struct BufConfig {
    /// `lint:`.
    pub lint: LintConfig,
    /// `breaking:`.
    pub breaking: BreakingConfig,
}

/// `lint:` in buf.yaml.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct LintConfig {
    /// Rules and categories to check (STANDARD when empty, as in buf).
    #[serde(rename = "use")]
    pub use_: Vec<String>,
    /// Rules and categories not to check.
    pub except: Vec<String>,
    /// Files and directories not to check at all.
    pub ignore: Vec<String>,
    /// Files and directories not to check for one rule or category.
    pub ignore_only: BTreeMap<String, Vec<String>>,
    /// ENUM_ZERO_VALUE_SUFFIX's suffix.
    pub enum_zero_value_suffix: String,
    /// Lets RPC_REQUEST_RESPONSE_UNIQUE accept one message as both request and response.
    pub rpc_allow_same_request_response: bool,
    /// Lets `google.protobuf.Empty` be the request of many RPCs.
    pub rpc_allow_google_protobuf_empty_requests: bool,
    /// Lets `google.protobuf.Empty` be the response of many RPCs.
    pub rpc_allow_google_protobuf_empty_responses: bool,
    /// SERVICE_SUFFIX's suffix.
    pub service_suffix: String,
    /// v2: turns `// buf:lint:ignore RULE` comments off.
    pub disallow_comment_ignores: bool,
    /// v1: turns `// buf:lint:ignore RULE` comments on (off by default in v1).
    pub allow_comment_ignores: bool,
    /// The buf.yaml version, which decides the default for comment ignores.
    #[serde(skip)]
    pub version: String,
}

impl LintConfig {
    /// Whether `// buf:lint:ignore RULE` comments silence findings: on in v2 unless disallowed,
    /// off in v1 unless allowed.
    pub fn comment_ignores(&self) -> bool {
        if self.version == "v2" { !self.disallow_comment_ignores } else { self.allow_comment_ignores }
    }
}

impl Default for LintConfig {
    fn default() -> Self {
        LintConfig {
            use_: Vec::new(),
            except: Vec::new(),
            ignore: Vec::new(),
            ignore_only: BTreeMap::new(),
            enum_zero_value_suffix: "_UNSPECIFIED".to_owned(),
            rpc_allow_same_request_response: false,
            rpc_allow_google_protobuf_empty_requests: false,
            rpc_allow_google_protobuf_empty_responses: false,
            service_suffix: "Service".to_owned(),
            disallow_comment_ignores: false,
            allow_comment_ignores: false,
            version: "v2".to_owned(),
        }
    }
}

/// `breaking:` in buf.yaml.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct BreakingConfig {
    /// Rules and categories to check (FILE when empty, as in buf).
    #[serde(rename = "use")]
    pub use_: Vec<String>,
    /// Rules and categories not to check.
    pub except: Vec<String>,
    /// Files and directories not to check at all.
    pub ignore: Vec<String>,
    /// Files and directories not to check for one rule or category.
    pub ignore_only: BTreeMap<String, Vec<String>>,
    /// Skip packages whose version is alpha, beta or test (built-in engine: not supported).
    pub ignore_unstable_packages: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawFile {
    version: Option<String>,
    lint: Option<LintConfig>,
    breaking: Option<BreakingConfig>,
    modules: Vec<RawModule>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawModule {
    path: Option<String>,
    lint: Option<LintConfig>,
    breaking: Option<BreakingConfig>,
}

/// Reads `<proto_dir>/buf.yaml`; no file means buf's defaults.
pub fn read(proto_dir: &Path) -> Result<BufConfig, ProtoError> {
    let path = proto_dir.join(BUF_YAML);
    let text = match fs_err::read_to_string(&path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(BufConfig::default()),
        Err(error) => return Err(error.into()),
    };
    parse(&text, &path)
}

/// Parses the text of a buf.yaml (`path` is for messages).
pub fn parse(text: &str, path: &Path) -> Result<BufConfig, ProtoError> {
    let config_error = |message: String| ProtoError::Config { path: path.to_path_buf(), message };
    let raw: RawFile = if text.trim().is_empty() {
        RawFile::default()
    } else {
        serde_yaml_ng::from_str(text).map_err(|error| config_error(error.to_string()))?
    };
    match raw.version.as_deref() {
        None | Some("v1beta1" | "v1" | "v2") => {}
        Some(other) => return Err(config_error(format!("unknown version `{other}` (plat knows v1 and v2)"))),
    }
    let module = raw.modules.into_iter().find(|module| matches!(module.path.as_deref(), None | Some("." | "")));
    let (module_lint, module_breaking) = module.map(|module| (module.lint, module.breaking)).unwrap_or_default();
    let mut lint = module_lint.or(raw.lint).unwrap_or_default();
    lint.version = raw.version.unwrap_or_else(|| "v1beta1".to_owned());
    Ok(BufConfig { lint, breaking: module_breaking.or(raw.breaking).unwrap_or_default() })
}

/// One rule a check knows: its ID, the categories it belongs to, and whether plat implements it.
#[derive(Debug, Clone, Copy)]
pub struct RuleInfo {
    /// buf's rule ID.
    pub id: &'static str,
    /// buf's categories for it (`buf config ls-*-rules --version v2`).
    pub categories: &'static [&'static str],
    /// Whether plat's built-in engine checks it.
    pub builtin: bool,
}

/// The rules `use` minus `except` select, from `catalogue`; `default` when `use` is empty.
///
/// Every name must be a rule ID or a category of the catalogue, as buf requires.
pub fn select(
    catalogue: &[RuleInfo],
    use_: &[String],
    except: &[String],
    default: &str,
    path: &Path,
) -> Result<BTreeSet<&'static str>, ProtoError> {
    let expand = |name: &str| -> Result<Vec<&'static str>, ProtoError> {
        let rules: Vec<&'static str> = catalogue
            .iter()
            .filter(|rule| rule.id == name || rule.categories.contains(&name))
            .map(|rule| rule.id)
            .collect();
        if rules.is_empty() {
            return Err(ProtoError::Config {
                path: path.to_path_buf(),
                message: format!("`{name}` is not a rule or category plat knows"),
            });
        }
        Ok(rules)
    };
    let mut selected = BTreeSet::new();
    let default = [default.to_owned()];
    for name in if use_.is_empty() { &default[..] } else { use_ } {
        selected.extend(expand(name)?);
    }
    for name in except {
        for rule in expand(name)? {
            selected.remove(rule);
        }
    }
    Ok(selected)
}

/// Checks that every rule and category buf.yaml names, in `lint` and in `breaking`, is one
/// buf knows: buf refuses the whole file otherwise, whichever command runs.
pub fn validate(
    config: &BufConfig,
    lint_rules: &[RuleInfo],
    breaking_rules: &[RuleInfo],
    path: &Path,
) -> Result<(), ProtoError> {
    select(lint_rules, &config.lint.use_, &config.lint.except, "STANDARD", path)?;
    select(breaking_rules, &config.breaking.use_, &config.breaking.except, "FILE", path)?;
    Ok(())
}

/// Whether `file` is `ignored` or inside a directory that is (paths relative to the proto dir).
pub fn is_ignored(file: &str, ignored: &[String]) -> bool {
    ignored.iter().any(|ignore| {
        let ignore = ignore.trim_end_matches('/').trim_start_matches("./");
        ignore.is_empty() || ignore == "." || file == ignore || file.starts_with(&format!("{ignore}/"))
    })
}

/// Whether a finding of `rule` in `files` is silenced by `ignore` or `ignore_only`.
pub fn silenced(
    catalogue: &[RuleInfo],
    rule: &str,
    files: &[&str],
    ignore: &[String],
    ignore_only: &BTreeMap<String, Vec<String>>,
) -> bool {
    let categories = catalogue.iter().find(|info| info.id == rule).map(|info| info.categories).unwrap_or_default();
    files.iter().filter(|file| !file.is_empty()).any(|file| {
        is_ignored(file, ignore)
            || ignore_only
                .iter()
                .any(|(name, paths)| (name == rule || categories.contains(&name.as_str())) && is_ignored(file, paths))
    })
}

/// buf.yaml's path in `proto_dir`, for messages.
pub fn path_in(proto_dir: &Path) -> PathBuf {
    proto_dir.join(BUF_YAML)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn module_settings_win_over_top_level_ones() {
        let text = "version: v2\nmodules:\n  - path: .\n    lint:\n      except: [SERVICE_SUFFIX]\nlint:\n  use: [BASIC]\nbreaking:\n  use: [WIRE]\n  ignore: [a/b.proto]\n";
        let config = parse(text, Path::new("buf.yaml")).unwrap();
        assert_eq!(config.lint.except, ["SERVICE_SUFFIX"]);
        assert!(config.lint.use_.is_empty());
        assert_eq!(config.breaking.use_, ["WIRE"]);
        assert_eq!(config.lint.service_suffix, "Service");
    }

    #[test]
    fn unknown_rules_and_versions_are_errors() {
        let catalogue = [RuleInfo { id: "A", categories: &["X"], builtin: true }];
        let error = select(&catalogue, &["B".to_owned()], &[], "X", Path::new("proto/buf.yaml")).unwrap_err();
        assert_eq!(error.to_string(), "proto/buf.yaml: `B` is not a rule or category plat knows");
        assert!(parse("version: v3\n", Path::new("buf.yaml")).is_err());
    }

    #[test]
    fn ignore_matches_files_and_directories() {
        let ignore = ["a/v1".to_owned(), "b/x.proto".to_owned()];
        assert!(is_ignored("a/v1/a.proto", &ignore));
        assert!(is_ignored("b/x.proto", &ignore));
        assert!(!is_ignored("a/v10/a.proto", &ignore));
        assert!(!is_ignored("b/x.protox", &ignore));
    }
}
