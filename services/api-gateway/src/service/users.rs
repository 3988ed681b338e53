//! The `User` resource: JSON shapes, validation, and mapping to `user.v1`.

use serde::{Deserialize, Serialize};

use super::{PageQuery, Problems, next_page_token, parse_uuid, rfc3339};
use crate::proto::user::v1 as pb;

/// Longest email address the user-service stores (RFC 5321's 64 + 1 + 255, rounded as the
/// proto says).
const MAX_EMAIL_LEN: usize = 320;
/// Longest display name, in characters.
const MAX_DISPLAY_NAME_CHARS: usize = 100;

/// A user as REST clients see it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    /// Server-assigned UUID.
    pub id: String,
    /// The address the user signs in with.
    pub email: String,
    /// Name shown to others; null when the user has none.
    pub display_name: Option<String>,
    /// When the user was created, RFC 3339 UTC.
    pub create_time: Option<String>,
}

impl From<pb::User> for User {
    fn from(user: pb::User) -> Self {
        User {
            id: user.id,
            email: user.email,
            display_name: (!user.display_name.is_empty()).then_some(user.display_name),
            create_time: rfc3339(user.create_time),
        }
    }
}

/// The body of `POST /v1/users`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateUser {
    /// Required; unique across users, compared case-insensitively.
    pub email: Option<String>,
    /// Optional; at most 100 characters.
    pub display_name: Option<String>,
}

impl CreateUser {
    /// The gRPC request, or 400 listing every problem.
    pub fn into_request(self) -> Result<pb::CreateUserRequest, pkg::Error> {
        let mut problems = Problems::default();
        let email = self.email.unwrap_or_default().trim().to_owned();
        if email.is_empty() {
            problems.add("email is required");
        } else {
            problems
                .check(email.len() <= MAX_EMAIL_LEN, || format!("email must be at most {MAX_EMAIL_LEN} characters"));
            problems.check(looks_like_an_email(&email), || {
                format!("email must be an address like ada@example.com (got {email:?})")
            });
        }
        let display_name = self.display_name.unwrap_or_default();
        problems.check(display_name.chars().count() <= MAX_DISPLAY_NAME_CHARS, || {
            format!("display_name must be at most {MAX_DISPLAY_NAME_CHARS} characters")
        });
        problems.finish()?;
        Ok(pb::CreateUserRequest { email, display_name })
    }
}

/// A shape check only (one `@`, something on each side, no spaces): the user-service decides
/// what a valid address is.
fn looks_like_an_email(email: &str) -> bool {
    match email.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty() && !domain.is_empty() && !domain.contains('@') && !email.chars().any(char::is_whitespace)
        }
        None => false,
    }
}

/// `GET /v1/users/{id}`.
pub fn get_request(id: &str) -> Result<pb::GetUserRequest, pkg::Error> {
    let mut problems = Problems::default();
    let id = parse_uuid(id, "id", &mut problems);
    problems.finish()?;
    Ok(pb::GetUserRequest { id })
}

/// `GET /v1/users`.
pub fn list_request(query: &PageQuery) -> Result<pb::ListUsersRequest, pkg::Error> {
    let mut problems = Problems::default();
    let (page_size, page_token) = query.validate(&mut problems);
    problems.finish()?;
    Ok(pb::ListUsersRequest { page_size, page_token })
}

/// One page of users.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserPage {
    /// Oldest first.
    pub users: Vec<User>,
    /// Pass as `page_token` for the next page; null on the last page.
    pub next_page_token: Option<String>,
}

impl From<pb::ListUsersResponse> for UserPage {
    fn from(page: pb::ListUsersResponse) -> Self {
        UserPage {
            users: page.users.into_iter().map(User::from).collect(),
            next_page_token: next_page_token(page.next_page_token),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_user_maps_to_json_with_rfc3339_time_and_null_for_no_name() {
        let user = pb::User {
            id: "6f1c2b9e-3d4a-4e8b-9f10-2a7c5d6e8b01".into(),
            email: "ada@example.com".into(),
            display_name: String::new(),
            create_time: Some(prost_types::Timestamp { seconds: 1_785_837_600, nanos: 0 }),
        };
        let json = serde_json::to_value(User::from(user)).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "id": "6f1c2b9e-3d4a-4e8b-9f10-2a7c5d6e8b01",
                "email": "ada@example.com",
                "display_name": null,
                "create_time": "2026-08-04T10:00:00Z",
            })
        );
    }

    #[test]
    fn a_valid_create_body_becomes_the_request() {
        let body: CreateUser = serde_json::from_str(r#"{"email":" ada@example.com ","display_name":"Ada"}"#).unwrap();
        assert_eq!(
            body.into_request().unwrap(),
            pb::CreateUserRequest { email: "ada@example.com".into(), display_name: "Ada".into() }
        );
    }

    #[test]
    fn every_problem_of_a_create_body_is_reported() {
        let body = CreateUser { email: Some("not an email".into()), display_name: Some("x".repeat(101)) };
        let error = body.into_request().unwrap_err();
        assert_eq!(error.kind(), pkg::ErrorKind::InvalidArgument);
        assert!(error.message().contains("email must be an address"), "{}", error.message());
        assert!(error.message().contains("display_name"), "{}", error.message());
        let missing = CreateUser::default().into_request().unwrap_err();
        assert_eq!(missing.message(), "email is required");
    }

    #[test]
    fn unknown_fields_are_refused() {
        assert!(serde_json::from_str::<CreateUser>(r#"{"emial":"a@b.c"}"#).is_err());
    }

    #[test]
    fn a_page_maps_an_empty_token_to_null() {
        let page = UserPage::from(pb::ListUsersResponse { users: vec![], next_page_token: String::new() });
        assert_eq!(serde_json::to_value(page).unwrap(), serde_json::json!({"users": [], "next_page_token": null}));
    }

    #[test]
    fn get_needs_a_uuid() {
        assert!(get_request("42").is_err());
        assert_eq!(
            get_request("6F1C2B9E-3D4A-4E8B-9F10-2A7C5D6E8B01").unwrap().id,
            "6f1c2b9e-3d4a-4e8b-9f10-2a7c5d6e8b01"
        );
    }
}
