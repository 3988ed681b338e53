//! Whether a user exists, asked of the user-service (`user.v1.UserService/GetUser`) through
//! pkg's resilient client: a per-attempt timeout, one retry when the user-service did not
//! answer, and a circuit breaker that makes calls fail at once while it is down.
//!
//! How long a CreateOrder can wait on the user-service, with `USER_SERVICE_TIMEOUT` = T:
//! - user-service answers: its answer time.
//! - user-service refuses connections (stopped, restarting): a few milliseconds per attempt.
//! - user-service hangs: at most 2 × T plus a backoff of at most 50 ms (two attempts), about
//!   1 s with the default T of 500 ms.
//! - after 5 consecutive failed attempts the breaker opens: UNAVAILABLE at once, without a
//!   call, for 5 s; then one probe call decides whether it closes again.

use std::future::Future;
use std::time::Duration;

use pkg::Error;
use pkg::client::{BreakerConfig, Call, Client, ClientConfig, InvalidAddress, RetryPolicy, TracedChannel};
use tonic::Code;
use uuid::Uuid;

use crate::proto::user::v1::GetUserRequest;
use crate::proto::user::v1::user_service_client::UserServiceClient;

/// The upstream's name in logs, errors and breaker messages.
pub const UPSTREAM: &str = "user-service";

/// The question the order-service asks about users.
pub trait UserDirectory: Send + Sync + 'static {
    /// `Ok(true)` if a user has this id, `Ok(false)` if none has; UNAVAILABLE when the
    /// directory cannot say.
    fn user_exists(&self, id: Uuid) -> impl Future<Output = Result<bool, Error>> + Send;
}

/// [`UserDirectory`] over the user-service's gRPC API.
#[derive(Clone, Debug)]
pub struct GrpcUserDirectory {
    client: Client<UserServiceClient<TracedChannel>>,
}

impl GrpcUserDirectory {
    /// A directory calling `addr` (`http://user-service:50051`), each attempt bounded by
    /// `timeout`. Nothing is dialled before the first call, so the order-service starts while
    /// the user-service is still coming up.
    pub fn connect_lazy(addr: &str, timeout: Duration) -> Result<Self, InvalidAddress> {
        let config = ClientConfig {
            timeout,
            connect_timeout: timeout,
            retry: RetryPolicy {
                max_attempts: 2,
                initial_backoff: Duration::from_millis(50),
                max_backoff: Duration::from_millis(200),
            },
            breaker: BreakerConfig { failure_threshold: 5, cool_down: Duration::from_secs(5) },
        };
        let client = Client::connect_lazy(UPSTREAM, addr, config, UserServiceClient::new)?;
        Ok(GrpcUserDirectory { client })
    }

    /// The underlying client, to inspect its breaker.
    pub fn client(&self) -> &Client<UserServiceClient<TracedChannel>> {
        &self.client
    }
}

impl UserDirectory for GrpcUserDirectory {
    async fn user_exists(&self, id: Uuid) -> Result<bool, Error> {
        let request = GetUserRequest { id: id.to_string() };
        let result = self
            .client
            .call(Call::idempotent(), request, |mut client, request| async move { client.get_user(request).await })
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(status) => match status.code() {
                Code::NotFound => Ok(false),
                // The user-service did not answer, or shed load: the caller may retry later.
                Code::Unavailable | Code::DeadlineExceeded | Code::ResourceExhausted | Code::Cancelled => {
                    Err(Error::unavailable(format!(
                        "cannot check the user: {UPSTREAM} is unavailable ({}), try again",
                        status.message()
                    ))
                    .with_source(status))
                }
                // Anything else is a contract mismatch between the two services: a bug.
                code => {
                    Err(Error::internal(format!("{UPSTREAM} answered GetUser with {code:?}: {}", status.message()))
                        .with_source(status))
                }
            },
        }
    }
}

/// A [`UserDirectory`] for tests: a set of user ids, and a switch to make it unavailable.
pub mod fake {
    use std::collections::HashSet;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};

    use pkg::Error;
    use uuid::Uuid;

    use super::UserDirectory;

    /// Users in a set. Clones share them.
    #[derive(Clone, Debug, Default)]
    pub struct FakeUserDirectory {
        users: Arc<Mutex<HashSet<Uuid>>>,
        down: Arc<AtomicBool>,
        calls: Arc<AtomicUsize>,
    }

    impl FakeUserDirectory {
        /// Makes `id` a known user.
        pub fn add(&self, id: Uuid) {
            self.users.lock().unwrap_or_else(|e| e.into_inner()).insert(id);
        }

        /// While `true`, every call fails with UNAVAILABLE, as the real one does when the
        /// user-service is down.
        pub fn set_down(&self, down: bool) {
            self.down.store(down, Ordering::SeqCst);
        }

        /// How many times the directory was asked.
        pub fn calls(&self) -> usize {
            self.calls.load(Ordering::SeqCst)
        }
    }

    impl UserDirectory for FakeUserDirectory {
        async fn user_exists(&self, id: Uuid) -> Result<bool, Error> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            if self.down.load(Ordering::SeqCst) {
                return Err(Error::unavailable(
                    "cannot check the user: user-service is unavailable (circuit open for user-service), try again",
                ));
            }
            Ok(self.users.lock().unwrap_or_else(|e| e.into_inner()).contains(&id))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_http_addresses_are_accepted() {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let _entered = runtime.enter();
        assert!(GrpcUserDirectory::connect_lazy("http://user-service:50051", Duration::from_millis(500)).is_ok());
        let error =
            GrpcUserDirectory::connect_lazy("https://user-service:50051", Duration::from_millis(500)).unwrap_err();
        assert!(error.to_string().contains("TLS"), "{error}");
    }

    #[tokio::test]
    async fn a_user_service_that_is_down_is_unavailable_fast_and_then_at_once() {
        // A port nothing listens on: every attempt is refused.
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let directory =
            GrpcUserDirectory::connect_lazy(&format!("http://127.0.0.1:{port}"), Duration::from_millis(500)).unwrap();
        for _ in 0..3 {
            let started = std::time::Instant::now();
            let error = directory.user_exists(Uuid::now_v7()).await.unwrap_err();
            assert_eq!(error.kind(), pkg::ErrorKind::Unavailable, "{error:?}");
            assert!(started.elapsed() < Duration::from_millis(1000), "{:?}", started.elapsed());
        }
        // Two attempts per call: the breaker opened on the fifth failed attempt.
        assert_eq!(directory.client().breaker().state(), pkg::client::BreakerState::Open);
        let started = std::time::Instant::now();
        let error = directory.user_exists(Uuid::now_v7()).await.unwrap_err();
        assert!(started.elapsed() < Duration::from_millis(20), "{:?}", started.elapsed());
        assert!(error.message().contains("circuit open"), "{}", error.message());
    }
}
