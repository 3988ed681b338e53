//! Typed configuration from environment variables, reporting every problem at once.
//!
//! A service reads all its variables through one [`Env`], then calls [`Env::finish`]: a
//! container that lacks three variables fails once with all three named, each with what was
//! wrong and an example, instead of failing three deploys in a row.
//!
//! ```
//! use std::time::Duration;
//! use pkg::config::Env;
//!
//! # fn main() -> Result<(), pkg::config::ConfigError> {
//! let mut env = Env::from_pairs([("DATABASE_URL", "postgres://db/users")]);
//! let database_url = env.var("DATABASE_URL").example("postgres://user:secret@db:5432/users").secret().required::<String>();
//! let timeout = env.with_default("UPSTREAM_TIMEOUT", Duration::from_millis(500));
//! let port = env.optional::<u16>("METRICS_PORT");
//! env.finish()?; // every missing or malformed variable, named
//! // After a successful finish every read above is Ok.
//! let (database_url, timeout, port) = (database_url?, timeout?, port?);
//! # assert_eq!(timeout, Duration::from_millis(500)); assert_eq!(port, None); let _ = database_url;
//! # Ok(()) }
//! ```
//!
//! An empty value counts as unset: `FOO=` in a compose file or a manifest usually means "not
//! configured", and treating it as the empty string would turn a missing address into a
//! confusing parse error later.

use std::collections::HashMap;
use std::ffi::OsString;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

/// A type that can be read from an environment variable.
pub trait FromEnv: Sized {
    /// What a valid value is, as a noun phrase for messages: "a duration", "a port number".
    const EXPECTED: &'static str;
    /// A valid value, shown in messages unless the variable names its own example.
    const EXAMPLE: &'static str;
    /// Parses the raw value; the error explains what is wrong with it, or is empty when
    /// [`EXPECTED`](FromEnv::EXPECTED) says all there is to say.
    fn from_env(raw: &str) -> Result<Self, String>;
}

/// The environment variables a service reads, and the problems found so far.
#[must_use = "call Env::finish to learn about missing or malformed variables"]
pub struct Env {
    vars: HashMap<String, OsString>,
    problems: Vec<Problem>,
}

impl fmt::Debug for Env {
    // Values are left out: they include secrets.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Env").field("vars", &self.vars.len()).field("problems", &self.problems).finish()
    }
}

impl Env {
    /// A snapshot of this process's environment.
    pub fn from_process() -> Self {
        let vars = std::env::vars_os().filter_map(|(k, v)| Some((k.into_string().ok()?, v))).collect();
        Env { vars, problems: Vec::new() }
    }

    /// An environment made of the given pairs, for tests and tools.
    pub fn from_pairs<K: Into<String>, V: Into<OsString>>(pairs: impl IntoIterator<Item = (K, V)>) -> Self {
        let vars = pairs.into_iter().map(|(k, v)| (k.into(), v.into())).collect();
        Env { vars, problems: Vec::new() }
    }

    /// A variable to read, with an optional example and secrecy; see [`Var`].
    pub fn var(&mut self, name: &str) -> Var<'_> {
        Var { env: self, name: name.to_owned(), example: None, secret: false }
    }

    /// Reads a variable that must be set.
    pub fn required<T: FromEnv>(&mut self, name: &str) -> Result<T, ConfigError> {
        self.var(name).required()
    }

    /// Reads a variable that may be unset; a set but malformed value is still a problem.
    pub fn optional<T: FromEnv>(&mut self, name: &str) -> Result<Option<T>, ConfigError> {
        self.var(name).optional()
    }

    /// Reads a variable, using `default` when it is unset.
    pub fn with_default<T: FromEnv>(&mut self, name: &str, default: T) -> Result<T, ConfigError> {
        self.var(name).with_default(default)
    }

    /// Every problem found by the reads so far, in the order they were read.
    pub fn problems(&self) -> &[Problem] {
        &self.problems
    }

    /// Ends reading: `Ok` when every read succeeded, otherwise one error naming each problem.
    pub fn finish(self) -> Result<(), ConfigError> {
        if self.problems.is_empty() { Ok(()) } else { Err(ConfigError { problems: self.problems }) }
    }

    fn record(&mut self, problem: Problem) -> ConfigError {
        self.problems.push(problem.clone());
        ConfigError { problems: vec![problem] }
    }
}

/// One variable about to be read; made by [`Env::var`].
#[must_use = "a Var is read by required, optional or with_default"]
pub struct Var<'e> {
    env: &'e mut Env,
    name: String,
    example: Option<String>,
    secret: bool,
}

impl Var<'_> {
    /// The example shown when the variable is missing or malformed, instead of the type's.
    pub fn example(mut self, example: impl Into<String>) -> Self {
        self.example = Some(example.into());
        self
    }

    /// Keeps the value out of error messages (passwords, tokens, URLs with credentials).
    pub fn secret(mut self) -> Self {
        self.secret = true;
        self
    }

    /// Reads the variable; unset or empty is a problem.
    pub fn required<T: FromEnv>(mut self) -> Result<T, ConfigError> {
        match self.read::<T>() {
            Ok(Some(value)) => Ok(value),
            Ok(None) => {
                let problem = self.problem::<T>(ProblemKind::Missing);
                Err(self.env.record(problem))
            }
            Err(error) => Err(error),
        }
    }

    /// Reads the variable; unset or empty gives `None`.
    pub fn optional<T: FromEnv>(mut self) -> Result<Option<T>, ConfigError> {
        self.read::<T>()
    }

    /// Reads the variable; unset or empty gives `default`.
    pub fn with_default<T: FromEnv>(mut self, default: T) -> Result<T, ConfigError> {
        self.read::<T>().map(|value| value.unwrap_or(default))
    }

    fn read<T: FromEnv>(&mut self) -> Result<Option<T>, ConfigError> {
        let kind = match self.env.vars.get(&self.name) {
            None => return Ok(None),
            Some(raw) => match raw.to_str() {
                None => ProblemKind::NotUnicode,
                Some(raw) if raw.trim().is_empty() => return Ok(None),
                Some(raw) => match T::from_env(raw.trim()) {
                    Ok(value) => return Ok(Some(value)),
                    // A parser's reason may quote the value: a secret's is dropped with it.
                    Err(reason) => ProblemKind::Malformed {
                        value: (!self.secret).then(|| raw.to_owned()),
                        expected: T::EXPECTED,
                        reason: if self.secret { String::new() } else { reason },
                    },
                },
            },
        };
        let problem = self.problem::<T>(kind);
        Err(self.env.record(problem))
    }

    fn problem<T: FromEnv>(&self, kind: ProblemKind) -> Problem {
        Problem {
            name: self.name.clone(),
            kind,
            example: self.example.clone().unwrap_or_else(|| T::EXAMPLE.to_owned()),
        }
    }
}

/// One missing or malformed variable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// The variable's name.
    pub name: String,
    /// What is wrong with it.
    pub kind: ProblemKind,
    /// A valid value to show the operator.
    pub example: String,
}

/// What is wrong with a variable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProblemKind {
    /// Unset, or set to the empty string, but required.
    Missing,
    /// Set to bytes that are not UTF-8.
    NotUnicode,
    /// Set to a value that does not parse.
    Malformed {
        /// The value as set; `None` for secret variables.
        value: Option<String>,
        /// What a valid value is, like "a duration".
        expected: &'static str,
        /// Why the value does not parse; may be empty.
        reason: String,
    },
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = &self.name;
        match &self.kind {
            ProblemKind::Missing => write!(f, "{name} is not set")?,
            ProblemKind::NotUnicode => write!(f, "{name} is not valid UTF-8")?,
            ProblemKind::Malformed { value, expected, reason } => {
                match value {
                    Some(value) => write!(f, "{name}={value:?} is not {expected}")?,
                    None => write!(f, "{name} (secret, value not shown) is not {expected}")?,
                }
                if !reason.is_empty() {
                    write!(f, ": {reason}")?;
                }
            }
        }
        write!(f, " (example: {name}={})", self.example)
    }
}

/// Every problem found while reading the environment.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct ConfigError {
    problems: Vec<Problem>,
}

impl ConfigError {
    /// The problems, in the order the variables were read.
    pub fn problems(&self) -> &[Problem] {
        &self.problems
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.problems.as_slice() {
            [one] => write!(f, "invalid configuration: {one}"),
            many => {
                write!(f, "invalid configuration: {} environment variables are missing or malformed", many.len())?;
                for problem in many {
                    write!(f, "\n  {problem}")?;
                }
                Ok(())
            }
        }
    }
}

/// Reads one required variable from the process environment: for a single value outside an
/// [`Env`]. Prefer an [`Env`] for a service's whole configuration, so problems come together.
pub fn required<T: FromEnv>(name: &str) -> Result<T, ConfigError> {
    Env::from_process().required(name)
}

/// Reads one optional variable from the process environment; see [`required`].
pub fn optional<T: FromEnv>(name: &str) -> Result<Option<T>, ConfigError> {
    Env::from_process().optional(name)
}

/// Reads one variable from the process environment with a default; see [`required`].
pub fn with_default<T: FromEnv>(name: &str, default: T) -> Result<T, ConfigError> {
    Env::from_process().with_default(name, default)
}

impl FromEnv for String {
    const EXPECTED: &'static str = "text";
    const EXAMPLE: &'static str = "some-value";
    fn from_env(raw: &str) -> Result<Self, String> {
        Ok(raw.to_owned())
    }
}

impl FromEnv for bool {
    const EXPECTED: &'static str = "a boolean";
    const EXAMPLE: &'static str = "true";
    fn from_env(raw: &str) -> Result<Self, String> {
        match raw.to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => Ok(true),
            "false" | "0" | "no" | "off" => Ok(false),
            _ => Err("use true or false".to_owned()),
        }
    }
}

macro_rules! from_env_via_from_str {
    ($($ty:ty => $expected:literal, $example:literal;)*) => {$(
        impl FromEnv for $ty {
            const EXPECTED: &'static str = $expected;
            const EXAMPLE: &'static str = $example;
            fn from_env(raw: &str) -> Result<Self, String> {
                <$ty>::from_str(raw).map_err(|e| e.to_string())
            }
        }
    )*};
}

from_env_via_from_str! {
    u8 => "a whole number from 0 to 255", "8";
    u16 => "a whole number from 0 to 65535", "8080";
    u32 => "a non-negative whole number", "100";
    u64 => "a non-negative whole number", "100";
    usize => "a non-negative whole number", "100";
    i32 => "a whole number", "-1";
    i64 => "a whole number", "-1";
    f64 => "a number", "0.5";
    SocketAddr => "a socket address (IP:port)", "0.0.0.0:50051";
    IpAddr => "an IP address", "0.0.0.0";
    http::Uri => "a URI", "http://user-service:50051";
}

impl FromEnv for PathBuf {
    const EXPECTED: &'static str = "a path";
    const EXAMPLE: &'static str = "/var/lib/service";
    fn from_env(raw: &str) -> Result<Self, String> {
        Ok(PathBuf::from(raw))
    }
}

impl FromEnv for Duration {
    const EXPECTED: &'static str = "a duration";
    const EXAMPLE: &'static str = "500ms";
    fn from_env(raw: &str) -> Result<Self, String> {
        parse_duration(raw)
    }
}

/// Parses durations like `500ms`, `2s`, `1.5s`, `1m30s`, `1h`: numbers each followed by one of
/// the units `us`, `ms`, `s`, `m`, `h`. A bare number is refused: `500` could mean either
/// milliseconds or seconds, and guessing wrong is a thousandfold mistake.
pub fn parse_duration(raw: &str) -> Result<Duration, String> {
    let mut rest = raw.trim();
    if rest.is_empty() {
        return Err("empty".to_owned());
    }
    let mut total = Duration::ZERO;
    while !rest.is_empty() {
        let number_len = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
        if number_len == 0 {
            return Err(format!("expected a number at {rest:?}"));
        }
        let (number, after) = rest.split_at(number_len);
        let number: f64 = number.parse().map_err(|_| format!("{number:?} is not a number"))?;
        let unit_len = after.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(after.len());
        let (unit, after) = after.split_at(unit_len);
        let seconds_per_unit = match unit {
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            "" => return Err("missing unit: add us, ms, s, m or h".to_owned()),
            other => return Err(format!("unknown unit {other:?}: use us, ms, s, m or h")),
        };
        let part = Duration::try_from_secs_f64(number * seconds_per_unit).map_err(|_| "too large".to_owned())?;
        total = total.checked_add(part).ok_or_else(|| "too large".to_owned())?;
        rest = after;
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_units_only() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("250us"), Ok(Duration::from_micros(250)));
        assert!(parse_duration("500").unwrap_err().contains("missing unit"));
        assert!(parse_duration("5 sec").is_err());
        assert!(parse_duration("5d").unwrap_err().contains("unknown unit"));
        assert!(parse_duration("ms").is_err());
        assert!(parse_duration("").is_err());
    }

    #[test]
    fn booleans_accept_common_spellings() {
        for yes in ["true", "TRUE", "1", "yes", "on"] {
            assert_eq!(bool::from_env(yes), Ok(true));
        }
        for no in ["false", "0", "no", "Off"] {
            assert_eq!(bool::from_env(no), Ok(false));
        }
        assert!(bool::from_env("maybe").is_err());
    }
}
