//! gRPC calls to an upstream that fail fast and recover: per-call timeouts, bounded retries
//! with backoff for idempotent calls, and one circuit breaker per upstream.
//!
//! ```no_run
//! # use pkg::client::{Call, Client, ClientConfig};
//! # #[derive(Clone)] struct UserServiceClient<T>(T);
//! # impl<T> UserServiceClient<T> { fn new(t: T) -> Self { Self(t) }
//! #   async fn get_user(&mut self, r: tonic::Request<u32>) -> Result<tonic::Response<String>, tonic::Status> { unimplemented!() } }
//! # async fn f() -> Result<(), pkg::Error> {
//! let users = Client::connect_lazy("user-service", "http://user-service:50051", ClientConfig::default(), UserServiceClient::new)?;
//! let user = users
//!     .call(Call::idempotent(), 42, |mut client, request| async move { client.get_user(request).await })
//!     .await?
//!     .into_inner();
//! # Ok(()) }
//! ```
//!
//! # When a call is retried
//!
//! Only when all of these hold:
//!
//! 1. the call is marked [`Call::idempotent`]: a write whose connection broke may have been
//!    applied already, so a non-idempotent call is made exactly once, whatever the error;
//! 2. the attempt failed with UNAVAILABLE or DEADLINE_EXCEEDED: the upstream did not answer
//!    (unreachable, restarting, too slow). Any other code is an answer, and asking again gets
//!    the same one. RESOURCE_EXHAUSTED is not retried either: the upstream asked for less
//!    traffic, and retrying would add more; the caller passes it on (HTTP 429 with Retry-After);
//! 3. fewer than `max_attempts` attempts were made (3 by default, the first included);
//! 4. the circuit breaker lets the next attempt through.
//!
//! Between attempts the client sleeps a random time between zero and
//! `min(max_backoff, initial_backoff * 2^retry)` ("full jitter"), so that clients that failed
//! together do not retry together.
//!
//! # The circuit breaker
//!
//! One per upstream, shared by every clone of a [`Client`]. Closed, calls go through; after
//! `failure_threshold` consecutive attempts fail with UNAVAILABLE or DEADLINE_EXCEEDED it opens,
//! and calls fail at once with UNAVAILABLE `"circuit open for <upstream>"`, so callers answer
//! quickly instead of each waiting out a timeout. After `cool_down` it is half-open: the next
//! call goes through as the one probe, others are still refused; the probe's success closes the
//! circuit, its failure opens it for another cool-down. Other codes count as successes: a
//! NOT_FOUND proves the upstream is up. Time comes from a [`Clock`], so tests can move it.

use std::fmt;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rand::Rng;
use tonic::transport::Endpoint;
use tonic::{Code, Status};

use crate::trace::{Inject, InjectLayer};

/// A source of the current time, so that breaker transitions can be tested without sleeping.
pub trait Clock: Send + Sync + fmt::Debug + 'static {
    /// Now.
    fn now(&self) -> Instant;
}

/// The real monotonic clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        Instant::now()
    }
}

/// A clock that moves only when told to, for tests.
#[derive(Debug)]
pub struct ManualClock {
    start: Instant,
    elapsed: Mutex<Duration>,
}

impl ManualClock {
    /// A clock standing at an arbitrary instant.
    pub fn new() -> Self {
        ManualClock { start: Instant::now(), elapsed: Mutex::new(Duration::ZERO) }
    }

    /// Moves the clock forward.
    pub fn advance(&self, by: Duration) {
        *self.elapsed.lock().unwrap_or_else(|e| e.into_inner()) += by;
    }
}

impl Default for ManualClock {
    fn default() -> Self {
        ManualClock::new()
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Instant {
        self.start + *self.elapsed.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// When the circuit breaker opens and how long it stays open.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BreakerConfig {
    /// Consecutive failed attempts that open the circuit.
    pub failure_threshold: u32,
    /// How long the circuit stays open before one probe is let through.
    pub cool_down: Duration,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        BreakerConfig { failure_threshold: 5, cool_down: Duration::from_secs(5) }
    }
}

/// The circuit breaker's state, as seen from outside.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BreakerState {
    /// Calls go through.
    Closed,
    /// Calls fail at once. (Past the cool-down it still reads Open until a call arrives and
    /// becomes the probe.)
    Open,
    /// One probe call is being let through; others fail at once.
    HalfOpen,
}

/// A circuit breaker for one upstream; see the module documentation.
pub struct CircuitBreaker {
    upstream: String,
    config: BreakerConfig,
    clock: Arc<dyn Clock>,
    state: Mutex<State>,
}

struct State {
    mode: Mode,
    consecutive_failures: u32,
    // Bumped on every transition, so that a call admitted before one does not count after it:
    // a slow call started while closed must not re-open a circuit that a probe just closed.
    generation: u64,
}

#[derive(Clone, Copy)]
enum Mode {
    Closed,
    Open { since: Instant },
    HalfOpen { probe_in_flight: bool },
}

impl fmt::Debug for CircuitBreaker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CircuitBreaker")
            .field("upstream", &self.upstream)
            .field("config", &self.config)
            .field("state", &self.state())
            .finish()
    }
}

/// A call refused because the circuit is open.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("circuit open for {upstream} (next probe in {}ms)", retry_in.as_millis())]
pub struct CircuitOpen {
    /// The upstream's name.
    pub upstream: String,
    /// How long until a probe is let through; zero while a probe is in flight.
    pub retry_in: Duration,
}

impl From<CircuitOpen> for Status {
    fn from(open: CircuitOpen) -> Status {
        Status::unavailable(open.to_string())
    }
}

impl CircuitBreaker {
    /// A closed breaker for `upstream`.
    pub fn new(upstream: impl Into<String>, config: BreakerConfig, clock: Arc<dyn Clock>) -> Self {
        CircuitBreaker {
            upstream: upstream.into(),
            config,
            clock,
            state: Mutex::new(State { mode: Mode::Closed, consecutive_failures: 0, generation: 0 }),
        }
    }

    /// The current state.
    pub fn state(&self) -> BreakerState {
        match self.lock().mode {
            Mode::Closed => BreakerState::Closed,
            Mode::Open { .. } => BreakerState::Open,
            Mode::HalfOpen { .. } => BreakerState::HalfOpen,
        }
    }

    /// Asks to make one attempt: a permit to report its result with, or a refusal.
    pub fn try_acquire(&self) -> Result<Permit<'_>, CircuitOpen> {
        let mut state = self.lock();
        let generation = state.generation;
        match state.mode {
            Mode::Closed => Ok(Permit { breaker: self, generation, probe: false, settled: false }),
            Mode::Open { since } => {
                let now = self.clock.now();
                let reopen = since + self.config.cool_down;
                if now < reopen {
                    return Err(self.refusal(reopen - now));
                }
                state.generation += 1;
                state.mode = Mode::HalfOpen { probe_in_flight: true };
                tracing::info!(target: "pkg::client", upstream = %self.upstream, "circuit half-open: letting one probe call through");
                Ok(Permit { breaker: self, generation: state.generation, probe: true, settled: false })
            }
            Mode::HalfOpen { probe_in_flight: true } => Err(self.refusal(Duration::ZERO)),
            Mode::HalfOpen { probe_in_flight: false } => {
                state.mode = Mode::HalfOpen { probe_in_flight: true };
                Ok(Permit { breaker: self, generation, probe: true, settled: false })
            }
        }
    }

    fn refusal(&self, retry_in: Duration) -> CircuitOpen {
        CircuitOpen { upstream: self.upstream.clone(), retry_in }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // The state is consistent after every statement that changes it, so a panic elsewhere
        // while it was held leaves nothing half-done.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn settle(&self, generation: u64, failed: bool) {
        let mut state = self.lock();
        if state.generation != generation {
            return;
        }
        match (state.mode, failed) {
            (Mode::Closed, false) => state.consecutive_failures = 0,
            (Mode::Closed, true) => {
                state.consecutive_failures += 1;
                if state.consecutive_failures >= self.config.failure_threshold {
                    state.generation += 1;
                    state.mode = Mode::Open { since: self.clock.now() };
                    tracing::warn!(
                        target: "pkg::client",
                        upstream = %self.upstream,
                        failures = state.consecutive_failures,
                        cool_down_ms = self.config.cool_down.as_millis() as u64,
                        "circuit opened: calls fail fast until a probe succeeds"
                    );
                }
            }
            (Mode::HalfOpen { .. }, false) => {
                state.generation += 1;
                state.consecutive_failures = 0;
                state.mode = Mode::Closed;
                tracing::info!(target: "pkg::client", upstream = %self.upstream, "circuit closed: probe succeeded");
            }
            (Mode::HalfOpen { .. }, true) => {
                state.generation += 1;
                state.mode = Mode::Open { since: self.clock.now() };
                tracing::warn!(target: "pkg::client", upstream = %self.upstream, "circuit re-opened: probe failed");
            }
            // Open bumps the generation on entry, so no permit of the current one exists.
            (Mode::Open { .. }, _) => {}
        }
    }

    fn abandon_probe(&self, generation: u64) {
        let mut state = self.lock();
        if state.generation == generation {
            if let Mode::HalfOpen { probe_in_flight: true } = state.mode {
                state.mode = Mode::HalfOpen { probe_in_flight: false };
            }
        }
    }
}

/// Leave to make one attempt; report its result with [`success`](Permit::success) or
/// [`failure`](Permit::failure). Dropped unreported (the call was cancelled), it counts as
/// neither, and a half-open breaker lets another probe through.
#[must_use = "report the attempt's result, or the breaker learns nothing"]
#[derive(Debug)]
pub struct Permit<'a> {
    breaker: &'a CircuitBreaker,
    generation: u64,
    probe: bool,
    settled: bool,
}

impl Permit<'_> {
    /// The upstream answered.
    pub fn success(self) {
        self.record(false);
    }

    /// The upstream did not answer (unreachable, too slow).
    pub fn failure(self) {
        self.record(true);
    }

    /// Reports a failure when `failed`, a success otherwise.
    pub fn record(mut self, failed: bool) {
        self.settled = true;
        self.breaker.settle(self.generation, failed);
    }

    /// Whether this attempt is the half-open probe.
    pub fn is_probe(&self) -> bool {
        self.probe
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        if !self.settled && self.probe {
            self.breaker.abandon_probe(self.generation);
        }
    }
}

/// How many attempts, and how long to wait between them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts at most, the first included; 1 means no retry.
    pub max_attempts: u32,
    /// The backoff ceiling before the first retry; it doubles for each retry after.
    pub initial_backoff: Duration,
    /// The backoff ceiling never exceeds this.
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy { max_attempts: 3, initial_backoff: Duration::from_millis(50), max_backoff: Duration::from_secs(1) }
    }
}

impl RetryPolicy {
    /// The longest wait before retry number `retry` (0 for the first retry):
    /// `min(max_backoff, initial_backoff * 2^retry)`.
    pub fn backoff_ceiling(&self, retry: u32) -> Duration {
        let factor = 2u32.saturating_pow(retry);
        self.initial_backoff.saturating_mul(factor).min(self.max_backoff)
    }

    /// A random wait in `[0, backoff_ceiling(retry)]` (full jitter).
    pub fn backoff(&self, retry: u32) -> Duration {
        self.backoff_with(retry, &mut rand::rng())
    }

    /// [`backoff`](RetryPolicy::backoff) with a given random source.
    pub fn backoff_with(&self, retry: u32, rng: &mut impl Rng) -> Duration {
        let ceiling = self.backoff_ceiling(retry).as_nanos().min(u64::MAX as u128) as u64;
        Duration::from_nanos(rng.random_range(0..=ceiling))
    }
}

/// Whether an attempt that failed with `code` may be retried, if the call is idempotent.
pub fn is_retryable(code: Code) -> bool {
    matches!(code, Code::Unavailable | Code::DeadlineExceeded)
}

/// Whether an attempt that failed with `code` counts against the upstream in the breaker.
pub fn is_upstream_failure(code: Code) -> bool {
    matches!(code, Code::Unavailable | Code::DeadlineExceeded)
}

/// Settings for calls to one upstream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientConfig {
    /// How long one attempt may take; sent to the server as `grpc-timeout` too.
    pub timeout: Duration,
    /// How long connecting may take; the channel connects lazily, on the first call.
    pub connect_timeout: Duration,
    /// Retries of idempotent calls.
    pub retry: RetryPolicy,
    /// The upstream's circuit breaker.
    pub breaker: BreakerConfig,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            timeout: Duration::from_secs(2),
            connect_timeout: Duration::from_secs(1),
            retry: RetryPolicy::default(),
            breaker: BreakerConfig::default(),
        }
    }
}

/// How one call may be made; [`Call::idempotent`] or [`Call::not_idempotent`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Call {
    idempotent: bool,
    timeout: Option<Duration>,
    max_attempts: Option<u32>,
}

impl Call {
    /// A call that may safely be repeated (reads, upserts by key): retried when the upstream
    /// did not answer.
    pub fn idempotent() -> Self {
        Call { idempotent: true, timeout: None, max_attempts: None }
    }

    /// A call made exactly once (creates, payments).
    pub fn not_idempotent() -> Self {
        Call { idempotent: false, timeout: None, max_attempts: None }
    }

    /// Overrides the client's per-attempt timeout for this call.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Overrides the client's attempt bound for this call (idempotent calls only).
    pub fn max_attempts(mut self, max_attempts: u32) -> Self {
        self.max_attempts = Some(max_attempts);
        self
    }
}

/// The channel [`Client::connect_lazy`] gives to generated clients: a tonic channel that
/// sends the current trace context with every call.
pub type TracedChannel = Inject<tonic::transport::Channel>;

/// A client's address could not be used.
#[derive(Debug, thiserror::Error)]
#[error("{upstream}: invalid address {uri:?}: {reason} (example: http://{upstream}:50051)")]
pub struct InvalidAddress {
    /// The upstream's name.
    pub upstream: String,
    /// The address as given.
    pub uri: String,
    /// What is wrong with it.
    pub reason: String,
}

impl From<InvalidAddress> for crate::Error {
    fn from(error: InvalidAddress) -> crate::Error {
        crate::Error::internal(error.to_string())
    }
}

/// A generated tonic client `C` to one upstream, called through [`Client::call`]. Clones share
/// the breaker.
#[derive(Clone)]
pub struct Client<C> {
    upstream: Arc<str>,
    inner: C,
    breaker: Arc<CircuitBreaker>,
    config: ClientConfig,
}

impl<C> fmt::Debug for Client<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client").field("upstream", &self.upstream).field("config", &self.config).finish_non_exhaustive()
    }
}

impl<C> Client<C> {
    /// A client over a lazily connecting channel to `uri`: nothing is dialled until the first
    /// call, so a service starts while its upstream is still down. `make` is the generated
    /// client's constructor, like `UserServiceClient::new`. Needs a Tokio runtime.
    pub fn connect_lazy(
        upstream: &str,
        uri: &str,
        config: ClientConfig,
        make: impl FnOnce(TracedChannel) -> C,
    ) -> Result<Self, InvalidAddress> {
        let invalid = |reason: String| InvalidAddress { upstream: upstream.to_owned(), uri: uri.to_owned(), reason };
        let parsed: http::Uri = uri.parse().map_err(|e: http::uri::InvalidUri| invalid(e.to_string()))?;
        match parsed.scheme_str() {
            Some("http") => {}
            Some("https") => {
                return Err(invalid("https needs TLS, which services are built without".to_owned()));
            }
            _ => return Err(invalid("expected http://host:port".to_owned())),
        }
        let channel = Endpoint::from(parsed)
            .connect_timeout(config.connect_timeout)
            .tcp_nodelay(true)
            // Pings find a dead connection (a restarted pod) before a call waits on it.
            .http2_keep_alive_interval(Duration::from_secs(30))
            .keep_alive_timeout(Duration::from_secs(10))
            .connect_lazy();
        let channel = tower::Layer::layer(&InjectLayer::new(), channel);
        Ok(Client::new(upstream, make(channel), config))
    }

    /// A client over any `inner` client; its breaker uses the system clock.
    pub fn new(upstream: &str, inner: C, config: ClientConfig) -> Self {
        let breaker = CircuitBreaker::new(upstream, config.breaker, Arc::new(SystemClock));
        Client { upstream: upstream.into(), inner, breaker: Arc::new(breaker), config }
    }

    /// Uses `breaker` instead of this client's own: to share one between clients of the same
    /// upstream, or to drive it with a [`ManualClock`] in tests.
    pub fn with_breaker(mut self, breaker: Arc<CircuitBreaker>) -> Self {
        self.breaker = breaker;
        self
    }

    /// The upstream's circuit breaker.
    pub fn breaker(&self) -> &Arc<CircuitBreaker> {
        &self.breaker
    }

    /// The generated client, for calls that bypass the policy (streaming).
    pub fn inner(&self) -> &C {
        &self.inner
    }

    /// The upstream's name.
    pub fn upstream(&self) -> &str {
        &self.upstream
    }

    /// Makes a unary call: `f` gets a clone of the generated client and the request for one
    /// attempt (with its `grpc-timeout` set) and makes the call, like
    /// `|mut client, request| async move { client.get_user(request).await }`.
    pub async fn call<M, R, F, Fut>(&self, call: Call, message: M, mut f: F) -> Result<tonic::Response<R>, Status>
    where
        C: Clone,
        M: Clone,
        F: FnMut(C, tonic::Request<M>) -> Fut,
        Fut: Future<Output = Result<tonic::Response<R>, Status>>,
    {
        let timeout = call.timeout.unwrap_or(self.config.timeout);
        let max_attempts =
            if call.idempotent { call.max_attempts.unwrap_or(self.config.retry.max_attempts).max(1) } else { 1 };
        let mut attempt = 0;
        let mut last_failure: Option<Status> = None;
        loop {
            attempt += 1;
            let permit = match self.breaker.try_acquire() {
                Ok(permit) => permit,
                // Mid-retry, the upstream's own error says more than "circuit open" does.
                Err(open) => return Err(last_failure.unwrap_or_else(|| open.into())),
            };
            let mut request = tonic::Request::new(message.clone());
            request.set_timeout(timeout);
            let status = match tokio::time::timeout(timeout, f(self.inner.clone(), request)).await {
                Ok(Ok(response)) => {
                    permit.success();
                    return Ok(response);
                }
                Ok(Err(status)) => deadline_exceeded_as_such(status),
                Err(_elapsed) => Status::deadline_exceeded(format!(
                    "{}: no response within {}ms",
                    self.upstream,
                    timeout.as_millis()
                )),
            };
            permit.record(is_upstream_failure(status.code()));
            if attempt >= max_attempts || !is_retryable(status.code()) {
                return Err(status);
            }
            let delay = self.config.retry.backoff(attempt - 1);
            tracing::debug!(
                target: "pkg::client",
                upstream = %self.upstream,
                attempt,
                code = crate::body::grpc_code_name(status.code()),
                message = status.message(),
                delay_ms = delay.as_millis() as u64,
                "retrying call"
            );
            last_failure = Some(status);
            tokio::time::sleep(delay).await;
        }
    }
}

/// A tonic server whose `grpc-timeout` expires answers CANCELLED "Timeout expired", where gRPC
/// means DEADLINE_EXCEEDED. Left as CANCELLED, the call would be neither retried nor counted
/// against the breaker, so an upstream that hangs would never open the circuit.
pub fn deadline_exceeded_as_such(status: Status) -> Status {
    if status.code() == Code::Cancelled && status.message() == "Timeout expired" {
        Status::deadline_exceeded(format!("no response before the deadline ({})", status.message()))
    } else {
        status
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_expired_server_deadline_is_a_deadline_exceeded() {
        let status = deadline_exceeded_as_such(Status::cancelled("Timeout expired"));
        assert_eq!(status.code(), Code::DeadlineExceeded);
        assert!(is_upstream_failure(status.code()) && is_retryable(status.code()));
        let other = deadline_exceeded_as_such(Status::cancelled("the client went away"));
        assert_eq!(other.code(), Code::Cancelled);
    }

    #[test]
    fn backoff_ceiling_doubles_up_to_the_cap() {
        let policy = RetryPolicy {
            max_attempts: 10,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(1000),
        };
        let ceilings: Vec<u128> = (0..6).map(|r| policy.backoff_ceiling(r).as_millis()).collect();
        assert_eq!(ceilings, [100, 200, 400, 800, 1000, 1000]);
        assert_eq!(policy.backoff_ceiling(200), Duration::from_millis(1000));
    }

    #[test]
    fn backoff_stays_within_zero_and_the_ceiling() {
        let policy = RetryPolicy::default();
        let mut rng = rand::rng();
        for retry in 0..8 {
            for _ in 0..200 {
                assert!(policy.backoff_with(retry, &mut rng) <= policy.backoff_ceiling(retry));
            }
        }
    }

    #[test]
    fn retryable_codes_are_the_ones_where_the_upstream_did_not_answer() {
        assert!(is_retryable(Code::Unavailable));
        assert!(is_retryable(Code::DeadlineExceeded));
        for code in [Code::ResourceExhausted, Code::NotFound, Code::Internal, Code::InvalidArgument, Code::Aborted] {
            assert!(!is_retryable(code), "{code:?}");
        }
    }
}
