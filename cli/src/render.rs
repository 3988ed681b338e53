//! Drawing manifest diagnostics the way rustc draws compiler errors: the line, a caret, help.

use std::path::Path;

use annotate_snippets::{AnnotationKind, Group, Level, Renderer, Snippet};
use plat::manifest::ManifestError;

/// Every diagnostic of `error`, each with the offending line, as one block of text.
pub fn manifest_error(error: &ManifestError, styled: bool) -> String {
    let path = display_path(&error.path);
    let renderer = if styled { Renderer::styled() } else { Renderer::plain() };
    let mut out = String::new();
    for diagnostic in &error.diagnostics {
        let mut group = Group::with_title(Level::ERROR.primary_title(diagnostic.message.as_str()));
        if let Some(span) = &diagnostic.span {
            let mut annotation = AnnotationKind::Primary.span(span.clone());
            if let Some(label) = &diagnostic.label {
                annotation = annotation.label(label.as_str());
            }
            let mut snippet = Snippet::source(error.source.as_str()).path(path.as_str()).annotation(annotation);
            for note in &diagnostic.notes {
                snippet =
                    snippet.annotation(AnnotationKind::Context.span(note.span.clone()).label(note.label.as_str()));
            }
            group = group.element(snippet);
        } else {
            group = group.element(Level::NOTE.message(format!("in {path}")));
        }
        if let Some(help) = &diagnostic.help {
            group = group.element(Level::HELP.message(help.as_str()));
        }
        out.push_str(&renderer.render(&[group]));
        out.push_str("\n\n");
    }
    out
}

/// The path relative to the current directory when it is below it, as the user would type it.
pub fn display_path(path: &Path) -> String {
    let relative = std::env::current_dir().ok().and_then(|cwd| path.strip_prefix(cwd).ok().map(Path::to_path_buf));
    relative.unwrap_or_else(|| path.to_path_buf()).display().to_string()
}
