//! Build contexts as the Engine receives them: a tar made the same way every time (sorted
//! names, fixed owners, times and modes), so that equal files give an equal hash; a directory
//! sent minus what its `.dockerignore` excludes, as the Docker CLI sends it.

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
    let mut tar = TarWriter::new();
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
            tar.file(PLAT_DOCKERFILE, &text, 0o644);
            let ignore_text = match ignore_text {
                Some(text) => format!("{text}\n{PLAT_DOCKERFILE}\n"),
                // .dockerignore too: it is plat's, not the service's.
                None => format!("{PLAT_DOCKERFILE}\n.dockerignore\n"),
            };
            (PLAT_DOCKERFILE.to_owned(), Some(ignore_text))
        }
    };
    if let Some(text) = ignore_text {
        tar.file(".dockerignore", text.as_bytes(), 0o644);
    }
    Ok((tar.finish(), name))
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
            tar.directory(&name);
            add_directory(tar, context_dir, &path, ignore)?;
        } else if file_type.is_symlink() {
            let target = fs_err::read_link(entry.path()).map_err(context_error(entry.path()))?;
            tar.symlink(&name, &target);
        } else if file_type.is_file() {
            let bytes = fs_err::read(entry.path()).map_err(context_error(entry.path()))?;
            tar.file(&name, &bytes, executable_mode(&entry.path()));
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
    pub(super) tar: Vec<u8>,
    pub(super) files: BTreeMap<String, String>,
}

/// A tar archive in memory with fixed owners and times, so equal files give equal bytes.
pub(super) struct TarWriter {
    builder: tar::Builder<Vec<u8>>,
    files: BTreeMap<String, String>,
}

impl TarWriter {
    pub(super) fn new() -> TarWriter {
        TarWriter { builder: tar::Builder::new(Vec::new()), files: BTreeMap::new() }
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

    pub(super) fn file(&mut self, name: &str, bytes: &[u8], mode: u32) {
        let mut header = Self::header(tar::EntryType::Regular, mode, bytes.len() as u64);
        // Writing to a Vec cannot fail; a name tar cannot store is a bug worth knowing.
        self.builder.append_data(&mut header, name, bytes).expect("a context entry is written to memory");
        self.files.insert(name.to_owned(), format!("{}:{mode:o}", digest(bytes)));
    }

    fn directory(&mut self, name: &str) {
        let mut header = Self::header(tar::EntryType::Directory, 0o755, 0);
        let path = format!("{name}/");
        self.builder.append_data(&mut header, &path, io::empty()).expect("a context directory is written to memory");
        self.files.insert(path, "dir".to_owned());
    }

    fn symlink(&mut self, name: &str, target: &Path) {
        let mut header = Self::header(tar::EntryType::Symlink, 0o777, 0);
        self.builder.append_link(&mut header, name, target).expect("a context link is written to memory");
        self.files.insert(name.to_owned(), format!("-> {}", target.display()));
    }

    pub(super) fn finish(self) -> Context {
        Context { tar: self.builder.into_inner().expect("a tar in memory finishes"), files: self.files }
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

/// `*` and `?` within one segment.
fn glob(pattern: &str, text: &str) -> bool {
    let (pattern, text): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut p, mut t, mut star, mut mark) = (0, 0, None, 0);
    while t < text.len() {
        if p < pattern.len() && (pattern[p] == '?' || pattern[p] == text[t]) {
            p += 1;
            t += 1;
        } else if p < pattern.len() && pattern[p] == '*' {
            star = Some(p);
            mark = t;
            p += 1;
        } else if let Some(star) = star {
            p = star + 1;
            mark += 1;
            t = mark;
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|c| *c == '*')
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
        let mut archive = tar::Archive::new(context.tar.as_slice());
        let entries: Vec<(String, String)> = archive
            .entries()
            .unwrap()
            .map(|entry| {
                let mut entry = entry.unwrap();
                let mut text = String::new();
                std::io::Read::read_to_string(&mut entry, &mut text).unwrap();
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
