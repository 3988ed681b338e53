//! The user-service client.

use http::Uri;
use pkg::client::{Call, Client, ClientConfig, InvalidAddress, TracedChannel};

use super::{HealthProbe, Stubs, USER_SERVICE, connect, missing, upstream_error};
use crate::proto::user::v1 as pb;
use crate::proto::user::v1::user_service_client::UserServiceClient;

/// `user.v1.UserService` through the resilient client. Cheap to clone; clones share the
/// connection and the circuit breaker.
#[derive(Clone, Debug)]
pub struct UserClient {
    client: Client<Stubs<UserServiceClient<TracedChannel>>>,
}

impl UserClient {
    /// A client for the user-service at `uri`, connecting on first use.
    pub fn connect(uri: &Uri, config: ClientConfig) -> Result<Self, InvalidAddress> {
        let client = connect(USER_SERVICE, uri, config, UserServiceClient::new)?;
        Ok(UserClient { client })
    }

    /// The probe `/readyz` uses, on the same connection.
    pub fn health_probe(&self) -> HealthProbe {
        HealthProbe::new(USER_SERVICE, "user.v1.UserService", self.client.inner().health.clone())
    }

    /// Creates a user. Made exactly once: a retried create could register the user twice
    /// (or answer ALREADY_EXISTS for the user it just created).
    pub async fn create(&self, request: pb::CreateUserRequest) -> pkg::error::Result<pb::User> {
        self.client
            .call(
                Call::not_idempotent(),
                request,
                |mut stubs, request| async move { stubs.api.create_user(request).await },
            )
            .await
            .map_err(|status| upstream_error(USER_SERVICE, status))?
            .into_inner()
            .user
            .ok_or_else(|| missing(USER_SERVICE, "the created user"))
    }

    /// Reads one user; retried when the upstream does not answer.
    pub async fn get(&self, request: pb::GetUserRequest) -> pkg::error::Result<pb::User> {
        self.client
            .call(Call::idempotent(), request, |mut stubs, request| async move { stubs.api.get_user(request).await })
            .await
            .map_err(|status| upstream_error(USER_SERVICE, status))?
            .into_inner()
            .user
            .ok_or_else(|| missing(USER_SERVICE, "the user"))
    }

    /// Reads one page of users; retried when the upstream does not answer.
    pub async fn list(&self, request: pb::ListUsersRequest) -> pkg::error::Result<pb::ListUsersResponse> {
        self.client
            .call(Call::idempotent(), request, |mut stubs, request| async move { stubs.api.list_users(request).await })
            .await
            .map(tonic::Response::into_inner)
            .map_err(|status| upstream_error(USER_SERVICE, status))
    }
}
