//! The gRPC face of the service: `user.v1.UserService` requests mapped to the service layer and
//! back, errors mapped to status codes through [`pkg::Error`]. Health is
//! [`pkg::postgres::HealthProbe`]'s, started by [`crate::server`].

use std::sync::Arc;

use pkg::field;
use tonic::{Request, Response, Status};

use crate::proto::user::v1 as pb;
use crate::repository::UserRepository;
use crate::service::{NewUser, User, UserService};

/// Serves `user.v1.UserService` over a [`UserService`].
#[derive(Debug)]
pub struct UserHandler<R> {
    service: Arc<UserService<R>>,
}

impl<R> UserHandler<R> {
    /// The handler over `service`.
    pub fn new(service: Arc<UserService<R>>) -> Self {
        UserHandler { service }
    }
}

#[tonic::async_trait]
impl<R: UserRepository> pb::user_service_server::UserService for UserHandler<R> {
    async fn create_user(
        &self,
        request: Request<pb::CreateUserRequest>,
    ) -> Result<Response<pb::CreateUserResponse>, Status> {
        let request = request.into_inner();
        let user =
            self.service.create_user(NewUser { email: request.email, display_name: request.display_name }).await?;
        Ok(Response::new(pb::CreateUserResponse { user: Some(user_to_proto(user)) }))
    }

    async fn get_user(&self, request: Request<pb::GetUserRequest>) -> Result<Response<pb::GetUserResponse>, Status> {
        let id = field::uuid("id", &request.get_ref().id)?;
        let user = self.service.get_user(id).await?;
        Ok(Response::new(pb::GetUserResponse { user: Some(user_to_proto(user)) }))
    }

    async fn list_users(
        &self,
        request: Request<pb::ListUsersRequest>,
    ) -> Result<Response<pb::ListUsersResponse>, Status> {
        let request = request.into_inner();
        let page = self.service.list_users(request.page_size, &request.page_token).await?;
        Ok(Response::new(pb::ListUsersResponse {
            users: page.items.into_iter().map(user_to_proto).collect(),
            next_page_token: page.next_page_token,
        }))
    }
}

/// The wire form of a user: the id in canonical lowercase hyphenated form.
pub fn user_to_proto(user: User) -> pb::User {
    pb::User {
        id: user.id.to_string(),
        email: user.email,
        display_name: user.display_name,
        create_time: Some(user.create_time.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::user::v1::user_service_server::UserService as _;
    use crate::repository::memory::InMemoryUserRepository;
    use tonic::Code;
    use uuid::Uuid;

    fn handler() -> (UserHandler<InMemoryUserRepository>, InMemoryUserRepository) {
        let repository = InMemoryUserRepository::default();
        let service = Arc::new(UserService::new(repository.clone()));
        (UserHandler::new(service), repository)
    }

    async fn create(handler: &UserHandler<InMemoryUserRepository>, email: &str) -> Result<pb::User, Status> {
        let response = handler
            .create_user(Request::new(pb::CreateUserRequest { email: email.into(), display_name: "Ada".into() }))
            .await?;
        Ok(response.into_inner().user.unwrap())
    }

    #[tokio::test]
    async fn maps_users_to_the_wire_and_back() {
        let (handler, _) = handler();
        let user = create(&handler, "ada@example.com").await.unwrap();
        assert_eq!(user.id.len(), 36);
        assert_eq!(user.id, user.id.to_lowercase());
        assert!(user.create_time.is_some());
        let got = handler
            .get_user(Request::new(pb::GetUserRequest { id: user.id.clone() }))
            .await
            .unwrap()
            .into_inner()
            .user
            .unwrap();
        assert_eq!(got, user);
    }

    #[tokio::test]
    async fn errors_become_the_documented_status_codes() {
        let (handler, repository) = handler();
        create(&handler, "ada@example.com").await.unwrap();
        let cases: Vec<(Status, Code)> = vec![
            (create(&handler, "not-an-email").await.unwrap_err(), Code::InvalidArgument),
            (create(&handler, "").await.unwrap_err(), Code::InvalidArgument),
            (create(&handler, "ADA@example.com").await.unwrap_err(), Code::AlreadyExists),
            (
                handler.get_user(Request::new(pb::GetUserRequest { id: "42".into() })).await.unwrap_err(),
                Code::InvalidArgument,
            ),
            (
                handler
                    .get_user(Request::new(pb::GetUserRequest { id: Uuid::now_v7().to_string() }))
                    .await
                    .unwrap_err(),
                Code::NotFound,
            ),
            (
                handler
                    .list_users(Request::new(pb::ListUsersRequest { page_size: -5, page_token: String::new() }))
                    .await
                    .unwrap_err(),
                Code::InvalidArgument,
            ),
            (
                handler
                    .list_users(Request::new(pb::ListUsersRequest { page_size: 0, page_token: "bogus".into() }))
                    .await
                    .unwrap_err(),
                Code::InvalidArgument,
            ),
        ];
        for (status, code) in cases {
            assert_eq!(status.code(), code, "{status:?}");
        }
        repository.set_unavailable(true);
        let status = create(&handler, "bob@example.com").await.unwrap_err();
        assert_eq!(status.code(), Code::Unavailable);
    }
}
