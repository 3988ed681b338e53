//! client: the circuit breaker's states on a manual clock, the retry rule, and failing fast
//! against a real upstream that is down.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use pkg::client::{
    BreakerConfig, BreakerState, Call, CircuitBreaker, CircuitOpen, Client, ClientConfig, ManualClock, RetryPolicy,
};
use tonic::{Code, Status};

const COOL_DOWN: Duration = Duration::from_secs(10);

fn breaker(clock: &Arc<ManualClock>) -> CircuitBreaker {
    CircuitBreaker::new("user-service", BreakerConfig { failure_threshold: 3, cool_down: COOL_DOWN }, clock.clone())
}

fn fail(breaker: &CircuitBreaker, times: usize) {
    for _ in 0..times {
        breaker.try_acquire().unwrap().failure();
    }
}

#[test]
fn the_breaker_opens_after_n_consecutive_failures() {
    let clock = Arc::new(ManualClock::new());
    let breaker = breaker(&clock);
    fail(&breaker, 2);
    breaker.try_acquire().unwrap().success(); // a success resets the count
    fail(&breaker, 2);
    assert_eq!(breaker.state(), BreakerState::Closed);
    fail(&breaker, 1);
    assert_eq!(breaker.state(), BreakerState::Open);
}

#[test]
fn an_open_breaker_refuses_at_once_until_the_cool_down_ends() {
    let clock = Arc::new(ManualClock::new());
    let breaker = breaker(&clock);
    fail(&breaker, 3);
    let refusal = breaker.try_acquire().unwrap_err();
    assert_eq!(refusal, CircuitOpen { upstream: "user-service".to_owned(), retry_in: COOL_DOWN });
    let status = Status::from(refusal);
    assert_eq!(status.code(), Code::Unavailable);
    assert!(status.message().starts_with("circuit open for user-service"), "{}", status.message());

    clock.advance(COOL_DOWN - Duration::from_millis(1));
    assert_eq!(breaker.try_acquire().unwrap_err().retry_in, Duration::from_millis(1));
    assert_eq!(breaker.state(), BreakerState::Open);
}

#[test]
fn half_open_lets_exactly_one_probe_through_and_its_success_closes() {
    let clock = Arc::new(ManualClock::new());
    let breaker = breaker(&clock);
    fail(&breaker, 3);
    clock.advance(COOL_DOWN);
    let probe = breaker.try_acquire().unwrap();
    assert!(probe.is_probe());
    assert_eq!(breaker.state(), BreakerState::HalfOpen);
    assert!(breaker.try_acquire().is_err(), "a second call while the probe is out is refused");
    probe.success();
    assert_eq!(breaker.state(), BreakerState::Closed);
    let next = breaker.try_acquire().unwrap();
    assert!(!next.is_probe());
    next.success();
}

#[test]
fn a_failed_probe_reopens_for_another_cool_down() {
    let clock = Arc::new(ManualClock::new());
    let breaker = breaker(&clock);
    fail(&breaker, 3);
    clock.advance(COOL_DOWN);
    breaker.try_acquire().unwrap().failure();
    assert_eq!(breaker.state(), BreakerState::Open);
    assert_eq!(breaker.try_acquire().unwrap_err().retry_in, COOL_DOWN);
    clock.advance(COOL_DOWN);
    breaker.try_acquire().unwrap().success();
    assert_eq!(breaker.state(), BreakerState::Closed);
}

#[test]
fn an_abandoned_probe_lets_another_probe_through() {
    let clock = Arc::new(ManualClock::new());
    let breaker = breaker(&clock);
    fail(&breaker, 3);
    clock.advance(COOL_DOWN);
    drop(breaker.try_acquire().unwrap()); // the caller gave up
    assert_eq!(breaker.state(), BreakerState::HalfOpen);
    let probe = breaker.try_acquire().unwrap();
    assert!(probe.is_probe());
    probe.success();
    assert_eq!(breaker.state(), BreakerState::Closed);
}

#[test]
fn results_of_calls_admitted_before_a_transition_do_not_count_after_it() {
    let clock = Arc::new(ManualClock::new());
    let breaker = breaker(&clock);
    let slow = breaker.try_acquire().unwrap(); // started while closed
    fail(&breaker, 3);
    clock.advance(COOL_DOWN);
    breaker.try_acquire().unwrap().success(); // probe closes the circuit
    slow.failure(); // arrives late: not one of the new circuit's failures
    fail(&breaker, 2);
    assert_eq!(breaker.state(), BreakerState::Closed);
}

/// A client whose "upstream" is a closure: answers come from `answers`, in order, then OK.
struct Scripted {
    client: Client<()>,
    attempts: Arc<Mutex<Vec<tokio::time::Instant>>>,
}

fn scripted(config: ClientConfig) -> Scripted {
    Scripted { client: Client::new("user-service", (), config), attempts: Arc::default() }
}

impl Scripted {
    async fn call(&self, call: Call, answers: &[Code]) -> Result<(), Status> {
        let answers = Arc::new(Mutex::new(answers.to_vec()));
        let attempts = self.attempts.clone();
        self.client
            .call(call, "request", move |(), request: tonic::Request<&str>| {
                attempts.lock().unwrap().push(tokio::time::Instant::now());
                assert!(request.metadata().get("grpc-timeout").is_some(), "every attempt sends its deadline");
                let answer = {
                    let mut answers = answers.lock().unwrap();
                    if answers.is_empty() { Code::Ok } else { answers.remove(0) }
                };
                async move {
                    match answer {
                        Code::Ok => Ok(tonic::Response::new(())),
                        code => Err(Status::new(code, "scripted")),
                    }
                }
            })
            .await
            .map(|_| ())
    }

    fn attempts(&self) -> usize {
        self.attempts.lock().unwrap().len()
    }
}

fn config(max_attempts: u32) -> ClientConfig {
    ClientConfig {
        retry: RetryPolicy { max_attempts, ..RetryPolicy::default() },
        breaker: BreakerConfig { failure_threshold: 100, cool_down: COOL_DOWN },
        ..ClientConfig::default()
    }
}

#[tokio::test(start_paused = true)]
async fn idempotent_calls_are_retried_on_unavailable_until_they_succeed() {
    let client = scripted(config(3));
    client.call(Call::idempotent(), &[Code::Unavailable, Code::DeadlineExceeded]).await.unwrap();
    assert_eq!(client.attempts(), 3);
}

#[tokio::test(start_paused = true)]
async fn attempts_are_bounded() {
    let client = scripted(config(3));
    let error = client.call(Call::idempotent(), &[Code::Unavailable; 10]).await.unwrap_err();
    assert_eq!(error.code(), Code::Unavailable);
    assert_eq!(client.attempts(), 3);

    let client = scripted(config(3));
    client.call(Call::idempotent().max_attempts(5), &[Code::Unavailable; 10]).await.unwrap_err();
    assert_eq!(client.attempts(), 5, "a call may set its own bound");
}

#[tokio::test(start_paused = true)]
async fn calls_not_marked_idempotent_are_never_retried() {
    let client = scripted(config(3));
    let error = client.call(Call::not_idempotent(), &[Code::Unavailable]).await.unwrap_err();
    assert_eq!(error.code(), Code::Unavailable);
    assert_eq!(client.attempts(), 1);
}

#[tokio::test(start_paused = true)]
async fn answers_other_than_unavailable_or_deadline_exceeded_are_not_retried() {
    for code in [Code::NotFound, Code::InvalidArgument, Code::ResourceExhausted, Code::Internal, Code::Aborted] {
        let client = scripted(config(3));
        let error = client.call(Call::idempotent(), &[code]).await.unwrap_err();
        assert_eq!(error.code(), code);
        assert_eq!(client.attempts(), 1, "{code:?}");
    }
}

#[tokio::test(start_paused = true)]
async fn backoff_between_attempts_stays_under_its_ceiling() {
    let policy = RetryPolicy {
        max_attempts: 6,
        initial_backoff: Duration::from_millis(100),
        max_backoff: Duration::from_millis(400),
    };
    let client = scripted(ClientConfig { retry: policy, ..config(6) });
    client.call(Call::idempotent(), &[Code::Unavailable; 10]).await.unwrap_err();
    let attempts = client.attempts.lock().unwrap().clone();
    assert_eq!(attempts.len(), 6);
    for (retry, pair) in attempts.windows(2).enumerate() {
        let waited = pair[1] - pair[0];
        assert!(waited <= policy.backoff_ceiling(retry as u32), "retry {retry} waited {waited:?}");
    }
}

#[tokio::test(start_paused = true)]
async fn a_slow_attempt_times_out_and_is_retried() {
    let client = Client::new("user-service", (), ClientConfig { timeout: Duration::from_millis(200), ..config(2) });
    let attempts = Arc::new(AtomicUsize::new(0));
    let counter = attempts.clone();
    let error = client
        .call(Call::idempotent(), (), move |(), _request| {
            counter.fetch_add(1, Ordering::SeqCst);
            async {
                tokio::time::sleep(Duration::from_secs(60)).await;
                Ok(tonic::Response::new(()))
            }
        })
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::DeadlineExceeded);
    assert_eq!(error.message(), "user-service: no response within 200ms");
    assert_eq!(attempts.load(Ordering::SeqCst), 2);
}

#[tokio::test(start_paused = true)]
async fn an_opening_circuit_ends_the_retries_and_then_fails_calls_without_trying() {
    let config = ClientConfig {
        retry: RetryPolicy { max_attempts: 5, ..RetryPolicy::default() },
        breaker: BreakerConfig { failure_threshold: 2, cool_down: COOL_DOWN },
        ..ClientConfig::default()
    };
    let client = scripted(config);
    let error = client.call(Call::idempotent(), &[Code::Unavailable; 10]).await.unwrap_err();
    assert_eq!(error.message(), "scripted", "the upstream's error, not the breaker's");
    assert_eq!(client.attempts(), 2);

    let error = client.call(Call::idempotent(), &[]).await.unwrap_err();
    assert_eq!(error.code(), Code::Unavailable);
    assert!(error.message().starts_with("circuit open for user-service"));
    assert_eq!(client.attempts(), 2, "no attempt while open");
}

#[tokio::test]
async fn a_down_upstream_fails_fast_once_the_circuit_is_open() {
    let addr = crate::closed_port().await;
    let config = ClientConfig {
        retry: RetryPolicy { max_attempts: 1, ..RetryPolicy::default() },
        breaker: BreakerConfig { failure_threshold: 2, cool_down: Duration::from_secs(30) },
        ..ClientConfig::default()
    };
    let client = Client::connect_lazy(
        "user-service",
        &format!("http://{addr}"),
        config,
        tonic_health::pb::health_client::HealthClient::new,
    )
    .unwrap();
    let check = || {
        client.call(Call::idempotent(), tonic_health::pb::HealthCheckRequest::default(), |mut c, r| async move {
            c.check(r).await
        })
    };
    for _ in 0..2 {
        let error = check().await.unwrap_err();
        assert_eq!(error.code(), Code::Unavailable, "{error:?}");
    }
    assert_eq!(client.breaker().state(), BreakerState::Open);

    let started = Instant::now();
    let error = check().await.unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(1), "took {:?}", started.elapsed());
    assert_eq!(error.code(), Code::Unavailable);
    assert!(error.message().starts_with("circuit open for user-service"), "{}", error.message());
}

#[test]
fn client_addresses_are_checked_up_front() {
    let make = |_channel| ();
    let error = Client::connect_lazy("user-service", "user-service:50051", ClientConfig::default(), make).unwrap_err();
    assert_eq!(
        error.to_string(),
        "user-service: invalid address \"user-service:50051\": expected http://host:port (example: http://user-service:50051)"
    );
    let error =
        Client::connect_lazy("user-service", "https://user-service:50051", ClientConfig::default(), make).unwrap_err();
    assert!(error.to_string().contains("https needs TLS"));
}

/// Answers UNAVAILABLE to the first `failures` requests, like a server still warming up.
#[derive(Clone)]
struct Flaky<S> {
    inner: S,
    failures: Arc<AtomicUsize>,
}

impl<S> tower::Service<http::Request<tonic::body::Body>> for Flaky<S>
where
    S: tower::Service<http::Request<tonic::body::Body>, Response = http::Response<tonic::body::Body>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<tonic::body::Body>) -> Self::Future {
        let fail = self.failures.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok();
        if fail {
            Box::pin(async { Ok(Status::unavailable("warming up").into_http()) })
        } else {
            Box::pin(self.inner.call(request))
        }
    }
}

#[tokio::test]
async fn retries_reach_a_real_server_that_recovers() {
    let (health, service) = pkg::health::Health::new("user.v1.UserService").await;
    health.set_serving().await;
    let (listener, addr) = crate::loopback().await;
    let failures = Arc::new(AtomicUsize::new(2));
    let flaky = {
        let failures = failures.clone();
        tower::layer::layer_fn(move |inner| Flaky { inner, failures: failures.clone() })
    };
    tokio::spawn(async move {
        tonic::transport::Server::builder()
            .layer(flaky)
            .add_service(service)
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener))
            .await
            .unwrap()
    });
    let client = crate::trace::health_client(addr);
    assert_eq!(crate::trace::check(&client, "user.v1.UserService").await.unwrap(), 1);
    assert_eq!(failures.load(Ordering::SeqCst), 0, "both failures were retried through");
}
