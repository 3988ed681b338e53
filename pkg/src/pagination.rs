//! Keyset pagination: page sizes, page tokens, and pages, as every `List*` call of the
//! platform's protos describes them.
//!
//! ```
//! use pkg::pagination::{Cursor, Listing, Page, page_size};
//! # struct Order { cursor: Cursor }
//! # fn list_by_user(user_id: uuid::Uuid, before: Option<Cursor>, limit: usize) -> Vec<Order> { Vec::new() }
//! # fn f(user_id: uuid::Uuid, requested_size: i32, token: &str) -> Result<(), pkg::Error> {
//! const LIST_ORDERS: Listing = Listing::new("order.v1.OrderService/ListOrdersByUser").scoped_by("user_id");
//!
//! let size = page_size(requested_size)?; // 0 is 50, above 1000 is 1000, negative INVALID_ARGUMENT
//! let before = LIST_ORDERS.decode_scoped(token, user_id.as_bytes())?; // None: the first page
//! let fetched = list_by_user(user_id, before, size + 1);
//! let page = Page::from_lookahead(fetched, size, |last| LIST_ORDERS.encode_scoped(&last.cursor, user_id.as_bytes()));
//! # Ok(()) }
//! ```
//!
//! A listing is ordered by `(create_time, id)` and a page continues from the [`Cursor`] of the
//! previous page's last item, so rows added during a listing never shift its pages. A token is
//! that cursor, opaque to clients (base64url) and checked when it comes back: a version byte, a
//! fixed length, and a CRC-32 over the contents and the name of the listing it belongs to, so
//! that an edited, truncated or foreign token is INVALID_ARGUMENT rather than a silently wrong
//! page. A scoped listing (a user's orders) also carries the scope the token was issued for,
//! and refuses it for any other. The checksum is not a signature, and need not be: a client able
//! to forge a token gains nothing by it, since a token only says where in a listing the client
//! may read anyway to start.
//!
//! Layout before base64, 29 bytes plus the scope: `version (1) | create_time, µs since the epoch,
//! i64 BE (8) | id (16) | scope (0 or more) | crc32 (4)`, the CRC covering the listing's name and
//! everything before it.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use uuid::Uuid;

use crate::Error;

/// The page size when the request leaves it at 0.
pub const DEFAULT_PAGE_SIZE: usize = 50;
/// The largest page served; larger requests are served this many.
pub const MAX_PAGE_SIZE: usize = 1000;

const VERSION: u8 = 1;
/// Version, create time, id and checksum: a token's length without its scope.
const UNSCOPED_LEN: usize = 1 + 8 + 16 + 4;

/// The number of items to return for a requested `page_size`: 0 is [`DEFAULT_PAGE_SIZE`],
/// anything above [`MAX_PAGE_SIZE`] is that, and a negative size is INVALID_ARGUMENT.
pub fn page_size(requested: i32) -> Result<usize, Error> {
    match requested {
        0 => Ok(DEFAULT_PAGE_SIZE),
        n if n < 0 => Err(Error::invalid_argument(format!("page_size: {n} is negative"))),
        n => Ok(usize::try_from(n).unwrap_or(MAX_PAGE_SIZE).min(MAX_PAGE_SIZE)),
    }
}

/// A position in a listing: the `(create_time, id)` key of the item a page continues from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cursor {
    /// The item's create time, at the microsecond precision it is stored with (see
    /// [`now_micros`]); finer precision is lost in a token.
    pub create_time: SystemTime,
    /// The item's id, breaking ties between equal create times.
    pub id: Uuid,
}

/// A listing whose pages are continued by tokens: its name binds the tokens to it, and a scoped
/// listing binds them to the scope they were issued for too.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Listing {
    name: &'static str,
    scope: Option<&'static str>,
}

impl Listing {
    /// The listing of the gRPC method `name`, as `package.Service/Method`
    /// (`user.v1.UserService/ListUsers`): mixed into every token's checksum, so that a token of
    /// one listing never passes for one of another, and named (its method) in error messages.
    pub const fn new(name: &'static str) -> Listing {
        Listing { name, scope: None }
    }

    /// The same listing, whose tokens carry the request field `field` (`user_id`) they were
    /// issued for: use [`encode_scoped`](Listing::encode_scoped) and
    /// [`decode_scoped`](Listing::decode_scoped) with that field's value.
    pub const fn scoped_by(self, field: &'static str) -> Listing {
        Listing { scope: Some(field), ..self }
    }

    /// The listing's name, as given to [`Listing::new`].
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The opaque token that continues the listing after `cursor`.
    pub fn encode(&self, cursor: &Cursor) -> String {
        self.encode_scoped(cursor, &[])
    }

    /// The cursor a token carries; an empty token starts the listing (`None`). INVALID_ARGUMENT
    /// for anything that is not a token this listing issued.
    pub fn decode(&self, token: &str) -> Result<Option<Cursor>, Error> {
        self.decode_scoped(token, &[])
    }

    /// The opaque token that continues the listing of `scope` (the scope field's value, in a
    /// fixed-length form such as a UUID's 16 bytes) after `cursor`.
    pub fn encode_scoped(&self, cursor: &Cursor, scope: &[u8]) -> String {
        let mut bytes = Vec::with_capacity(UNSCOPED_LEN + scope.len());
        bytes.push(VERSION);
        bytes.extend_from_slice(&micros_since_epoch(cursor.create_time).to_be_bytes());
        bytes.extend_from_slice(cursor.id.as_bytes());
        bytes.extend_from_slice(scope);
        let crc = self.checksum(&bytes);
        bytes.extend_from_slice(&crc.to_be_bytes());
        URL_SAFE_NO_PAD.encode(bytes)
    }

    /// The cursor a token carries, if it was issued for `scope`; an empty token starts the
    /// listing (`None`). INVALID_ARGUMENT for anything that is not a token this listing issued,
    /// and, naming the scope field, for a token issued for another scope.
    pub fn decode_scoped(&self, token: &str, scope: &[u8]) -> Result<Option<Cursor>, Error> {
        if token.is_empty() {
            return Ok(None);
        }
        let invalid = || {
            let method = self.name.rsplit('/').next().unwrap_or(self.name);
            Error::invalid_argument(format!("page_token: not a token returned by a previous {method} call"))
        };
        let bytes = URL_SAFE_NO_PAD.decode(token).map_err(|_| invalid())?;
        if bytes.len() != UNSCOPED_LEN + scope.len() || bytes[0] != VERSION {
            return Err(invalid());
        }
        let (body, crc) = bytes.split_at(bytes.len() - 4);
        if self.checksum(body).to_be_bytes() != crc {
            return Err(invalid());
        }
        let micros = i64::from_be_bytes(body[1..9].try_into().map_err(|_| invalid())?);
        let id = Uuid::from_slice(&body[9..25]).map_err(|_| invalid())?;
        if &body[25..] != scope {
            let field = self.scope.unwrap_or("scope");
            return Err(Error::invalid_argument(format!(
                "page_token: issued for another {field}; send the {field} of the call that returned it"
            )));
        }
        let create_time = u64::try_from(micros)
            .ok()
            .and_then(|micros| UNIX_EPOCH.checked_add(Duration::from_micros(micros)))
            .ok_or_else(invalid)?;
        Ok(Some(Cursor { create_time, id }))
    }

    fn checksum(&self, body: &[u8]) -> u32 {
        let mut hasher = crc32fast::Hasher::new();
        hasher.update(self.name.as_bytes());
        hasher.update(body);
        hasher.finalize()
    }
}

/// One page of a listing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Page<T> {
    /// The items of this page, in listing order.
    pub items: Vec<T>,
    /// Continues the listing; empty on the last page.
    pub next_page_token: String,
}

impl<T> Page<T> {
    /// The page of `size` items out of `fetched`, which was asked for `size + 1`: one more than
    /// the page tells whether another page follows, without a count query. `next_token` makes
    /// the next page's token from the page's last item; a page that ends exactly at the end of
    /// the listing has none.
    pub fn from_lookahead(mut fetched: Vec<T>, size: usize, next_token: impl FnOnce(&T) -> String) -> Page<T> {
        let next_page_token = if fetched.len() > size {
            fetched.truncate(size);
            fetched.last().map(next_token).unwrap_or_default()
        } else {
            String::new()
        };
        Page { items: fetched, next_page_token }
    }
}

/// Now, truncated to the microseconds PostgreSQL's `timestamptz` keeps, and a cursor carries:
/// the create time returned to a client is the one stored, and tokens made from either agree.
pub fn now_micros() -> SystemTime {
    let since_epoch = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    UNIX_EPOCH + Duration::from_micros(u64::try_from(since_epoch.as_micros()).unwrap_or(u64::MAX))
}

/// Microseconds since the Unix epoch; times before it (never assigned) count as the epoch.
fn micros_since_epoch(time: SystemTime) -> i64 {
    time.duration_since(UNIX_EPOCH).map(|d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX)).unwrap_or(0)
}
