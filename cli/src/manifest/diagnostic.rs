//! Manifest problems as data: a message, the span of the file it points at, notes and help.
//!
//! The engine only describes; the CLI draws the snippet with the offending line.

use std::fmt;
use std::ops::Range;
use std::path::PathBuf;

use crate::text::line_col;

/// One problem in a manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// What is wrong, lowercase, naming the key or value.
    pub message: String,
    /// Byte range of the offending text; `None` when the problem has no single place (a missing table).
    pub span: Option<Range<usize>>,
    /// Short text drawn under the span.
    pub label: Option<String>,
    /// Other places that explain the problem (the first of two duplicates, the rest of a cycle).
    pub notes: Vec<Note>,
    /// What to do about it.
    pub help: Option<String>,
}

/// A secondary place in the file, with what it shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    /// Byte range in the file.
    pub span: Range<usize>,
    /// What that place is.
    pub label: String,
}

impl Diagnostic {
    /// A problem at `span`.
    pub fn new(message: impl Into<String>, span: Option<Range<usize>>) -> Self {
        Diagnostic { message: message.into(), span, label: None, notes: Vec::new(), help: None }
    }

    /// Adds the text drawn under the span.
    pub fn label(mut self, label: impl Into<String>) -> Self {
        self.label = Some(label.into());
        self
    }

    /// Adds a secondary place.
    pub fn note(mut self, span: Range<usize>, label: impl Into<String>) -> Self {
        self.notes.push(Note { span, label: label.into() });
        self
    }

    /// Adds advice.
    pub fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    /// Adds `help` unless a suggestion already took its place.
    pub fn or_help(self, help: impl Into<String>) -> Self {
        if self.help.is_some() { self } else { self.help(help) }
    }

    /// Adds "did you mean" advice when one of `candidates` is close to `wrong`.
    pub fn suggest(self, wrong: &str, candidates: &[&str]) -> Self {
        match closest(wrong, candidates) {
            Some(right) => self.help(format!("did you mean `{right}`?")),
            None => self,
        }
    }
}

/// Every problem found in one manifest file, with the text they point into.
#[derive(Debug, Clone)]
pub struct ManifestError {
    /// The manifest file.
    pub path: PathBuf,
    /// Its text, for drawing snippets.
    pub source: String,
    /// The problems, in the order of the file where they have a place.
    pub diagnostics: Vec<Diagnostic>,
}

impl ManifestError {
    /// 1-based line and column of a byte offset.
    pub fn line_col(&self, offset: usize) -> (usize, usize) {
        line_col(&self.source, offset)
    }
}

impl fmt::Display for ManifestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let count = self.diagnostics.len();
        write!(f, "{} has {count} error{}", self.path.display(), if count == 1 { "" } else { "s" })?;
        for diagnostic in &self.diagnostics {
            match &diagnostic.span {
                Some(span) => {
                    let (line, column) = self.line_col(span.start);
                    write!(f, "\n{}:{line}:{column}: {}", self.path.display(), diagnostic.message)?;
                }
                None => write!(f, "\n{}: {}", self.path.display(), diagnostic.message)?,
            }
        }
        Ok(())
    }
}

impl std::error::Error for ManifestError {}

/// The candidate closest to `wrong`, if it is close enough to be what was meant.
pub fn closest<'a>(wrong: &str, candidates: &[&'a str]) -> Option<&'a str> {
    candidates
        .iter()
        .map(|candidate| (strsim::jaro_winkler(wrong, candidate), *candidate))
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, candidate)| candidate)
}

/// The names serde lists after "expected" in an unknown field or variant error.
///
/// serde has written these messages the same way since 1.0: "unknown field `x`, expected one of
/// `a`, `b`", "expected `a` or `b`", "expected `a`".
pub fn expected_names(message: &str) -> Vec<&str> {
    let Some((_, expected)) = message.split_once("expected") else {
        return Vec::new();
    };
    expected.split('`').skip(1).step_by(2).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn closest_finds_typos_and_ignores_strangers() {
        let keys = ["repo", "rev", "ports", "publish", "depends_on"];
        assert_eq!(closest("prots", &keys), Some("ports"));
        assert_eq!(closest("depends-on", &keys), Some("depends_on"));
        assert_eq!(closest("zzz", &keys), None);
    }

    #[test]
    fn expected_names_reads_every_serde_form() {
        assert_eq!(expected_names("unknown field `prots`, expected one of `repo`, `ports`"), ["repo", "ports"]);
        assert_eq!(expected_names("unknown field `x`, expected `grpc` or `http`"), ["grpc", "http"]);
        assert_eq!(expected_names("unknown variant `helthy`, expected `healthy`"), ["healthy"]);
        assert!(expected_names("invalid type: integer `3`, expected a string").is_empty());
    }
}
