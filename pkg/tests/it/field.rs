//! field: how client values and UUID fields appear in INVALID_ARGUMENT messages.

use pkg::ErrorKind;
use pkg::field::{quote, uuid};

#[test]
fn values_are_quoted_and_cut_short() {
    assert_eq!(quote("abc"), "\"abc\"");
    assert_eq!(quote("a\nb"), "\"a\\nb\"");
    assert_eq!(quote(&"x".repeat(64)), format!("\"{}\"", "x".repeat(64)));
    assert_eq!(quote(&"x".repeat(100)), format!("\"{}\"...", "x".repeat(64)));
}

#[test]
fn uuids_must_be_uuids() {
    let id = uuid("id", "6f1c2b9e-3d4a-4e8b-9f10-2a7c5d6e8b01").unwrap();
    assert_eq!(id.to_string(), "6f1c2b9e-3d4a-4e8b-9f10-2a7c5d6e8b01");
    let error = uuid("id", "").unwrap_err();
    assert_eq!(error.kind(), ErrorKind::InvalidArgument);
    assert_eq!(error.message(), "id: required");
    assert_eq!(uuid("user_id", "nope").unwrap_err().message(), "user_id: \"nope\" is not a UUID");
}
