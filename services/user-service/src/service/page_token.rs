//! Page sizes and page tokens for `ListUsers`'s keyset pagination.
//!
//! A token is the key of the last user of a page, `(create_time, id)`, which the next page
//! starts after. It is opaque to clients (base64url) and checked when it comes back: a version
//! byte, a fixed length, and a CRC-32 over the key and the listing it belongs to, so that an
//! edited, truncated or foreign token is INVALID_ARGUMENT rather than a silently wrong page.
//! The checksum is not a signature: a client able to forge a token gains nothing by it, since
//! a token only says where in a listing the client may read anyway to start.
//!
//! Layout, 29 bytes before base64: `version (1) | create_time, µs since the epoch, i64 BE (8) |
//! id (16) | crc32 (4)`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use pkg::Error;
use uuid::Uuid;

/// The page size when the request leaves it at 0.
pub const DEFAULT_PAGE_SIZE: usize = 50;
/// The largest page served; larger requests are served this many.
pub const MAX_PAGE_SIZE: usize = 1000;

const VERSION: u8 = 1;
/// Mixed into the checksum: a token of another listing never passes for one of this one.
const LISTING: &[u8] = b"user.v1.UserService/ListUsers";
const LEN: usize = 1 + 8 + 16 + 4;

/// The position a page starts after: the `(create_time, id)` of the previous page's last user.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cursor {
    /// The last user's create time, at the microsecond precision it is stored with.
    pub create_time: SystemTime,
    /// The last user's id, breaking ties between equal create times.
    pub id: Uuid,
}

/// The number of users to return for a requested `page_size`.
pub fn page_size(requested: i32) -> Result<usize, Error> {
    match requested {
        0 => Ok(DEFAULT_PAGE_SIZE),
        n if n < 0 => Err(Error::invalid_argument(format!("page_size: {n} is negative"))),
        n => Ok(usize::try_from(n).unwrap_or(MAX_PAGE_SIZE).min(MAX_PAGE_SIZE)),
    }
}

/// The opaque token that continues a listing after `cursor`.
pub fn encode(cursor: &Cursor) -> String {
    let mut bytes = Vec::with_capacity(LEN);
    bytes.push(VERSION);
    bytes.extend_from_slice(&micros_since_epoch(cursor.create_time).to_be_bytes());
    bytes.extend_from_slice(cursor.id.as_bytes());
    let crc = checksum(&bytes);
    bytes.extend_from_slice(&crc.to_be_bytes());
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The cursor a token carries; an empty token starts the listing (`None`).
pub fn decode(token: &str) -> Result<Option<Cursor>, Error> {
    if token.is_empty() {
        return Ok(None);
    }
    let invalid = || Error::invalid_argument("page_token: not a token returned by a previous ListUsers call");
    let bytes = URL_SAFE_NO_PAD.decode(token).map_err(|_| invalid())?;
    if bytes.len() != LEN || bytes[0] != VERSION {
        return Err(invalid());
    }
    let (body, crc) = bytes.split_at(LEN - 4);
    if checksum(body).to_be_bytes() != crc {
        return Err(invalid());
    }
    let micros = i64::from_be_bytes(body[1..9].try_into().map_err(|_| invalid())?);
    let id = Uuid::from_slice(&body[9..25]).map_err(|_| invalid())?;
    let create_time = u64::try_from(micros)
        .ok()
        .and_then(|micros| UNIX_EPOCH.checked_add(Duration::from_micros(micros)))
        .ok_or_else(invalid)?;
    Ok(Some(Cursor { create_time, id }))
}

fn checksum(body: &[u8]) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(LISTING);
    hasher.update(body);
    hasher.finalize()
}

/// Microseconds since the Unix epoch; times before it (never assigned) count as the epoch.
pub fn micros_since_epoch(time: SystemTime) -> i64 {
    time.duration_since(UNIX_EPOCH).map(|d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX)).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use pkg::ErrorKind;

    fn cursor() -> Cursor {
        Cursor {
            create_time: UNIX_EPOCH + Duration::from_micros(1_760_000_000_123_456),
            id: Uuid::parse_str("6f1c2b9e-3d4a-4e8b-9f10-2a7c5d6e8b01").unwrap(),
        }
    }

    #[test]
    fn page_sizes_follow_the_contract() {
        assert_eq!(page_size(0).unwrap(), 50);
        assert_eq!(page_size(1).unwrap(), 1);
        assert_eq!(page_size(1000).unwrap(), 1000);
        assert_eq!(page_size(1001).unwrap(), 1000);
        assert_eq!(page_size(i32::MAX).unwrap(), 1000);
        assert_eq!(page_size(-1).unwrap_err().kind(), ErrorKind::InvalidArgument);
    }

    #[test]
    fn a_token_round_trips_and_is_url_safe() {
        let token = encode(&cursor());
        assert!(token.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'));
        assert_eq!(decode(&token).unwrap(), Some(cursor()));
        assert_eq!(decode("").unwrap(), None);
    }

    #[test]
    fn every_single_character_edit_is_refused() {
        let token = encode(&cursor());
        for i in 0..token.len() {
            for replacement in ['A', 'z', '0', '-'] {
                let mut edited: Vec<char> = token.chars().collect();
                if edited[i] == replacement {
                    continue;
                }
                edited[i] = replacement;
                let edited: String = edited.into_iter().collect();
                let result = decode(&edited);
                assert!(
                    result.as_ref().is_err_and(|e| e.kind() == ErrorKind::InvalidArgument),
                    "{edited} gave {result:?}"
                );
            }
        }
    }

    #[test]
    fn garbage_truncation_and_other_versions_are_refused() {
        let token = encode(&cursor());
        for bad in [
            "not a token!",
            "abc",
            &token[..token.len() - 2],
            &format!("{token}AA"),
            &URL_SAFE_NO_PAD.encode([2u8; LEN]),
        ] {
            assert_eq!(decode(bad).unwrap_err().kind(), ErrorKind::InvalidArgument, "{bad}");
        }
    }
}
