//! The business rules of users, independent of gRPC and of PostgreSQL: what a valid user is,
//! who assigns what, how listings are paged, and what each storage failure means to a caller.

pub mod validate;

use std::time::SystemTime;

use pkg::Error;
use pkg::pagination::{self, Cursor, Listing, Page, now_micros};
use uuid::Uuid;

use crate::repository::{RepositoryError, UserRepository};

/// ListUsers' page tokens: bound to the listing, oldest first by `(create_time, id)`.
const LIST_USERS: Listing = Listing::new("user.v1.UserService/ListUsers");

/// A registered user, as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct User {
    /// Assigned by the service: a UUIDv7, so ids grow with time and index well.
    pub id: Uuid,
    /// As the user gave it; unique ignoring case.
    pub email: String,
    /// Empty when the user gave none.
    pub display_name: String,
    /// Assigned by the service, at the microsecond precision PostgreSQL stores.
    pub create_time: SystemTime,
}

impl User {
    /// The user's position in listings.
    pub fn cursor(&self) -> Cursor {
        Cursor { create_time: self.create_time, id: self.id }
    }
}

/// What a client chooses for a new user.
#[derive(Clone, Debug, Default)]
pub struct NewUser {
    /// Required; see [`validate::email`].
    pub email: String,
    /// Optional; see [`validate::display_name`].
    pub display_name: String,
}

/// The user operations, over any [`UserRepository`].
#[derive(Debug)]
pub struct UserService<R> {
    repository: R,
}

impl<R: UserRepository> UserService<R> {
    /// The service over `repository`.
    pub fn new(repository: R) -> Self {
        UserService { repository }
    }

    /// Registers a user: INVALID_ARGUMENT for a bad field, ALREADY_EXISTS when another user
    /// has the same email ignoring case.
    pub async fn create_user(&self, new: NewUser) -> Result<User, Error> {
        let email = validate::email(&new.email)?;
        let display_name = validate::display_name(&new.display_name)?;
        let user = User { id: Uuid::now_v7(), email, display_name, create_time: now_micros() };
        match self.repository.insert(&user).await {
            Ok(()) => {
                tracing::info!(user.id = %user.id, "user created");
                Ok(user)
            }
            // The unique index, not a prior lookup, decides: two concurrent requests for one
            // address cannot both pass.
            Err(RepositoryError::EmailTaken) => Err(Error::already_exists(format!(
                "email: a user with {} exists already",
                pkg::field::quote(&user.email)
            ))),
            Err(error) => Err(error.into()),
        }
    }

    /// One user by id: NOT_FOUND when there is none.
    pub async fn get_user(&self, id: Uuid) -> Result<User, Error> {
        self.repository.get(id).await?.ok_or_else(|| Error::not_found(format!("no user has id {id}")))
    }

    /// One page of users, oldest first, ties broken by id. `page_token` is empty or the
    /// `next_page_token` of the previous page.
    pub async fn list_users(&self, page_size: i32, page_token: &str) -> Result<Page<User>, Error> {
        let size = pagination::page_size(page_size)?;
        let after = LIST_USERS.decode(page_token)?;
        // One more than asked tells whether another page follows, without a count query.
        let users = self.repository.list(after, size + 1).await?;
        Ok(Page::from_lookahead(users, size, |last| LIST_USERS.encode(&last.cursor())))
    }
}

impl From<RepositoryError> for Error {
    fn from(error: RepositoryError) -> Error {
        match error {
            // Clients may retry UNAVAILABLE; the database being down is exactly that case.
            RepositoryError::Unavailable(_) => {
                Error::unavailable("the user database is unavailable, try again").with_source(error)
            }
            RepositoryError::EmailTaken => Error::already_exists("email: exists already"),
            RepositoryError::Query(_) => Error::internal("user database query failed").with_source(error),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::repository::memory::InMemoryUserRepository;
    use pkg::ErrorKind;
    use std::time::UNIX_EPOCH;

    fn service() -> UserService<InMemoryUserRepository> {
        UserService::new(InMemoryUserRepository::default())
    }

    fn new_user(email: &str) -> NewUser {
        NewUser { email: email.to_owned(), display_name: String::new() }
    }

    #[tokio::test]
    async fn creates_and_reads_back_a_user() {
        let service = service();
        let created =
            service.create_user(NewUser { email: "Ada@Example.com".into(), display_name: "Ada".into() }).await.unwrap();
        assert_eq!(created.email, "Ada@Example.com");
        assert_eq!(created.display_name, "Ada");
        assert_eq!(created.id.get_version_num(), 7);
        assert_eq!(micros_remainder(created.create_time), 0);
        assert_eq!(service.get_user(created.id).await.unwrap(), created);
    }

    fn micros_remainder(time: SystemTime) -> u32 {
        time.duration_since(UNIX_EPOCH).unwrap().subsec_nanos() % 1000
    }

    #[tokio::test]
    async fn emails_are_unique_ignoring_case() {
        let service = service();
        service.create_user(new_user("ada@example.com")).await.unwrap();
        let error = service.create_user(new_user("ADA@example.COM")).await.unwrap_err();
        assert_eq!(error.kind(), ErrorKind::AlreadyExists);
        assert!(error.message().contains("ADA@example.COM"), "{}", error.message());
    }

    #[tokio::test]
    async fn invalid_fields_are_refused_before_storage() {
        let service = service();
        let error = service.create_user(new_user("nope")).await.unwrap_err();
        assert_eq!(error.kind(), ErrorKind::InvalidArgument);
        let error = service
            .create_user(NewUser { email: "a@example.com".into(), display_name: "x".repeat(101) })
            .await
            .unwrap_err();
        assert_eq!(error.kind(), ErrorKind::InvalidArgument);
        assert!(service.list_users(0, "").await.unwrap().items.is_empty());
    }

    #[tokio::test]
    async fn an_unknown_id_is_not_found() {
        let error = service().get_user(Uuid::now_v7()).await.unwrap_err();
        assert_eq!(error.kind(), ErrorKind::NotFound);
    }

    #[tokio::test]
    async fn listing_pages_through_every_user_once_in_order() {
        let service = service();
        let mut created = Vec::new();
        for i in 0..7 {
            created.push(service.create_user(new_user(&format!("u{i}@example.com"))).await.unwrap());
        }
        let mut seen = Vec::new();
        let mut token = String::new();
        let mut pages = 0;
        loop {
            let page = service.list_users(3, &token).await.unwrap();
            pages += 1;
            assert!(page.items.len() <= 3);
            seen.extend(page.items);
            if page.next_page_token.is_empty() {
                break;
            }
            token = page.next_page_token;
        }
        assert_eq!(pages, 3);
        assert_eq!(seen, created);
        // A page that ends exactly at the last user has no next token.
        let all = service.list_users(7, "").await.unwrap();
        assert_eq!(all.items.len(), 7);
        assert!(all.next_page_token.is_empty());
    }

    #[tokio::test]
    async fn users_added_during_a_listing_do_not_shift_its_pages() {
        let service = service();
        for i in 0..4 {
            service.create_user(new_user(&format!("u{i}@example.com"))).await.unwrap();
        }
        let first = service.list_users(2, "").await.unwrap();
        service.create_user(new_user("late@example.com")).await.unwrap();
        let second = service.list_users(2, &first.next_page_token).await.unwrap();
        let emails: Vec<_> = second.items.iter().map(|u| u.email.as_str()).collect();
        assert_eq!(emails, ["u2@example.com", "u3@example.com"]);
    }

    #[tokio::test]
    async fn bad_page_requests_are_invalid_arguments() {
        let service = service();
        assert_eq!(service.list_users(-1, "").await.unwrap_err().kind(), ErrorKind::InvalidArgument);
        assert_eq!(service.list_users(10, "tampered").await.unwrap_err().kind(), ErrorKind::InvalidArgument);
    }

    #[tokio::test]
    async fn storage_failures_map_to_unavailable_and_internal() {
        let repository = InMemoryUserRepository::default();
        let service = UserService::new(repository.clone());
        repository.set_unavailable(true);
        let error = service.create_user(new_user("a@example.com")).await.unwrap_err();
        assert_eq!(error.kind(), ErrorKind::Unavailable);
        assert_eq!(service.get_user(Uuid::now_v7()).await.unwrap_err().kind(), ErrorKind::Unavailable);
        let internal: Error = RepositoryError::Query("syntax error".into()).into();
        assert_eq!(internal.kind(), ErrorKind::Internal);
        assert_eq!(internal.public_message(), "internal error");
    }
}
