//! What the gateway does between HTTP and gRPC, independent of axum and tonic transports:
//! the REST resources' JSON shapes, the validation of what clients send, and the mapping to
//! and from the protobuf messages.
//!
//! Validation repeats the rules the protos document on their fields (required fields, UUIDs,
//! lengths, ranges) so that a malformed request is answered 400 with every problem listed,
//! without a round trip. The upstream stays the authority: its INVALID_ARGUMENT, NOT_FOUND and
//! ALREADY_EXISTS answers pass through to the client.

pub mod orders;
pub mod readiness;
pub mod users;
mod validate;

pub use validate::{Problems, parse_uuid};

/// One page of a listing, as clients send it in the query string.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PageQuery {
    /// Maximum number of items; 0 or absent means the upstream's default (50).
    pub page_size: Option<String>,
    /// The `next_page_token` of the previous page.
    pub page_token: Option<String>,
}

/// Page tokens are opaque upstream cursors of a few dozen bytes; anything far longer is not one.
const MAX_PAGE_TOKEN_LEN: usize = 1024;

impl PageQuery {
    /// The page size and token to send upstream, or the problems with them.
    pub fn validate(&self, problems: &mut Problems) -> (i32, String) {
        let page_size = match self.page_size.as_deref().map(str::trim) {
            None | Some("") => 0,
            Some(raw) => match raw.parse::<i32>() {
                Ok(size) if size >= 0 => size,
                _ => {
                    problems.add(format!("page_size must be a whole number from 0 to {} (got {raw:?})", i32::MAX));
                    0
                }
            },
        };
        let page_token = self.page_token.clone().unwrap_or_default();
        if page_token.len() > MAX_PAGE_TOKEN_LEN {
            problems.add("page_token is not a token returned by a previous page");
        }
        (page_size, page_token)
    }
}

/// `next_page_token` as clients see it: absent (null) on the last page rather than "".
pub(crate) fn next_page_token(token: String) -> Option<String> {
    (!token.is_empty()).then_some(token)
}

/// A protobuf timestamp as RFC 3339 (`2026-08-04T10:00:00.123Z`), UTC.
pub(crate) fn rfc3339(timestamp: Option<prost_types::Timestamp>) -> Option<String> {
    timestamp.map(|t| t.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(size: Option<&str>, token: Option<&str>) -> Result<(i32, String), pkg::Error> {
        let mut problems = Problems::default();
        let query = PageQuery { page_size: size.map(Into::into), page_token: token.map(Into::into) };
        let page = query.validate(&mut problems);
        problems.finish().map(|()| page)
    }

    #[test]
    fn page_size_defaults_to_zero_and_must_be_a_non_negative_number() {
        assert_eq!(page(None, None).unwrap(), (0, String::new()));
        assert_eq!(page(Some("25"), Some("abc")).unwrap(), (25, "abc".into()));
        for bad in ["-1", "ten", "1.5", "99999999999"] {
            let error = page(Some(bad), None).unwrap_err();
            assert_eq!(error.kind(), pkg::ErrorKind::InvalidArgument);
            assert!(error.message().contains("page_size"), "{}", error.message());
        }
        assert!(page(None, Some(&"x".repeat(2000))).is_err());
    }

    #[test]
    fn timestamps_are_rfc3339_utc() {
        let t = prost_types::Timestamp { seconds: 1_785_837_600, nanos: 123_000_000 };
        assert_eq!(rfc3339(Some(t)).unwrap(), "2026-08-04T10:00:00.123Z");
        assert_eq!(rfc3339(None), None);
    }
}
