//! Runs the sample platform on this machine until Ctrl-C: databases created and migrated by
//! `plat migrate`, NATS, user-service, order-service and api-gateway as processes. The platform
//! `plat up` runs in containers, with no Docker at all (`scripts/run-platform`).

use platform_e2e::{Platform, PlatformOptions, token};

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    // The gateway on the port workspace.toml publishes it on (GATEWAY_PORT overrides; 0 picks one).
    let gateway_port =
        std::env::var("GATEWAY_PORT").ok().map_or(8080, |port| port.parse().expect("GATEWAY_PORT is a port"));
    let options = PlatformOptions {
        rate_limit_rps: 10,
        rate_limit_burst: 20,
        nats: true,
        release: false,
        gateway_port: (gateway_port != 0).then_some(gateway_port),
    };
    eprintln!("==> building and starting the platform (plat migrate, NATS, three services)");
    let platform = tokio::task::spawn_blocking(move || Platform::start(options)).await.expect("the platform starts");
    let token = token::mint(&platform.jwt_secret, "developer", 24 * 3600);
    println!(
        "\nThe platform is up. Gateway: {gateway}\n\n\
         export TOKEN={token}\n\
         curl -s -X POST {gateway}/v1/users -H \"authorization: Bearer $TOKEN\" -H 'content-type: application/json' \\\n  \
         -d '{{\"email\":\"ada@example.com\",\"display_name\":\"Ada\"}}'\n\
         curl -s {gateway}/v1/users -H \"authorization: Bearer $TOKEN\"\n\
         curl -s {gateway}/openapi.json | head\n\n\
         user-service gRPC: {user}   order-service gRPC: {order}   NATS: {nats}\n\
         Ctrl-C stops everything.",
        gateway = platform.gateway_url,
        user = platform.user_grpc,
        order = platform.order_grpc,
        nats = platform.nats.map(|nats| nats.to_string()).unwrap_or_default(),
    );
    let mut terminate =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("a SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
    eprintln!("==> stopping");
    tokio::task::spawn_blocking(move || drop(platform)).await.expect("the platform stops");
}
