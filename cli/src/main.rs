//! The `plat` binary: parses arguments, sets up output and logging, runs one command, and maps
//! its result to a documented exit status. The engine lives in the `plat` library.

mod args;
mod commands;
mod render;
mod ui;

use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;

use args::{Cli, ColorChoice};
use ui::CliError;

fn main() -> ExitCode {
    let cli = Cli::parse();
    setup_color(cli.global.color);
    setup_logging(cli.global.verbose, cli.global.quiet);
    ui::set_quiet(cli.global.quiet);

    if let Some(dir) = &cli.global.directory
        && let Err(error) = std::env::set_current_dir(dir)
    {
        let error = CliError::usage(format!("cannot change to directory `{}`: {error}", dir.display()));
        ui::print_error(&error);
        return error.status.into();
    }

    match commands::run(cli) {
        Ok(status) => status.into(),
        Err(error) => {
            ui::print_error(&error);
            error.status.into()
        }
    }
}

fn setup_color(choice: ColorChoice) {
    let choice = match choice {
        // anstream's auto already honours NO_COLOR, CLICOLOR_FORCE and whether the stream is a terminal.
        ColorChoice::Auto => anstream::ColorChoice::Auto,
        ColorChoice::Always => anstream::ColorChoice::Always,
        ColorChoice::Never => anstream::ColorChoice::Never,
    };
    choice.write_global();
}

/// Logs go to stderr. `PLAT_LOG` (an env-filter such as `plat=debug`) wins over `-v` and `-q`.
fn setup_logging(verbose: u8, quiet: bool) {
    let default = match (quiet, verbose) {
        (true, _) => "error",
        (false, 0) => "warn",
        (false, 1) => "plat=debug,info",
        (false, _) => "trace",
    };
    let filter = EnvFilter::try_from_env("PLAT_LOG").unwrap_or_else(|_| EnvFilter::new(default));
    let ansi = anstream::AutoStream::choice(&std::io::stderr()) != anstream::ColorChoice::Never;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi)
        .with_target(false)
        .without_time()
        .init();
}
