//! Terminal output: exit statuses, errors with hints, status lines, colours.
//!
//! Data goes to stdout; everything meant for the person (progress, warnings, errors) to stderr.
//! Every styled piece of text also reads right without colour.

use std::fmt::Display;
use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, Ordering};

use anstyle::{AnsiColor, Style};

/// The documented exit statuses (docs/cli.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    /// Everything asked for was done.
    Success = 0,
    /// The work itself failed (a repository, a tool, a check).
    Failure = 1,
    /// The command line or the manifest is wrong; nothing was attempted.
    Usage = 2,
    /// Ctrl-C (SIGINT) stopped the command, as a shell reports it (128 + 2).
    Interrupted = 130,
}

impl From<ExitStatus> for std::process::ExitCode {
    fn from(status: ExitStatus) -> Self {
        std::process::ExitCode::from(status as u8)
    }
}

/// An error that ends the command, with advice.
#[derive(Debug)]
pub struct CliError {
    /// Exit status it maps to.
    pub status: ExitStatus,
    /// What went wrong.
    pub message: String,
    /// What to do about it, one line each.
    pub hints: Vec<String>,
}

impl CliError {
    /// The work failed (exit 1).
    pub fn failure(message: impl Display) -> Self {
        CliError { status: ExitStatus::Failure, message: message.to_string(), hints: Vec::new() }
    }

    /// The input was wrong (exit 2).
    pub fn usage(message: impl Display) -> Self {
        CliError { status: ExitStatus::Usage, message: message.to_string(), hints: Vec::new() }
    }

    /// Ctrl-C stopped the work (exit 130).
    pub fn interrupted(message: impl Display) -> Self {
        CliError { status: ExitStatus::Interrupted, message: message.to_string(), hints: Vec::new() }
    }

    /// Adds a `hint:` line.
    pub fn hint(mut self, hint: impl Display) -> Self {
        self.hints.push(hint.to_string());
        self
    }
}

/// Rows as aligned columns, two spaces apart, the header in bold, each line after `indent`:
/// the one table `plat status`, `plat ps` and `plat migrate status` draw. Widths count
/// characters; the last column is not padded; no line ends in spaces.
pub fn table(header: &[&str], rows: &[Vec<String>], indent: &str) -> String {
    let mut widths: Vec<usize> = header.iter().map(|cell| cell.chars().count()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: &mut dyn Iterator<Item = &str>| {
        let mut text = String::from(indent);
        for (index, (cell, width)) in cells.zip(&widths).enumerate() {
            if index + 1 == widths.len() {
                text.push_str(cell);
            } else {
                text.push_str(&format!("{cell:<width$}  "));
            }
        }
        text.truncate(text.trim_end().len());
        text
    };
    let mut out = format!("{}\n", paint(style::BOLD, line(&mut header.iter().copied())));
    for row in rows {
        out.push_str(&line(&mut row.iter().map(String::as_str)));
        out.push('\n');
    }
    out
}

/// Styles used across the CLI.
pub mod style {
    use super::*;

    pub const ERROR: Style = AnsiColor::Red.on_default().bold();
    pub const WARN: Style = AnsiColor::Yellow.on_default().bold();
    pub const HINT: Style = AnsiColor::Cyan.on_default().bold();
    pub const GOOD: Style = AnsiColor::Green.on_default().bold();
    pub const DIM: Style = Style::new().dimmed();
    pub const BOLD: Style = Style::new().bold();
}

/// Prints `error: message` and the hints on stderr.
pub fn print_error(error: &CliError) {
    let mut stderr = anstream::stderr().lock();
    let _ = writeln!(stderr, "{}error:{} {}", style::ERROR.render(), style::ERROR.render_reset(), error.message);
    for hint in &error.hints {
        let _ = writeln!(stderr, "{}hint:{} {hint}", style::HINT.render(), style::HINT.render_reset());
    }
}

static QUIET: AtomicBool = AtomicBool::new(false);

/// `-q`: from now on, print only errors (and the data a command was asked for).
pub fn set_quiet(quiet: bool) {
    QUIET.store(quiet, Ordering::Relaxed);
}

/// Whether `-q` was given.
pub fn is_quiet() -> bool {
    QUIET.load(Ordering::Relaxed)
}

/// Prints `warning: message` on stderr.
pub fn warn(message: impl Display) {
    if is_quiet() {
        return;
    }
    stderr_line(format_args!("{}warning:{} {message}", style::WARN.render(), style::WARN.render_reset()));
}

/// Prints `hint: message` on stderr.
pub fn hint(message: impl Display) {
    if is_quiet() {
        return;
    }
    stderr_line(format_args!("{}hint:{} {message}", style::HINT.render(), style::HINT.render_reset()));
}

/// Prints a cargo-style status line on stderr: a right-aligned verb, then what it applies to.
pub fn status(verb: &str, style: Style, message: impl Display) {
    if is_quiet() {
        return;
    }
    stderr_line(format_args!("{}{verb:>12}{} {message}", style.render(), style.render_reset()));
}

/// One line to stderr in one write: stderr is unbuffered, so a formatted line would otherwise go
/// out piece by piece, and lines of two tasks (a status and a log line) could interleave.
fn stderr_line(line: std::fmt::Arguments<'_>) {
    let text = format!("{line}\n");
    let _ = match anstream::stderr().current_choice() {
        // anstream's stripping writer writes each run of text between escapes on its own.
        anstream::ColorChoice::Never => {
            std::io::stderr().write_all(anstream::adapter::strip_str(&text).to_string().as_bytes())
        }
        _ => anstream::stderr().write_all(text.as_bytes()),
    };
}

/// Whether stderr is a terminal a person watches (progress bars make sense there).
pub fn stderr_is_terminal() -> bool {
    !is_quiet() && std::io::stderr().is_terminal()
}

/// Writes command output to stdout. A reader that went away (`plat graph | head`) ends the
/// program quietly, as with any Unix filter.
pub fn write_stdout(text: &str) -> Result<(), CliError> {
    let mut stdout = anstream::stdout().lock();
    match stdout.write_all(text.as_bytes()).and_then(|()| stdout.flush()) {
        Ok(()) => Ok(()),
        Err(error) if error.kind() == std::io::ErrorKind::BrokenPipe => std::process::exit(0),
        Err(error) => Err(CliError::failure(format!("cannot write to stdout: {error}"))),
    }
}

/// Wraps text in a style (for building lines piece by piece).
pub fn paint(style: Style, text: impl Display) -> String {
    format!("{}{text}{}", style.render(), style.render_reset())
}

/// A duration as people read it in a status line: `2.6s`.
pub fn seconds(duration: std::time::Duration) -> String {
    format!("{:.1}s", duration.as_secs_f64())
}
