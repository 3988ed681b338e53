//! pagination: page sizes, and page tokens that are checked when they come back.

use std::time::{Duration, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use pkg::ErrorKind;
use pkg::pagination::{Cursor, Listing, Page, now_micros, page_size};
use uuid::Uuid;

const LIST_USERS: Listing = Listing::new("user.v1.UserService/ListUsers");
const LIST_ORDERS: Listing = Listing::new("order.v1.OrderService/ListOrdersByUser").scoped_by("user_id");

fn cursor() -> Cursor {
    Cursor {
        create_time: UNIX_EPOCH + Duration::from_micros(1_760_000_000_123_456),
        id: Uuid::parse_str("0199a1b2-3d4a-7e8b-9f10-2a7c5d6e8b01").unwrap(),
    }
}

fn user() -> Uuid {
    Uuid::parse_str("6f1c2b9e-3d4a-4e8b-9f10-2a7c5d6e8b01").unwrap()
}

#[test]
fn page_sizes_follow_the_contract() {
    assert_eq!(page_size(0).unwrap(), 50);
    assert_eq!(page_size(1).unwrap(), 1);
    assert_eq!(page_size(7).unwrap(), 7);
    assert_eq!(page_size(1000).unwrap(), 1000);
    assert_eq!(page_size(1001).unwrap(), 1000);
    assert_eq!(page_size(i32::MAX).unwrap(), 1000);
    let error = page_size(-1).unwrap_err();
    assert_eq!(error.kind(), ErrorKind::InvalidArgument);
    assert_eq!(error.message(), "page_size: -1 is negative");
}

#[test]
fn a_token_round_trips_and_is_url_safe() {
    let token = LIST_USERS.encode(&cursor());
    assert!(token.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'), "{token}");
    assert_eq!(LIST_USERS.decode(&token).unwrap(), Some(cursor()));
    assert_eq!(LIST_USERS.decode("").unwrap(), None);
}

#[test]
fn a_scoped_token_round_trips_for_its_scope_only() {
    let token = LIST_ORDERS.encode_scoped(&cursor(), user().as_bytes());
    assert_eq!(LIST_ORDERS.decode_scoped(&token, user().as_bytes()).unwrap(), Some(cursor()));
    assert_eq!(LIST_ORDERS.decode_scoped("", user().as_bytes()).unwrap(), None);
    let error = LIST_ORDERS.decode_scoped(&token, Uuid::from_u128(42).as_bytes()).unwrap_err();
    assert_eq!(error.kind(), ErrorKind::InvalidArgument);
    assert_eq!(
        error.message(),
        "page_token: issued for another user_id; send the user_id of the call that returned it"
    );
}

#[test]
fn refusals_name_the_call_that_issues_tokens() {
    let error = LIST_USERS.decode("garbage").unwrap_err();
    assert_eq!(error.kind(), ErrorKind::InvalidArgument);
    assert_eq!(error.message(), "page_token: not a token returned by a previous ListUsers call");
    let error = LIST_ORDERS.decode_scoped("garbage", user().as_bytes()).unwrap_err();
    assert_eq!(error.message(), "page_token: not a token returned by a previous ListOrdersByUser call");
}

#[test]
fn every_single_character_edit_is_refused() {
    for (listing, scope) in [(LIST_USERS, &[][..]), (LIST_ORDERS, &user().as_bytes()[..])] {
        let token = listing.encode_scoped(&cursor(), scope);
        for i in 0..token.len() {
            for replacement in ['A', 'z', '0', '-'] {
                let mut edited: Vec<char> = token.chars().collect();
                if edited[i] == replacement {
                    continue;
                }
                edited[i] = replacement;
                let edited: String = edited.into_iter().collect();
                let result = listing.decode_scoped(&edited, scope);
                assert!(
                    result.as_ref().is_err_and(|e| e.kind() == ErrorKind::InvalidArgument),
                    "{edited} gave {result:?}"
                );
            }
        }
    }
}

#[test]
fn garbage_truncation_and_other_versions_are_refused() {
    for (listing, scope) in [(LIST_USERS, &[][..]), (LIST_ORDERS, &user().as_bytes()[..])] {
        let token = listing.encode_scoped(&cursor(), scope);
        let other_version = URL_SAFE_NO_PAD.encode(vec![2u8; 29 + scope.len()]);
        for bad in
            ["not a token!", "x", "abc", &token[1..], &token[..token.len() - 2], &format!("{token}AA"), &other_version]
        {
            let result = listing.decode_scoped(bad, scope);
            assert!(result.as_ref().is_err_and(|e| e.kind() == ErrorKind::InvalidArgument), "{bad} gave {result:?}");
        }
    }
}

#[test]
fn a_token_of_another_listing_is_refused() {
    let other = Listing::new("user.v1.UserService/ListAdmins");
    let token = other.encode(&cursor());
    assert_eq!(LIST_USERS.decode(&token).unwrap_err().kind(), ErrorKind::InvalidArgument);
    // An unscoped token is no scoped listing's, nor the other way round.
    let token = LIST_USERS.encode(&cursor());
    assert!(LIST_ORDERS.decode_scoped(&token, user().as_bytes()).is_err());
    let token = LIST_ORDERS.encode_scoped(&cursor(), user().as_bytes());
    assert!(LIST_USERS.decode(&token).is_err());
}

#[test]
fn a_page_holds_the_asked_size_and_a_token_only_when_more_follow() {
    let token = |last: &u32| format!("after {last}");
    let page = Page::from_lookahead(vec![1, 2, 3, 4], 3, token);
    assert_eq!(page, Page { items: vec![1, 2, 3], next_page_token: "after 3".into() });
    // A page that ends exactly at the last item has no next token.
    let page = Page::from_lookahead(vec![1, 2, 3], 3, token);
    assert_eq!(page, Page { items: vec![1, 2, 3], next_page_token: String::new() });
    let page = Page::from_lookahead(Vec::new(), 3, token);
    assert!(page.items.is_empty() && page.next_page_token.is_empty());
}

#[test]
fn now_is_truncated_to_microseconds_and_survives_a_token() {
    let now = now_micros();
    assert_eq!(now.duration_since(UNIX_EPOCH).unwrap().subsec_nanos() % 1000, 0);
    let cursor = Cursor { create_time: now, id: Uuid::from_u128(7) };
    assert_eq!(LIST_USERS.decode(&LIST_USERS.encode(&cursor)).unwrap(), Some(cursor));
}
