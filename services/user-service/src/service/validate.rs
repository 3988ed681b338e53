//! The rules a new user's fields must follow, as documented in `user.v1` (proto/user/v1/user.proto).

use pkg::Error;
use pkg::field::quote;

/// The longest email address accepted, in characters (RFC 5321's path limit, less the brackets).
pub const MAX_EMAIL_LEN: usize = 320;
/// The longest display name accepted, in characters.
pub const MAX_DISPLAY_NAME_LEN: usize = 100;

/// Checks an email address and returns it as it will be stored.
///
/// The check is deliberately practical rather than the full RFC 5322 grammar (quoted local
/// parts, comments and IP-literal domains are refused: no mail provider hands those out):
/// `local@domain`, the local part made of RFC 5322 "atext" characters and single dots, the
/// domain made of at least two DNS labels. Addresses are ASCII, internationalised domains in
/// their punycode (`xn--`) form, so that case-insensitive uniqueness means the same thing in
/// Rust and in PostgreSQL's `lower()` whatever the database's locale. The address is stored as
/// given (its case kept): only comparisons ignore case.
pub fn email(raw: &str) -> Result<String, Error> {
    let invalid = |why: &str| Err(Error::invalid_argument(format!("email: {} {why}", quote(raw))));
    if raw.is_empty() {
        return Err(Error::invalid_argument("email: required"));
    }
    if raw.chars().count() > MAX_EMAIL_LEN {
        return invalid(&format!("is longer than {MAX_EMAIL_LEN} characters"));
    }
    if !raw.is_ascii() {
        return invalid("is not an ASCII address (write internationalised domains in punycode)");
    }
    let Some((local, domain)) = raw.rsplit_once('@') else {
        return invalid("has no @");
    };
    if local.is_empty() || local.len() > 64 {
        return invalid("must have 1 to 64 characters before the @");
    }
    let atext = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~".contains(c);
    if local.split('.').any(|part| part.is_empty() || !part.chars().all(atext)) {
        return invalid("is not a valid address before the @");
    }
    let labels: Vec<&str> = domain.split('.').collect();
    if domain.len() > 253 || labels.len() < 2 {
        return invalid("does not have a valid domain after the @");
    }
    let label_ok = |label: &&str| {
        (1..=63).contains(&label.len())
            && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            && !label.starts_with('-')
            && !label.ends_with('-')
    };
    if !labels.iter().all(label_ok) || labels.last().is_some_and(|tld| tld.chars().all(|c| c.is_ascii_digit())) {
        return invalid("does not have a valid domain after the @");
    }
    Ok(raw.to_owned())
}

/// Checks a display name: optional, at most [`MAX_DISPLAY_NAME_LEN`] characters, no control
/// characters (they would break the logs and pages the name is shown on).
pub fn display_name(raw: &str) -> Result<String, Error> {
    if raw.chars().count() > MAX_DISPLAY_NAME_LEN {
        return Err(Error::invalid_argument(format!("display_name: is longer than {MAX_DISPLAY_NAME_LEN} characters")));
    }
    if raw.chars().any(char::is_control) {
        return Err(Error::invalid_argument(format!("display_name: {} contains control characters", quote(raw))));
    }
    Ok(raw.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use pkg::ErrorKind;

    #[test]
    fn accepts_ordinary_addresses_as_given() {
        for ok in [
            "ada@example.com",
            "Ada.Lovelace@Example.COM",
            "first.last+tag@mail.example.co.uk",
            "o'brien@xn--bcher-kva.example",
            "x@a.io",
        ] {
            assert_eq!(email(ok).unwrap(), ok);
        }
    }

    #[test]
    fn refuses_what_is_not_an_address() {
        for bad in [
            "",
            "plainaddress",
            "@example.com",
            "ada@",
            "ada@localhost",
            "ada@example..com",
            "ada@-example.com",
            "ada@example.com-",
            "ada@@example.com",
            ".ada@example.com",
            "ada.@example.com",
            "a..da@example.com",
            "ada lovelace@example.com",
            " ada@example.com",
            "ada@example.com ",
            "ada@exämple.com",
            "ada@127.0.0.1",
            "\"quoted\"@example.com",
        ] {
            let error = email(bad).expect_err(bad);
            assert_eq!(error.kind(), ErrorKind::InvalidArgument, "{bad}");
            assert!(error.message().starts_with("email: "), "{}", error.message());
        }
        let long = format!("{}@example.com", "a".repeat(65));
        assert!(email(&long).is_err());
        let too_long = format!("a@{}.com", "b".repeat(320));
        assert!(email(&too_long).unwrap_err().message().contains("longer than 320"));
    }

    #[test]
    fn display_names_are_optional_bounded_and_printable() {
        assert_eq!(display_name("").unwrap(), "");
        assert_eq!(display_name("Ada Lovelace 🚀").unwrap(), "Ada Lovelace 🚀");
        assert!(display_name(&"é".repeat(100)).is_ok());
        assert!(display_name(&"é".repeat(101)).is_err());
        assert!(display_name("line\nbreak").is_err());
    }
}
