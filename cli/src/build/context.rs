//! Build contexts as the Engine receives them: a tar made the same way every time (sorted
//! names, fixed owners, times and modes), so that equal files give an equal hash; a directory
//! sent minus what its `.dockerignore` excludes, as the Docker CLI sends it. The tar is written
//! to a temporary file as the files are read (and digested), and streamed to the Engine from
//! there: a context of any size costs plat a buffer, not its size in memory.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

use super::{BuildError, digest};

/// The context directory as a tar (minus what `.dockerignore` excludes) and the Dockerfile's
/// path inside it; a Dockerfile outside the context is added under a name of plat's.
pub(super) fn dockerfile_context(context_dir: &Path, dockerfile: &Path) -> Result<(Context, String), BuildError> {
    let context_error = |path: &Path| {
        let path = path.to_owned();
        move |error| BuildError::Context { path, error }
    };
    let ignore_text = match fs_err::read_to_string(context_dir.join(".dockerignore")) {
        Ok(text) => Some(text),
        Err(error) if error.kind() == io::ErrorKind::NotFound => None,
        Err(error) => return Err(context_error(&context_dir.join(".dockerignore"))(error)),
    };
    let ignore = ignore_text.as_deref().map(DockerIgnore::parse).unwrap_or_default();
    let temporary = |error| BuildError::Context { path: std::env::temp_dir(), error };
    let mut tar = TarWriter::new().map_err(temporary)?;
    add_directory(&mut tar, context_dir, Path::new(""), &ignore)?;
    // As the Docker CLI does: the Dockerfile and .dockerignore are always sent (the Engine reads
    // them, then leaves them out of what COPY sees when .dockerignore names them). A Dockerfile
    // outside the context, or one .dockerignore excludes, goes under a name of plat's, which the
    // .dockerignore sent names so that it never ends up in the image.
    let inside = dockerfile.strip_prefix(context_dir).ok().map(|path| path.to_string_lossy().replace('\\', "/"));
    let (name, ignore_text) = match inside {
        Some(name) if context_dir.join(&name).is_file() && !ignore.excludes(&name) => (name, ignore_text),
        _ => {
            let text = fs_err::read(dockerfile).map_err(context_error(dockerfile))?;
            tar.file(PLAT_DOCKERFILE, &text, 0o644).map_err(temporary)?;
            let ignore_text = match ignore_text {
                Some(text) => format!("{text}\n{PLAT_DOCKERFILE}\n"),
                // .dockerignore too: it is plat's, not the service's.
                None => format!("{PLAT_DOCKERFILE}\n.dockerignore\n"),
            };
            (PLAT_DOCKERFILE.to_owned(), Some(ignore_text))
        }
    };
    if let Some(text) = ignore_text {
        tar.file(".dockerignore", text.as_bytes(), 0o644).map_err(temporary)?;
    }
    Ok((tar.finish().map_err(temporary)?, name))
}

/// The name plat gives a Dockerfile it adds to a context.
const PLAT_DOCKERFILE: &str = ".plat.Dockerfile";

/// Adds the files below `context_dir/relative` that `.dockerignore` leaves in, sorted by name
/// so that the same files give the same tar and the same hash.
fn add_directory(
    tar: &mut TarWriter,
    context_dir: &Path,
    relative: &Path,
    ignore: &DockerIgnore,
) -> Result<(), BuildError> {
    let context_error = |path: PathBuf| move |error| BuildError::Context { path, error };
    let dir = context_dir.join(relative);
    let mut entries: Vec<_> = fs_err::read_dir(&dir)
        .map_err(context_error(dir.clone()))?
        .collect::<Result<_, _>>()
        .map_err(context_error(dir))?;
    entries.sort_by_key(|entry| entry.file_name());
    for entry in entries {
        let path = relative.join(entry.file_name());
        let name = path.to_string_lossy().replace('\\', "/");
        if name == ".dockerignore" {
            continue; // dockerfile_context adds it, whatever it says of itself.
        }
        let file_type = entry.file_type().map_err(context_error(entry.path()))?;
        if ignore.excludes(&name) && !(file_type.is_dir() && ignore.may_include_below(&name)) {
            continue;
        }
        if file_type.is_dir() {
            tar.directory(&name).map_err(context_error(entry.path()))?;
            add_directory(tar, context_dir, &path, ignore)?;
        } else if file_type.is_symlink() {
            let target = fs_err::read_link(entry.path()).map_err(context_error(entry.path()))?;
            tar.symlink(&name, &target).map_err(context_error(entry.path()))?;
        } else if file_type.is_file() {
            tar.file_from(&name, &entry.path(), executable_mode(&entry.path())).map_err(context_error(entry.path()))?;
        }
        // Sockets, FIFOs and devices are left out: reading a FIFO would block.
    }
    Ok(())
}

#[cfg(unix)]
fn executable_mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    match std::fs::metadata(path) {
        Ok(metadata) if metadata.permissions().mode() & 0o111 != 0 => 0o755,
        _ => 0o644,
    }
}

#[cfg(not(unix))]
fn executable_mode(_: &Path) -> u32 {
    0o644
}

/// A build context: the tar the Engine gets, and a digest of each entry for `--explain`.
#[derive(Debug)]
pub(super) struct Context {
    /// The tar, at its start.
    pub(super) tar: std::fs::File,
    pub(super) files: BTreeMap<String, String>,
}

/// A tar archive in memory with fixed owners and times, so equal files give equal bytes.
pub(super) struct TarWriter {
    builder: tar::Builder<std::fs::File>,
    files: BTreeMap<String, String>,
}

impl TarWriter {
    /// A tar written to an anonymous temporary file, gone when the context is dropped.
    pub(super) fn new() -> io::Result<TarWriter> {
        Ok(TarWriter { builder: tar::Builder::new(tempfile::tempfile()?), files: BTreeMap::new() })
    }

    fn header(kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(kind);
        header.set_mode(mode);
        header.set_size(size);
        header.set_mtime(0);
        header.set_uid(0);
        header.set_gid(0);
        header
    }

    /// Adds a file from memory (a Dockerfile plat writes).
    pub(super) fn file(&mut self, name: &str, bytes: &[u8], mode: u32) -> io::Result<()> {
        let mut header = Self::header(tar::EntryType::Regular, mode, bytes.len() as u64);
        self.builder.append_data(&mut header, name, bytes)?;
        self.files.insert(name.to_owned(), format!("{}:{mode:o}", digest(bytes)));
        Ok(())
    }

    /// Adds the file at `path`, read once: into the tar and through the digest together.
    pub(super) fn file_from(&mut self, name: &str, path: &Path, mode: u32) -> io::Result<()> {
        let file = fs_err::File::open(path)?;
        let size = file.metadata()?.len();
        let mut header = Self::header(tar::EntryType::Regular, mode, size);
        let mut reader = Digesting { inner: io::Read::take(file, size), hasher: sha2::Sha256::default() };
        self.builder.append_data(&mut header, name, &mut reader)?;
        let digest = crate::text::hex(&sha2::Digest::finalize(reader.hasher)[..8]);
        self.files.insert(name.to_owned(), format!("{digest}:{mode:o}"));
        Ok(())
    }

    fn directory(&mut self, name: &str) -> io::Result<()> {
        let mut header = Self::header(tar::EntryType::Directory, 0o755, 0);
        let path = format!("{name}/");
        self.builder.append_data(&mut header, &path, io::empty())?;
        self.files.insert(path, "dir".to_owned());
        Ok(())
    }

    fn symlink(&mut self, name: &str, target: &Path) -> io::Result<()> {
        let mut header = Self::header(tar::EntryType::Symlink, 0o777, 0);
        self.builder.append_link(&mut header, name, target)?;
        self.files.insert(name.to_owned(), format!("-> {}", target.display()));
        Ok(())
    }

    pub(super) fn finish(self) -> io::Result<Context> {
        use std::io::Seek;
        let mut tar = self.builder.into_inner()?;
        tar.rewind()?;
        Ok(Context { tar, files: self.files })
    }
}

/// A reader that digests what passes through it.
struct Digesting<R> {
    inner: R,
    hasher: sha2::Sha256,
}

impl<R: io::Read> io::Read for Digesting<R> {
    fn read(&mut self, buffer: &mut [u8]) -> io::Result<usize> {
        let read = self.inner.read(buffer)?;
        sha2::Digest::update(&mut self.hasher, &buffer[..read]);
        Ok(read)
    }
}

/// The patterns of a `.dockerignore`, in order; a later match wins, `!` re-includes.
#[derive(Debug, Default)]
struct DockerIgnore {
    rules: Vec<(bool, Vec<String>)>,
}

impl DockerIgnore {
    fn parse(text: &str) -> DockerIgnore {
        let rules = text
            .lines()
            .map(str::trim)
            .filter(|line| !line.is_empty() && !line.starts_with('#'))
            .map(|line| {
                let (include, pattern) = match line.strip_prefix('!') {
                    Some(pattern) => (true, pattern.trim()),
                    None => (false, line),
                };
                let segments = pattern
                    .trim_matches('/')
                    .split('/')
                    .filter(|segment| !segment.is_empty() && *segment != ".")
                    .map(str::to_owned)
                    .collect();
                (include, segments)
            })
            .collect();
        DockerIgnore { rules }
    }

    /// Whether the path (relative, `/`-separated) is left out of the context: it, or a
    /// directory above it, matches the last rule that matches.
    fn excludes(&self, path: &str) -> bool {
        let segments: Vec<&str> = path.split('/').collect();
        let mut excluded = false;
        for (include, pattern) in &self.rules {
            let matches = (1..=segments.len()).any(|len| glob_segments(pattern, &segments[..len]));
            if matches {
                excluded = !include;
            }
        }
        excluded
    }

    /// Whether an excluded directory may still hold a re-included file (so it must be walked).
    fn may_include_below(&self, dir: &str) -> bool {
        let dir = format!("{dir}/");
        self.rules.iter().filter(|(include, _)| *include).any(|(_, pattern)| {
            let pattern = format!("{}/", pattern.join("/"));
            pattern.contains(['*', '?']) || pattern.starts_with(&dir)
        })
    }
}

/// Whether path segments match pattern segments; `**` matches any number of segments.
fn glob_segments(pattern: &[String], path: &[&str]) -> bool {
    match pattern.split_first() {
        None => path.is_empty(),
        Some((first, rest)) if first == "**" => (0..=path.len()).any(|skip| glob_segments(rest, &path[skip..])),
        Some((first, rest)) => {
            path.split_first().is_some_and(|(segment, path)| glob(first, segment) && glob_segments(rest, path))
        }
    }
}

/// One segment of a pattern, as Go's `filepath.Match` (which Docker's .dockerignore uses) reads
/// it: `*` any run of characters, `?` one character, `[a-z0-9]` one of a class (`[^...]` or
/// `[!...]` one not in it), `\x` the character `x` itself.
fn glob(pattern: &str, text: &str) -> bool {
    let tokens = tokens(pattern);
    let text: Vec<char> = text.chars().collect();
    let (mut p, mut t, mut star, mut mark) = (0, 0, None, 0);
    while t < text.len() {
        match tokens.get(p) {
            Some(Token::Star) => {
                star = Some(p);
                mark = t;
                p += 1;
            }
            Some(token) if token.matches(text[t]) => {
                p += 1;
                t += 1;
            }
            _ => match star {
                Some(star) => {
                    p = star + 1;
                    mark += 1;
                    t = mark;
                }
                None => return false,
            },
        }
    }
    tokens[p..].iter().all(|token| *token == Token::Star)
}

/// A piece of a glob pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    /// This character.
    Literal(char),
    /// Any one character (`?`).
    Any,
    /// Any run of characters (`*`).
    Star,
    /// One character of (or, `negated`, not of) these ranges (`[a-z_]`).
    Class { negated: bool, ranges: Vec<(char, char)> },
}

impl Token {
    fn matches(&self, c: char) -> bool {
        match self {
            Token::Literal(literal) => *literal == c,
            Token::Any => true,
            Token::Star => false,
            Token::Class { negated, ranges } => {
                ranges.iter().any(|(low, high)| (*low..=*high).contains(&c)) != *negated
            }
        }
    }
}

fn tokens(pattern: &str) -> Vec<Token> {
    let chars: Vec<char> = pattern.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '*' => tokens.push(Token::Star),
            '?' => tokens.push(Token::Any),
            '\\' if i + 1 < chars.len() => {
                i += 1;
                tokens.push(Token::Literal(chars[i]));
            }
            '[' => match class(&chars[i + 1..]) {
                Some((token, used)) => {
                    tokens.push(token);
                    i += used;
                }
                // An unclosed class is Go's bad pattern; read it as the characters it is.
                None => tokens.push(Token::Literal('[')),
            },
            c => tokens.push(Token::Literal(c)),
        }
        i += 1;
    }
    tokens
}

/// The class after a `[`, and how many characters it took (up to and with its `]`).
fn class(chars: &[char]) -> Option<(Token, usize)> {
    let mut i = 0;
    let negated = matches!(chars.first(), Some('^' | '!'));
    if negated {
        i += 1;
    }
    let mut ranges = Vec::new();
    let next = |i: &mut usize| -> Option<char> {
        let c = *chars.get(*i)?;
        *i += 1;
        if c == '\\' {
            let escaped = *chars.get(*i)?;
            *i += 1;
            return Some(escaped);
        }
        Some(c)
    };
    loop {
        if chars.get(i) == Some(&']') && (!ranges.is_empty()) {
            return Some((Token::Class { negated, ranges }, i + 1));
        }
        let low = next(&mut i)?;
        let high = if chars.get(i) == Some(&'-') && chars.get(i + 1).is_some_and(|c| *c != ']') {
            i += 1;
            next(&mut i)?
        } else {
            low
        };
        ranges.push((low, high));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dockerignore_excludes_paths_and_what_is_below_them() {
        let ignore = DockerIgnore::parse("# build output\ntarget/\n*.env\n**/secret*\n!keep.env\n/dist\n");
        assert!(ignore.excludes("target"));
        assert!(ignore.excludes("target/release/app"));
        assert!(ignore.excludes("prod.env"));
        assert!(!ignore.excludes("keep.env"), "re-included by the later `!` rule");
        assert!(ignore.excludes("config/secret.json"));
        assert!(ignore.excludes("secrets/key"));
        assert!(ignore.excludes("dist/app"));
        assert!(!ignore.excludes("src/main.rs"));
        assert!(!ignore.excludes("sub/prod.env"), "`*.env` is anchored at the context root");
        assert!(!DockerIgnore::default().excludes("anything"));
    }

    /// Docker's own reading of .dockerignore (moby's patternmatcher over Go's `filepath.Match`):
    /// each row is a pattern file, a path, and whether Docker leaves the path out of the context.
    #[test]
    fn dockerignore_matches_as_docker_does() {
        let cases: &[(&str, &str, bool)] = &[
            ("*.md", "README.md", true),
            ("*.md", "docs/README.md", false),
            ("**/*.md", "docs/README.md", true),
            ("**/*.md", "README.md", true),
            ("docs", "docs/a/b.txt", true),
            ("docs/", "docs/a/b.txt", true),
            ("/docs", "docs", true),
            ("./docs", "docs", true),
            ("doc?", "docs", true),
            ("doc?", "doc", false),
            ("v[0-9].txt", "v1.txt", true),
            ("v[0-9].txt", "va.txt", false),
            ("v[!0-9].txt", "va.txt", true),
            ("v[^0-9].txt", "v1.txt", false),
            ("[a-c]*", "build", true),
            ("[a-c]*", "docs", false),
            ("\\*.txt", "*.txt", true),
            ("\\*.txt", "a.txt", false),
            ("file\\[1\\]", "file[1]", true),
            ("*\ndist\n!dist/keep.txt", "dist/keep.txt", false),
            ("*\ndist\n!dist/keep.txt", "dist/other.txt", true),
            ("*.log\n!important.log", "important.log", false),
            ("!important.log\n*.log", "important.log", true),
            ("# a comment\n\n  secrets/  ", "secrets/key", true),
            ("target\n!target/release/app", "target/release/app", false),
        ];
        for (patterns, path, excluded) in cases {
            let ignore = DockerIgnore::parse(patterns);
            assert_eq!(ignore.excludes(path), *excluded, "{patterns:?} on {path:?}");
        }
        // A directory left out must still be walked when an exception names something inside it.
        let ignore = DockerIgnore::parse("target\n!target/release/app");
        assert!(ignore.excludes("target") && ignore.may_include_below("target"));
        assert!(!DockerIgnore::parse("target").may_include_below("target"));
    }

    #[test]
    fn globs_match_within_a_segment() {
        assert!(glob("*.sql", "V1__init.sql"));
        assert!(glob("V?__*", "V1__init.sql"));
        assert!(!glob("*.sql", "init.sql.bak"));
        assert!(glob("*", ""));
        assert!(!glob("a", ""));
    }

    #[test]
    fn the_dockerfile_is_sent_even_when_ignored() {
        let dir = tempfile::tempdir().unwrap();
        fs_err::write(dir.path().join("Dockerfile"), "FROM scratch\n").unwrap();
        fs_err::write(dir.path().join(".dockerignore"), "*\n").unwrap();
        let (context, name) = dockerfile_context(dir.path(), &dir.path().join("Dockerfile")).unwrap();
        assert_eq!(name, ".plat.Dockerfile");
        let mut archive = tar::Archive::new(context.tar);
        let entries: Vec<(String, String)> = archive
            .entries()
            .unwrap()
            .map(|entry| {
                let mut entry = entry.unwrap();
                let mut text = String::new();
                io::Read::read_to_string(&mut entry, &mut text).unwrap();
                (entry.path().unwrap().to_string_lossy().into_owned(), text)
            })
            .collect();
        // The .dockerignore sent names plat's Dockerfile, so that `COPY . /app` leaves it out.
        assert_eq!(
            entries,
            [
                (".plat.Dockerfile".to_owned(), "FROM scratch\n".to_owned()),
                (".dockerignore".to_owned(), "*\n\n.plat.Dockerfile\n".to_owned())
            ]
        );
    }
}
