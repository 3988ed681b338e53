//! Fuzzes the manifest decoder and validator: no input may panic.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Err(error) = plat::manifest::load(Path::new("/fuzz/workspace.toml"), text) {
        // Rendering positions must hold for every span the decoder produces.
        let _ = error.to_string();
        for diagnostic in &error.diagnostics {
            if let Some(span) = &diagnostic.span {
                let _ = error.line_col(span.end);
            }
        }
    }
});
