//! Request fields in INVALID_ARGUMENT messages: how a client's value is quoted, and the UUID
//! fields every gRPC service reads, so that all services word these errors alike.
//!
//! ```
//! let error = pkg::field::uuid("user_id", "nope").unwrap_err();
//! assert_eq!(error.message(), r#"user_id: "nope" is not a UUID"#);
//! ```

use uuid::Uuid;

use crate::Error;

/// The most characters of a client's value an error message repeats.
const MAX_QUOTED_CHARS: usize = 64;

/// A client's value quoted for an error message (Rust string syntax, so control characters
/// show), cut short: a message should not echo a megabyte back.
pub fn quote(value: &str) -> String {
    if value.chars().count() <= MAX_QUOTED_CHARS {
        format!("{value:?}")
    } else {
        let head: String = value.chars().take(MAX_QUOTED_CHARS).collect();
        format!("{head:?}...")
    }
}

/// A request's UUID field `field`: INVALID_ARGUMENT naming the field when it is empty
/// (`id: required`) or not a UUID (`id: "42" is not a UUID`).
pub fn uuid(field: &str, raw: &str) -> Result<Uuid, Error> {
    if raw.is_empty() {
        return Err(Error::invalid_argument(format!("{field}: required")));
    }
    Uuid::try_parse(raw).map_err(|_| Error::invalid_argument(format!("{field}: {} is not a UUID", quote(raw))))
}
