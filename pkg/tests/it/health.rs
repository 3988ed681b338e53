//! health: one switch drives the gRPC health service and the HTTP probes.

use pkg::health::Health;

const SERVING: i32 = 1;
const NOT_SERVING: i32 = 2;

async fn grpc_health(
    health_service: tonic_health::pb::health_server::HealthServer<tonic_health::server::HealthService>,
) -> std::net::SocketAddr {
    let (listener, addr) = crate::loopback().await;
    tokio::spawn(async move {
        tonic::transport::Server::builder()
            .add_service(health_service)
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener))
            .await
            .unwrap()
    });
    addr
}

#[tokio::test]
async fn a_service_starts_not_serving_and_flips_both_its_name_and_the_server() {
    let (health, service) = Health::new("user.v1.UserService").await;
    let client = crate::trace::health_client(grpc_health(service).await);
    for name in ["user.v1.UserService", ""] {
        assert_eq!(crate::trace::check(&client, name).await.unwrap(), NOT_SERVING, "{name:?}");
    }
    health.set_serving().await;
    for name in ["user.v1.UserService", ""] {
        assert_eq!(crate::trace::check(&client, name).await.unwrap(), SERVING, "{name:?}");
    }
    health.set_not_serving().await;
    assert_eq!(crate::trace::check(&client, "user.v1.UserService").await.unwrap(), NOT_SERVING);
    assert!(!health.is_serving());
}

#[tokio::test]
async fn http_probes_read_the_same_switch() {
    let (health, _service) = Health::new("api-gateway").await;
    let addr = crate::serve_http(health.router()).await;
    assert_eq!(crate::http_get(addr, "/healthz").await.0, 200);
    assert_eq!(crate::http_get(addr, "/readyz").await.0, 503);
    health.set_serving().await;
    assert_eq!(crate::http_get(addr, "/readyz").await.0, 200);
}
