//! A service's migration files: found, named, paired, checksummed, and new ones created.
//!
//! Three naming formats are read, so teams keep the files they have:
//! `<version>_<name>.sql` (sqlx, goose, dbmate), `<version>_<name>.up.sql` with an optional
//! `.down.sql` (sqlx reversible, golang-migrate), and `V<version>__<name>.sql` with an optional
//! `U<version>__<name>.sql` (Flyway, refinery). Inside a file, goose's and dbmate's up and down
//! sections are followed ([`sections`](super::sections)). What plat cannot follow (Flyway's
//! dotted versions and repeatables, refinery's Rust migrations, an unknown annotation) is refused
//! before anything runs, every such file at once.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use sha2::{Digest, Sha256};

use super::sections::{self, Dialect, Section};

/// How a migration file is named.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    /// `<version>_<name>.sql`.
    Plain,
    /// `<version>_<name>.up.sql`, and `<version>_<name>.down.sql` to undo it.
    UpDown,
    /// `V<version>__<name>.sql`, and `U<version>__<name>.sql` to undo it.
    Flyway,
}

/// The SHA-256 of a migration's text, after CRLF line endings became LF and a leading byte
/// order mark was dropped.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Checksum(pub [u8; 32]);

impl Checksum {
    /// The checksum of `text` as [`normalize`] leaves it.
    pub fn of(text: &str) -> Checksum {
        Checksum(Sha256::digest(normalize(text).as_bytes()).into())
    }

    /// Lowercase hex, as stored in the history table.
    pub fn to_hex(&self) -> String {
        crate::text::hex(&self.0)
    }
}

impl fmt::Display for Checksum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for Checksum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Checksum({})", self.to_hex())
    }
}

/// The text as plat checksums and runs it: CRLF turned into LF, so that a checkout with
/// `core.autocrlf` on Windows and one on Linux record the same migration.
pub fn normalize(text: &str) -> std::borrow::Cow<'_, str> {
    if text.contains("\r\n") { text.replace("\r\n", "\n").into() } else { text.into() }
}

/// One migration: its version, name, SQL, and the file that undoes it, if any.
#[derive(Debug, Clone)]
pub struct Migration {
    /// Version: the integer the file name starts with; migrations run in its order.
    pub version: i64,
    /// The name part of the file name, e.g. `create_users`.
    pub name: String,
    /// How the file is named.
    pub format: Format,
    /// The file that applies it.
    pub path: PathBuf,
    /// The SQL that applies it, with CRLF made LF: the whole file, or its up section (the
    /// other lines blanked, so that positions stay the file's).
    pub sql: String,
    /// SHA-256 of the whole file, as normalised.
    pub checksum: Checksum,
    /// It runs outside a transaction: `-- plat:no-transaction` (or sqlx's `-- no-transaction`)
    /// on the first line, goose's `NO TRANSACTION`, dbmate's `transaction:false`.
    pub no_transaction: bool,
    /// Whose annotations the file carries, if any.
    pub dialect: Option<Dialect>,
    /// The file that undoes it: a `.down.sql` or `U` file, or this file when its down section
    /// (goose, dbmate) has SQL in it.
    pub down: Option<PathBuf>,
    /// The down section of this file, for goose and dbmate files.
    pub down_section: Option<Section>,
}

impl Migration {
    /// The file name alone, for messages.
    pub fn file_name(&self) -> String {
        file_name(&self.path)
    }
}

/// A service's migrations, sorted by version.
#[derive(Debug, Clone)]
pub struct Migrations {
    /// The directory they were read from.
    pub dir: PathBuf,
    /// Sorted by version; versions are unique.
    pub list: Vec<Migration>,
}

impl Migrations {
    /// The migration with this version.
    pub fn get(&self, version: i64) -> Option<&Migration> {
        self.list.binary_search_by_key(&version, |migration| migration.version).ok().map(|index| &self.list[index])
    }
}

/// Why a service's migration files cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum FilesError {
    /// The service directory itself is missing (not cloned yet).
    #[error("service directory `{}` does not exist", .0.display())]
    NoServiceDir(PathBuf),
    /// Reading the directory or a file failed (the message names the path).
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// A `.sql` file whose name is none of the known formats.
    #[error("`{}` is not a migration file name: {reason}", .path.display())]
    BadName {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// Two files claim the same version.
    #[error("version {version} is used by two files: `{}` and `{}`", .first.display(), .second.display())]
    DuplicateVersion {
        /// The version.
        version: i64,
        /// One file.
        first: PathBuf,
        /// The other.
        second: PathBuf,
    },
    /// A `.down.sql` file with no `.up.sql` of the same version and name, or a Flyway undo file
    /// with no versioned file of its version.
    #[error("`{}` has no migration to undo: no up file of the same version{}", .0.display(), if .0.to_string_lossy().ends_with(".down.sql") { " and name" } else { "" })]
    DownWithoutUp(PathBuf),
    /// Another tool's annotations in a file that plat cannot follow.
    #[error("`{}`:{line}: {reason}", .path.display())]
    Annotations {
        /// The file.
        path: PathBuf,
        /// The line of the annotation.
        line: usize,
        /// What plat cannot follow.
        reason: String,
    },
    /// Several of the above, in file order: every file that stops the run, found in one read.
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
    Several(Vec<FilesError>),
    /// The file is not UTF-8 text.
    #[error("`{}` is not UTF-8 text", .0.display())]
    NotUtf8(PathBuf),
    /// `plat migrate new` with a name that has nothing usable in it.
    #[error("invalid migration name `{0}`: use letters, digits and `_`")]
    BadNewName(String),
    /// A file cannot run the way it is asked to (checked before anything runs).
    #[error("`{}`{}: {reason}", .path.display(), .line.map(|line| format!(":{line}")).unwrap_or_default())]
    Unrunnable {
        /// The file.
        path: PathBuf,
        /// The line of the offending statement.
        line: Option<usize>,
        /// What is wrong.
        reason: String,
    },
}

/// A file name taken apart.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Parsed {
    version: i64,
    /// The version as written, zeros included, for `new` to imitate.
    version_text: String,
    name: String,
    format: Format,
    down: bool,
}

/// Takes a migration file name apart; `Ok(None)` for files that are not SQL (a README, say).
fn parse_name(file: &str) -> Result<Option<Parsed>, String> {
    if let Some(stem) = file.strip_suffix(".rs") {
        // refinery's Rust migrations sit beside its SQL ones: skipping one would lose it.
        return match flyway_prefix(stem) {
            Some(_) => Err(
                "a Rust migration (refinery): plat runs SQL files only; write it as SQL in `V<version>__<name>.sql`"
                    .to_owned(),
            ),
            None => Ok(None),
        };
    }
    let Some(stem) = file.strip_suffix(".sql") else { return Ok(None) };
    if stem.starts_with("R__") {
        return Err("a Flyway repeatable migration: plat applies each migration once and has no repeatables; put its \
                    SQL in a versioned migration, and each later change in a new one"
            .to_owned());
    }
    if let Some((undo, rest)) = flyway_prefix(stem) {
        let (version, name) = rest.split_once("__").ok_or_else(|| {
            "a Flyway name needs `__` between version and name, as in `V1__create_users.sql`".to_owned()
        })?;
        if version.contains(['.', '_']) {
            return Err(format!(
                "Flyway's dotted version `{version}`: plat's versions are integers; renumber the files with \
                 integers in the same order (`V1__`, `V1.1__`, `V2__` as `V10__`, `V11__`, `V20__`)"
            ));
        }
        return parsed(version, name, Format::Flyway, undo).map(Some);
    }
    let (stem, format, down) = if let Some(stem) = stem.strip_suffix(".up") {
        (stem, Format::UpDown, false)
    } else if let Some(stem) = stem.strip_suffix(".down") {
        (stem, Format::UpDown, true)
    } else {
        (stem, Format::Plain, false)
    };
    let (version, name) = stem.split_once('_').ok_or_else(|| expected_names().to_owned())?;
    parsed(version, name, format, down).map(Some)
}

/// `V1__x` → `(false, "1__x")`, `U1__x` → `(true, "1__x")`: Flyway's versioned and undo prefixes,
/// followed by a digit.
fn flyway_prefix(stem: &str) -> Option<(bool, &str)> {
    let undo = match stem.as_bytes().first()? {
        b'V' => false,
        b'U' => true,
        _ => return None,
    };
    let rest = &stem[1..];
    rest.starts_with(|c: char| c.is_ascii_digit()).then_some((undo, rest))
}

fn parsed(version_text: &str, name: &str, format: Format, down: bool) -> Result<Parsed, String> {
    if version_text.is_empty() || !version_text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(expected_names().to_owned());
    }
    let version: i64 =
        version_text.parse().map_err(|_| format!("version `{version_text}` does not fit in a 64-bit integer"))?;
    if name.is_empty() {
        return Err("the name after the version is empty".to_owned());
    }
    Ok(Parsed { version, version_text: version_text.to_owned(), name: name.to_owned(), format, down })
}

fn expected_names() -> &'static str {
    "expected `<version>_<name>.sql`, `<version>_<name>.up.sql` / `.down.sql`, or `V<version>__<name>.sql` / \
     `U<version>__<name>.sql`"
}

fn file_name(path: &Path) -> String {
    path.file_name().map(|name| name.to_string_lossy().into_owned()).unwrap_or_default()
}

/// Reads every migration in `dir` (a missing directory has none); `service_dir` must exist.
/// Every file that cannot be used is reported, not only the first.
pub fn read(service_dir: &Path, dir: &Path) -> Result<Migrations, FilesError> {
    if !service_dir.is_dir() {
        return Err(FilesError::NoServiceDir(service_dir.to_path_buf()));
    }
    let mut problems = Vec::new();
    let mut ups: BTreeMap<i64, (Parsed, PathBuf)> = BTreeMap::new();
    let mut downs: Vec<(Parsed, PathBuf)> = Vec::new();
    for (file, path) in migration_files(dir)? {
        let parsed = match parse_name(&file) {
            Ok(Some(parsed)) => parsed,
            Ok(None) => continue,
            Err(reason) => {
                problems.push(FilesError::BadName { path, reason });
                continue;
            }
        };
        if parsed.down {
            downs.push((parsed, path));
            continue;
        }
        if let Some((_, first)) = ups.get(&parsed.version) {
            let (first, second) = ordered(first.clone(), path);
            problems.push(FilesError::DuplicateVersion { version: parsed.version, first, second });
            continue;
        }
        ups.insert(parsed.version, (parsed, path));
    }

    let mut down_of: BTreeMap<i64, PathBuf> = BTreeMap::new();
    for (parsed, path) in downs {
        let matches = match ups.get(&parsed.version) {
            // A Flyway undo file goes with its version, whatever its description.
            Some((up, _)) if parsed.format == Format::Flyway => up.format == Format::Flyway,
            Some((up, _)) => up.format == Format::UpDown && up.name == parsed.name,
            None => false,
        };
        if !matches {
            problems.push(FilesError::DownWithoutUp(path));
            continue;
        }
        if let Some(first) = down_of.insert(parsed.version, path.clone()) {
            let (first, second) = ordered(first, path);
            problems.push(FilesError::DuplicateVersion { version: parsed.version, first, second });
        }
    }

    let mut list = Vec::with_capacity(ups.len());
    for (version, (parsed, path)) in ups {
        let text = match read_text(&path) {
            Ok(text) => text,
            Err(error) => {
                problems.push(error);
                continue;
            }
        };
        let sections = match sections::split(&text) {
            Ok(sections) => sections,
            Err(refusals) => {
                problems.extend(refusals.into_iter().map(|(line, reason)| FilesError::Annotations {
                    path: path.clone(),
                    line,
                    reason,
                }));
                continue;
            }
        };
        let mut down = down_of.remove(&version);
        if sections.down.is_some() {
            if let Some(file) = down {
                let reason = format!("its down section and `{}` both undo it; keep one", file_name(&file));
                problems.push(FilesError::Annotations { path: path.clone(), line: 1, reason });
                continue;
            }
            down = Some(path.clone());
        }
        list.push(Migration {
            version,
            no_transaction: sections.up.no_transaction,
            checksum: Checksum::of(&text),
            sql: sections.up.sql,
            dialect: sections.dialect,
            down_section: sections.down,
            name: parsed.name,
            format: parsed.format,
            down,
            path,
        });
    }
    match problems.len() {
        0 => Ok(Migrations { dir: dir.to_path_buf(), list }),
        1 => Err(problems.remove(0)),
        _ => Err(FilesError::Several(problems)),
    }
}

/// The two paths in name order, so that messages do not depend on directory order.
fn ordered(a: PathBuf, b: PathBuf) -> (PathBuf, PathBuf) {
    if a <= b { (a, b) } else { (b, a) }
}

/// `.sql` (and `.rs`, refinery's) files directly in `dir` (not in subdirectories), sorted by
/// name; none when `dir` is missing.
fn migration_files(dir: &Path) -> Result<Vec<(String, PathBuf)>, FilesError> {
    let entries = match fs_err::read_dir(dir) {
        Ok(entries) => entries,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(error) => return Err(error.into()),
    };
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry?;
        let path = entry.path();
        let name = file_name(&path);
        if name.starts_with('.') || !(name.ends_with(".sql") || name.ends_with(".rs")) || !path.is_file() {
            continue;
        }
        files.push((name, path));
    }
    files.sort();
    Ok(files)
}

/// Reads a `.down.sql` file the way migrations are read.
pub fn read_down(path: &Path) -> Result<String, FilesError> {
    read_text(path)
}

/// A file's text as plat checksums and runs it: UTF-8, without a byte order mark (editors on
/// Windows add one, and the server reads it as a syntax error at 1:1), CRLF made LF.
fn read_text(path: &Path) -> Result<String, FilesError> {
    let bytes = fs_err::read(path)?;
    let text = String::from_utf8(bytes).map_err(|_| FilesError::NotUtf8(path.to_path_buf()))?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
    Ok(normalize(text).into_owned())
}

/// Creates the next migration file(s) in `dir` for `name`, in the format of the newest existing
/// file (`<version>_<name>.sql` when there is none). Returns the files created.
///
/// The version continues the existing scheme: a 14-digit version (`20240101120000`) or 12-digit
/// one is followed by the current UTC time in the same shape, anything else by the next integer
/// with the same zero padding. With no files yet, the version is the UTC time `YYYYMMDDHHMMSS`,
/// which two developers on two branches are unlikely to pick both. Never below the newest + 1.
pub fn create(service_dir: &Path, dir: &Path, name: &str, now: SystemTime) -> Result<Vec<PathBuf>, FilesError> {
    let name = clean_name(name)?;
    // Reading the existing migrations first also refuses to add to a directory that is broken.
    let existing = read(service_dir, dir)?;
    let newest = existing.list.last();
    let newest_parsed = newest.and_then(|migration| parse_name(&migration.file_name()).ok().flatten());
    let format = newest.map_or(Format::Plain, |migration| migration.format);
    let version_text = next_version(newest_parsed.as_ref(), now);

    // A goose or dbmate project gets its own markers, so the new file reads like its neighbours.
    let plain = match newest.and_then(|migration| migration.dialect) {
        Some(dialect) => {
            format!("{}\n-- Add migration script here\n\n{}\n", dialect.up_marker(), dialect.down_marker())
        }
        None => "-- Add migration script here\n".to_owned(),
    };
    let files: Vec<(String, String)> = match format {
        Format::Plain => vec![(format!("{version_text}_{name}.sql"), plain)],
        Format::Flyway => vec![(format!("V{version_text}__{name}.sql"), "-- Add migration script here\n".to_owned())],
        Format::UpDown => vec![
            (format!("{version_text}_{name}.up.sql"), "-- Add migration script here\n".to_owned()),
            (format!("{version_text}_{name}.down.sql"), format!("-- Undo {version_text}_{name}.up.sql here\n")),
        ],
    };
    fs_err::create_dir_all(dir)?;
    let mut created = Vec::new();
    for (file, content) in files {
        let path = dir.join(file);
        // `create_new`: never overwrite a file someone already wrote.
        let mut handle = fs_err::OpenOptions::new().write(true).create_new(true).open(&path)?;
        std::io::Write::write_all(&mut handle, content.as_bytes()).map_err(|error| {
            std::io::Error::new(error.kind(), format!("cannot write `{}`: {error}", path.display()))
        })?;
        created.push(path);
    }
    Ok(created)
}

/// `Add Users-Table` becomes `add_users_table`.
fn clean_name(name: &str) -> Result<String, FilesError> {
    let mut clean = String::new();
    for c in name.trim().chars() {
        if c.is_ascii_alphanumeric() {
            clean.push(c.to_ascii_lowercase());
        } else if !clean.is_empty() && !clean.ends_with('_') {
            clean.push('_');
        }
    }
    let clean = clean.trim_end_matches('_').to_owned();
    if clean.is_empty() {
        return Err(FilesError::BadNewName(name.to_owned()));
    }
    Ok(clean)
}

/// The version text of the next migration after `newest`.
fn next_version(newest: Option<&Parsed>, now: SystemTime) -> String {
    let Some(newest) = newest else { return utc_timestamp(now, 14) };
    let width = newest.version_text.len();
    let after = newest.version.saturating_add(1);
    if width == 14 || width == 12 {
        let stamp: i64 = utc_timestamp(now, width).parse().expect("digits");
        return stamp.max(after).to_string();
    }
    format!("{after:0width$}")
}

/// `YYYYMMDDHHMMSS` (14) or `YYYYMMDDHHMM` (12) in UTC.
fn utc_timestamp(now: SystemTime, width: usize) -> String {
    let secs = now.duration_since(SystemTime::UNIX_EPOCH).map_or(0, |elapsed| elapsed.as_secs());
    let (days, rest) = ((secs / 86_400) as i64, secs % 86_400);
    let (year, month, day) = civil_from_days(days);
    let full = format!("{year:04}{month:02}{day:02}{:02}{:02}{:02}", rest / 3600, rest % 3600 / 60, rest % 60);
    full[..width].to_owned()
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn name(file: &str) -> Parsed {
        parse_name(file).unwrap().unwrap()
    }

    #[test]
    fn reads_every_format() {
        assert_eq!(name("1_create_users.sql").format, Format::Plain);
        assert_eq!(name("0001_create_users.sql").version, 1);
        let up = name("20240101120000_add_email.up.sql");
        assert_eq!(
            (up.version, up.name.as_str(), up.format, up.down),
            (20240101120000, "add_email", Format::UpDown, false)
        );
        assert!(name("20240101120000_add_email.down.sql").down);
        let flyway = name("V3__add.index.sql");
        assert_eq!((flyway.version, flyway.name.as_str(), flyway.format), (3, "add.index", Format::Flyway));
        assert_eq!(parse_name("README.md").unwrap(), None);
        assert_eq!(parse_name("helpers.rs").unwrap(), None);
        let undo = name("U3__drop_index.sql");
        assert_eq!((undo.version, undo.format, undo.down), (3, Format::Flyway, true));
    }

    #[test]
    fn refuses_names_it_cannot_read() {
        for bad in [
            "create_users.sql",
            "1.sql",
            "1_.sql",
            "V1_x.sql",
            "x1_y.sql",
            "99999999999999999999_x.sql",
            "-1_x.sql",
            "R__views.sql",
            "V1.1__x.sql",
            "V1_1__x.sql",
            "V2__x.rs",
        ] {
            assert!(parse_name(bad).is_err(), "{bad} parsed");
        }
    }

    #[test]
    fn checksums_ignore_line_endings() {
        assert_eq!(Checksum::of("a;\r\nb;\r\n"), Checksum::of("a;\nb;\n"));
        assert_ne!(Checksum::of("a;\n"), Checksum::of("a; \n"));
        assert_eq!(Checksum::of("").to_hex(), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    }

    #[test]
    fn new_names_are_cleaned() {
        assert_eq!(clean_name("Add Users-Table").unwrap(), "add_users_table");
        assert!(clean_name("--").is_err());
    }

    #[test]
    fn next_versions_follow_the_existing_scheme() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_704_110_400); // 2024-01-01T12:00:00Z
        assert_eq!(next_version(None, now), "20240101120000");
        assert_eq!(next_version(Some(&name("7_x.sql")), now), "8");
        assert_eq!(next_version(Some(&name("0009_x.sql")), now), "0010");
        assert_eq!(next_version(Some(&name("V2__x.sql")), now), "3");
        assert_eq!(next_version(Some(&name("20230101000000_x.sql")), now), "20240101120000");
        assert_eq!(next_version(Some(&name("202301010000_x.sql")), now), "202401011200");
        // A clock behind the newest version still moves forward.
        assert_eq!(next_version(Some(&name("20990101000000_x.sql")), now), "20990101000001");
    }

    #[test]
    fn civil_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(19_723), (2024, 1, 1));
        assert_eq!(civil_from_days(19_782), (2024, 2, 29));
    }
}
