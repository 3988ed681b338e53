//! `/readyz` follows the upstreams' gRPC health, and caches it.

use crate::support::{Options, TestGateway};

const HEALTH_CHECK: &str = "/grpc.health.v1.Health/Check";

/// `READY_CACHE=0s`: every `/readyz` asks the upstreams, so a change is seen at once.
fn no_cache() -> Options {
    Options { ready_cache: "0s", ..Options::default() }
}

#[tokio::test]
async fn ready_when_both_upstreams_serve() {
    let gateway = TestGateway::with(no_cache()).await;
    let reply = gateway.get("/readyz", None).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.body["status"], "ready");
    assert_eq!(reply.body["upstreams"]["user-service"]["status"], "SERVING");
    assert_eq!(reply.body["upstreams"]["order-service"]["status"], "SERVING");
}

#[tokio::test]
async fn not_ready_names_an_upstream_that_is_not_serving() {
    let gateway = TestGateway::with(no_cache()).await;
    gateway.users.health.set_not_serving().await;
    let reply = gateway.get("/readyz", None).await;
    assert_eq!(reply.status, 503, "{}", reply.text);
    assert_eq!(reply.body["status"], "not_ready");
    assert_eq!(reply.body["not_ready"], serde_json::json!(["user-service"]));
    assert_eq!(reply.body["upstreams"]["user-service"]["status"], "NOT_SERVING");

    gateway.users.health.set_serving().await;
    assert_eq!(gateway.get("/readyz", None).await.status, 200);
}

#[tokio::test]
async fn not_ready_names_an_upstream_that_is_down() {
    let mut gateway = TestGateway::with(no_cache()).await;
    gateway.orders.stop().await;
    let reply = gateway.get("/readyz", None).await;
    assert_eq!(reply.status, 503, "{}", reply.text);
    assert_eq!(reply.body["not_ready"], serde_json::json!(["order-service"]));
    assert_eq!(reply.body["upstreams"]["order-service"]["status"], "UNREACHABLE");
    assert_eq!(reply.body["upstreams"]["user-service"]["status"], "SERVING");
}

#[tokio::test]
async fn answers_are_cached_so_probes_cannot_hammer_the_upstreams() {
    let gateway = TestGateway::with(Options { ready_cache: "10s", ..Options::default() }).await;
    let replies = concurrent_readyz(&gateway, 20).await;
    assert!(replies.iter().all(|status| *status == 200), "{replies:?}");
    assert_eq!(gateway.users.seen.calls(HEALTH_CHECK), 1);
    assert_eq!(gateway.orders.seen.calls(HEALTH_CHECK), 1);

    // Within the cache period a change upstream is not seen yet.
    gateway.users.health.set_not_serving().await;
    assert_eq!(gateway.get("/readyz", None).await.status, 200);
}

/// `n` concurrent `/readyz` requests: the first refresh holds the others until it has the
/// answer, which they then share.
async fn concurrent_readyz(gateway: &TestGateway, n: usize) -> Vec<u16> {
    let requests = (0..n).map(|_| gateway.get("/readyz", None)).collect();
    join_all(requests).await.into_iter().map(|reply| reply.status.as_u16()).collect()
}

/// Polls every future together and returns their outputs in order.
async fn join_all<F: std::future::Future>(futures: Vec<F>) -> Vec<F::Output> {
    let mut futures: Vec<_> = futures.into_iter().map(Box::pin).collect();
    let mut outputs: Vec<Option<F::Output>> = futures.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (future, output) in futures.iter_mut().zip(outputs.iter_mut()) {
            if output.is_none() {
                match future.as_mut().poll(cx) {
                    std::task::Poll::Ready(value) => *output = Some(value),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending { std::task::Poll::Pending } else { std::task::Poll::Ready(()) }
    })
    .await;
    outputs.into_iter().flatten().collect()
}
