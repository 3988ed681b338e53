//! The api-gateway binary: configuration, telemetry, the HTTP server and graceful shutdown.
//!
//! ```text
//! api-gateway                                  serve (configured by the environment)
//! api-gateway --mint-token SUBJECT [--ttl 1h]  print a token signed with JWT_SECRET, for testing
//! ```

use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use api_gateway::config::{Config, JwtSecret};
use api_gateway::middleware::auth::Verifier;
use pkg::config::Env;
use pkg::shutdown::{Shutdown, ShutdownConfig};

const USAGE: &str = "\
usage: api-gateway                                  serve; configured by the environment (see README.md)
       api-gateway --mint-token SUBJECT [--ttl DURATION]
                                                    print a bearer token for SUBJECT signed with
                                                    JWT_SECRET, valid for DURATION (default 1h)";

/// Exit code of a usage error (as of a configuration error: see `pkg::service`).
const EXIT_USAGE: u8 = 2;

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        None => serve().await,
        Some("--mint-token") => mint_token(&args[1..]),
        Some("-h" | "--help") => {
            println!("{USAGE}");
            ExitCode::SUCCESS
        }
        Some(other) => {
            eprintln!("error: unexpected argument {other:?}\n{USAGE}");
            ExitCode::from(EXIT_USAGE)
        }
    }
}

async fn serve() -> ExitCode {
    pkg::service::main(api_gateway::SERVICE_NAME, async |config: Config| {
        let metrics = pkg::metrics::Metrics::new(api_gateway::SERVICE_NAME);
        let gateway = api_gateway::gateway(&config, metrics)?;
        let shutdown =
            Shutdown::on_signals(ShutdownConfig { grace: config.shutdown_grace, ..ShutdownConfig::default() })?;
        let listener = pkg::service::bind("HTTP_ADDR", config.http_addr).await?;
        tracing::info!(
            http_addr = %config.http_addr,
            user_service = %config.user_service_addr,
            order_service = %config.order_service_addr,
            rate_limit_rps = config.rate_limit.rps,
            rate_limit_burst = config.rate_limit.burst,
            upstream_timeout_ms = config.upstream_timeout.as_millis() as u64,
            "listening"
        );
        let server = api_gateway::router::serve(listener, gateway.router, shutdown.signalled());
        shutdown.drain(server).await??;
        Ok(())
    })
    .await
}

fn mint_token(args: &[String]) -> ExitCode {
    let (subject, ttl) = match args {
        [subject] => (subject, Ok(Duration::from_secs(3600))),
        [subject, flag, ttl] if flag == "--ttl" => (subject, pkg::config::parse_duration(ttl)),
        _ => {
            eprintln!("error: --mint-token takes a subject and optionally --ttl DURATION\n{USAGE}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let ttl = match ttl {
        Ok(ttl) => ttl,
        Err(reason) => {
            eprintln!("error: --ttl is not a duration: {reason} (example: --ttl 15m)");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let secret = Env::from_process()
        .var("JWT_SECRET")
        .example("$(head -c 32 /dev/urandom | base64)")
        .secret()
        .required::<JwtSecret>();
    let secret = match secret {
        Ok(secret) => secret,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    println!("{}", Verifier::new(secret).mint(subject, ttl, SystemTime::now()));
    ExitCode::SUCCESS
}
