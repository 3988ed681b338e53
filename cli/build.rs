//! Builds plat-relay (cli/relay/main.rs): a static Linux binary, std alone, that plat packages
//! into the image `plat/relay` to reach containers through the Engine when it cannot route to
//! them (see src/docker/relay.rs). It is embedded in plat, so no registry and no toolchain is
//! needed where plat runs.
//!
//! It is compiled for the target plat is built for, when that is Linux: the relay runs in a
//! container of the same architecture as the Engine's host, which is this one's for the setups
//! plat supports reaching through a relay (Linux, plat in a container, a remote Engine of the same
//! architecture). On another target, or if the compile fails, an empty file is embedded and plat
//! says the relay is not available.

use std::path::PathBuf;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=relay/main.rs");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR")).join("plat-relay");
    let target = std::env::var("TARGET").unwrap_or_default();
    if !target.contains("-linux-") {
        std::fs::write(&out, b"").expect("OUT_DIR is writable");
        return;
    }
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let status = Command::new(rustc)
        .args(["--edition", "2021", "--crate-name", "plat_relay", "--crate-type", "bin"])
        .args(["-C", "opt-level=s", "-C", "panic=abort", "-C", "strip=symbols", "-C", "target-feature=+crt-static"])
        .args(["--target", &target, "-o"])
        .arg(&out)
        .arg("relay/main.rs")
        // The flags plat itself is built with are not the relay's (a sanitizer, a linker).
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .status();
    if !matches!(status, Ok(status) if status.success()) {
        println!(
            "cargo:warning=plat-relay did not build ({status:?}): plat will not reach containers through the Engine"
        );
        std::fs::write(&out, b"").expect("OUT_DIR is writable");
    }
}
