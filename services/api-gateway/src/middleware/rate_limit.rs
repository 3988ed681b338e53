//! Per-client rate limiting with token buckets.
//!
//! Each client has a bucket of `RATE_LIMIT_BURST` tokens refilled at `RATE_LIMIT_RPS` tokens
//! per second; a request takes one token, and a request that finds the bucket empty gets 429
//! with `Retry-After` (whole seconds, rounded up) and a JSON error.
//!
//! A client is the token's subject on authenticated routes (so one client behind many
//! addresses shares one bucket), and the peer IP address on public ones. `X-Forwarded-For` is
//! not trusted: the gateway is the public entry, so the peer is the client, and the header is
//! whatever the client chose to write.
//!
//! Memory is bounded, and every request costs O(1) however many clients there are: the buckets
//! are a least-recently-used cache of at most `max_clients`, so a flood of new clients pushes out
//! the longest-idle buckets one by one. (A bucket idle long enough to have refilled is the same as
//! a new one: forgetting it changes nothing a client sees.)

use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use lru::LruCache;

use axum::extract::{ConnectInfo, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::auth::Subject;
use crate::config::RateLimit;

/// Buckets kept at most; beyond it the longest-idle bucket is dropped. At ~150 bytes a
/// bucket this bounds the limiter to about 15 MB.
pub const DEFAULT_MAX_CLIENTS: usize = 100_000;

/// Who a bucket belongs to. Subjects and addresses are kept apart so that a token whose
/// subject is "10.0.0.1" cannot drain that address's bucket.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ClientKey {
    /// An authenticated client: the token's `sub`.
    Subject(String),
    /// An anonymous client: the peer address.
    Ip(IpAddr),
}

#[derive(Clone, Copy, Debug)]
struct Bucket {
    tokens: f64,
    last: Instant,
}

/// Token buckets for every client seen recently. Cheap to clone (shared state).
#[derive(Clone, Debug)]
pub struct RateLimiter {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    rate: f64,
    burst: f64,
    buckets: Mutex<LruCache<ClientKey, Bucket>>,
}

impl RateLimiter {
    /// A limiter with [`DEFAULT_MAX_CLIENTS`].
    pub fn new(limit: RateLimit) -> Self {
        Self::with_max_clients(limit, DEFAULT_MAX_CLIENTS)
    }

    /// A limiter keeping at most `max_clients` buckets.
    pub fn with_max_clients(limit: RateLimit, max_clients: usize) -> Self {
        let capacity = NonZeroUsize::new(max_clients).unwrap_or(NonZeroUsize::MIN);
        RateLimiter {
            inner: Arc::new(Inner {
                rate: limit.rps,
                burst: f64::from(limit.burst.max(1)),
                buckets: Mutex::new(LruCache::new(capacity)),
            }),
        }
    }

    /// Takes a token for `key` at `now`: `Ok` if the request may go on, else how long until
    /// the next token.
    pub fn check(&self, key: &ClientKey, now: Instant) -> Result<(), Duration> {
        let inner = &*self.inner;
        // The critical section is a hash lookup and some arithmetic; a poisoned lock only
        // means another request panicked mid-update, and the buckets are still usable.
        let mut buckets = inner.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if !buckets.contains(key) {
            // At the cap, the least recently used bucket makes room.
            buckets.push(key.clone(), Bucket { tokens: inner.burst, last: now });
        }
        let bucket = buckets.get_mut(key).expect("just found or inserted");
        let elapsed = now.saturating_duration_since(bucket.last).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * inner.rate).min(inner.burst);
        bucket.last = now.max(bucket.last);
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - bucket.tokens) / inner.rate))
        }
    }

    /// How many clients have a bucket.
    pub fn clients(&self) -> usize {
        self.inner.buckets.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

/// Middleware: one token per request from the client's bucket, or 429.
///
/// On protected routes it must run after authentication, which provides the [`Subject`];
/// without one the client is the peer address (from `ConnectInfo`, which the server provides
/// by serving with `into_make_service_with_connect_info`).
pub async fn limit(State(limiter): State<RateLimiter>, request: Request, next: Next) -> Response {
    let key = match request.extensions().get::<Subject>() {
        Some(Subject(subject)) => ClientKey::Subject(subject.clone()),
        None => match request.extensions().get::<ConnectInfo<SocketAddr>>() {
            Some(ConnectInfo(peer)) => ClientKey::Ip(peer.ip().to_canonical()),
            // Only a router served without connect info gets here (some tests): one shared
            // anonymous bucket is the safe reading.
            None => ClientKey::Ip(IpAddr::from([0, 0, 0, 0])),
        },
    };
    match limiter.check(&key, Instant::now()) {
        Ok(()) => next.run(request).await,
        Err(retry_after) => {
            tracing::info!(client = ?key, retry_after_ms = retry_after.as_millis() as u64, "request refused: rate limited");
            pkg::Error::resource_exhausted("rate limit exceeded, retry later", Some(retry_after)).into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter(rps: f64, burst: u32) -> RateLimiter {
        RateLimiter::new(RateLimit { rps, burst })
    }

    fn alice() -> ClientKey {
        ClientKey::Subject("alice".into())
    }

    #[test]
    fn a_burst_is_allowed_then_requests_wait_for_the_refill() {
        let limiter = limiter(2.0, 3);
        let start = Instant::now();
        for _ in 0..3 {
            assert_eq!(limiter.check(&alice(), start), Ok(()));
        }
        let wait = limiter.check(&alice(), start).unwrap_err();
        assert_eq!(wait, Duration::from_millis(500));
        // Refused requests take nothing: a quarter second later half a token is left to wait for.
        let wait = limiter.check(&alice(), start + Duration::from_millis(250)).unwrap_err();
        assert_eq!(wait, Duration::from_millis(250));
        assert_eq!(limiter.check(&alice(), start + Duration::from_millis(500)), Ok(()));
        assert!(limiter.check(&alice(), start + Duration::from_millis(500)).is_err());
    }

    #[test]
    fn a_bucket_never_holds_more_than_the_burst() {
        let limiter = limiter(100.0, 2);
        let start = Instant::now();
        let later = start + Duration::from_secs(60);
        assert!(limiter.check(&alice(), start).is_ok());
        for _ in 0..2 {
            assert!(limiter.check(&alice(), later).is_ok());
        }
        assert!(limiter.check(&alice(), later).is_err());
    }

    #[test]
    fn clients_have_separate_buckets() {
        let limiter = limiter(1.0, 1);
        let now = Instant::now();
        let bob = ClientKey::Subject("bob".into());
        let ip = ClientKey::Ip("192.0.2.1".parse().unwrap());
        let same_text = ClientKey::Subject("192.0.2.1".into());
        assert!(limiter.check(&alice(), now).is_ok());
        assert!(limiter.check(&alice(), now).is_err());
        assert!(limiter.check(&bob, now).is_ok());
        assert!(limiter.check(&ip, now).is_ok());
        assert!(limiter.check(&same_text, now).is_ok());
        assert!(limiter.check(&ip, now).is_err());
    }

    #[test]
    fn a_flood_of_new_clients_evicts_the_longest_idle_not_the_active() {
        let limiter = RateLimiter::with_max_clients(RateLimit { rps: 1.0, burst: 1 }, 3);
        let start = Instant::now();
        assert!(limiter.check(&alice(), start).is_ok());
        for i in 0..1000u16 {
            let key = ClientKey::Ip(IpAddr::from([198, 51, 100, (i % 250) as u8]));
            let _ = limiter.check(&key, start);
            // Alice keeps asking: her bucket stays the most recently used, and stays empty.
            assert!(limiter.check(&alice(), start).is_err(), "alice's bucket survived the flood");
        }
        assert_eq!(limiter.clients(), 3);
    }

    #[test]
    fn the_number_of_buckets_is_capped() {
        let limiter = RateLimiter::with_max_clients(RateLimit { rps: 1.0, burst: 1 }, 10);
        let start = Instant::now();
        for i in 0..50u8 {
            let key = ClientKey::Ip(IpAddr::from([198, 51, 100, i]));
            assert!(limiter.check(&key, start + Duration::from_millis(u64::from(i))).is_ok());
        }
        assert_eq!(limiter.clients(), 10);
        // The most recent clients are the ones kept: the last one is still limited.
        let last = ClientKey::Ip(IpAddr::from([198, 51, 100, 49]));
        assert!(limiter.check(&last, start + Duration::from_millis(49)).is_err());
    }

    #[tokio::test]
    async fn the_middleware_answers_429_with_retry_after_and_a_json_error() {
        use axum::Router;
        use axum::body::Body;
        use axum::routing::get;
        use tower::ServiceExt as _;

        let app = Router::new()
            .route("/", get(|| async { "ok" }))
            .route_layer(axum::middleware::from_fn_with_state(limiter(0.5, 1), limit));
        let request = || http::Request::get("/").body(Body::empty()).unwrap();
        assert_eq!(app.clone().oneshot(request()).await.unwrap().status(), 200);
        let response = app.oneshot(request()).await.unwrap();
        assert_eq!(response.status(), http::StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(response.headers()[http::header::RETRY_AFTER], "2");
        let body = http_body_util::BodyExt::collect(response.into_body()).await.unwrap().to_bytes();
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body["error"]["code"], "RESOURCE_EXHAUSTED");
    }
}
