//! Bearer-token authentication: HS256 JSON Web Tokens signed with `JWT_SECRET`.
//!
//! A request to a protected route needs `Authorization: Bearer <jwt>` where the token:
//!
//! - has a header whose `alg` is exactly `HS256` (anything else, `none` and `HS512`
//!   included, is refused before the signature is even looked at: the algorithm is fixed by
//!   the gateway, never chosen by the token);
//! - carries a valid HMAC-SHA256 signature under the configured secret (compared in constant
//!   time);
//! - has a numeric `exp` in the future and, when present, an `nbf` in the past, both allowing
//!   [`LEEWAY`] of clock skew;
//! - has a non-empty string `sub`: the client's identity, which the rate limiter keys on.
//!
//! Verification is written here on top of the RustCrypto `hmac` and `sha2` crates rather than
//! a general JWT library: the gateway accepts one algorithm, so it needs none of the RSA and
//! elliptic-curve code such a library links into a static image, and pinning the algorithm in
//! code rules out algorithm-confusion attacks by construction.
//!
//! Anything wrong gives 401 with a JSON error body and a `WWW-Authenticate` header (RFC 6750).
//! The message says what was wrong with the token, never anything about the secret.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use http::{HeaderValue, header};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::config::JwtSecret;

/// Clock skew tolerated on `exp` and `nbf`, between the token issuer's clock and ours.
pub const LEEWAY: Duration = Duration::from_secs(30);

/// Tokens longer than this are refused unparsed: a bearer token is a few hundred bytes, and
/// parsing attacker-sized input buys nothing.
const MAX_TOKEN_LEN: usize = 8 * 1024;

type HmacSha256 = Hmac<Sha256>;

/// The authenticated client, put into the request's extensions by [`require_bearer`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Subject(pub String);

/// Why a token was refused; the `Display` text is what the client reads.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("missing bearer token: send Authorization: Bearer <token>")]
    Missing,
    #[error("malformed Authorization header: expected Bearer <token>")]
    NotBearer,
    #[error("malformed token: {0}")]
    Malformed(&'static str),
    #[error("unsupported token algorithm: only HS256 is accepted")]
    Algorithm,
    #[error("invalid token signature")]
    Signature,
    #[error("token has expired")]
    Expired,
    #[error("token is not valid yet")]
    NotYetValid,
}

impl IntoResponse for AuthError {
    fn into_response(self) -> Response {
        let mut response = pkg::Error::unauthenticated(self.to_string()).into_response();
        // RFC 6750 §3: a 401 to a bearer-token request names the scheme and the error.
        let challenge = match self {
            AuthError::Missing => "Bearer",
            _ => "Bearer error=\"invalid_token\"",
        };
        response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(challenge));
        response
    }
}

#[derive(Deserialize)]
struct JwtHeader {
    alg: String,
    #[serde(default)]
    typ: Option<String>,
}

/// The claims of a token the gateway signs (`--mint-token`).
#[derive(Debug, Serialize, Deserialize)]
pub struct Claims {
    /// The client's identity.
    pub sub: String,
    /// Expiry, in seconds since the Unix epoch. Required.
    pub exp: u64,
    /// Not valid before, in seconds since the Unix epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<u64>,
    /// Issued at, in seconds since the Unix epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<u64>,
}

/// The claims as read from a token: RFC 7519 allows fractional NumericDates, so times are
/// read as numbers of any kind.
#[derive(Deserialize)]
struct ReceivedClaims {
    sub: String,
    exp: f64,
    #[serde(default)]
    nbf: Option<f64>,
}

/// Checks HS256 tokens against one secret.
#[derive(Clone, Debug)]
pub struct Verifier {
    secret: JwtSecret,
}

impl Verifier {
    /// A verifier for tokens signed with `secret`.
    pub fn new(secret: JwtSecret) -> Self {
        Verifier { secret }
    }

    /// Verifies `token` as of `now` and returns its subject.
    pub fn verify(&self, token: &str, now: SystemTime) -> Result<Subject, AuthError> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(AuthError::Malformed("token is too long"));
        }
        let mut parts = token.split('.');
        let (Some(header_b64), Some(payload), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(AuthError::Malformed("expected three dot-separated parts"));
        };

        let header: JwtHeader =
            decode_json(header_b64, "header is not base64url", "header is not a JSON object with alg")?;
        if header.alg != "HS256" {
            return Err(AuthError::Algorithm);
        }
        if header.typ.as_deref().is_some_and(|t| !t.eq_ignore_ascii_case("JWT")) {
            return Err(AuthError::Malformed("header typ is not JWT"));
        }

        let signature =
            URL_SAFE_NO_PAD.decode(signature).map_err(|_| AuthError::Malformed("signature is not base64url"))?;
        // The signed bytes are the token up to its last dot: "<header>.<payload>".
        let signing_input = &token[..header_b64.len() + 1 + payload.len()];
        let mut mac = self.mac();
        mac.update(signing_input.as_bytes());
        // verify_slice compares in constant time.
        mac.verify_slice(&signature).map_err(|_| AuthError::Signature)?;

        // Only a correctly signed payload is parsed as claims.
        let claims: ReceivedClaims = decode_json(
            payload,
            "payload is not base64url",
            "payload is not a JSON object with a string sub and a numeric exp",
        )?;
        let now = now.duration_since(UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64());
        let leeway = LEEWAY.as_secs_f64();
        if now >= claims.exp + leeway {
            return Err(AuthError::Expired);
        }
        if claims.nbf.is_some_and(|nbf| now + leeway < nbf) {
            return Err(AuthError::NotYetValid);
        }
        if claims.sub.is_empty() {
            return Err(AuthError::Malformed("sub is empty"));
        }
        Ok(Subject(claims.sub))
    }

    /// Signs a token for `subject` valid for `ttl` from `now`: for `--mint-token` and tests.
    pub fn mint(&self, subject: &str, ttl: Duration, now: SystemTime) -> String {
        let now = unix_seconds(now);
        let claims =
            Claims { sub: subject.to_owned(), exp: now.saturating_add(ttl.as_secs()), nbf: None, iat: Some(now) };
        self.sign(&claims)
    }

    /// Signs arbitrary claims with HS256.
    pub fn sign(&self, claims: &impl Serialize) -> String {
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
        // Serialising plain structs and maps to JSON does not fail.
        let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).unwrap_or_default());
        let signing_input = format!("{header}.{payload}");
        let mut mac = self.mac();
        mac.update(signing_input.as_bytes());
        let signature = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
        format!("{signing_input}.{signature}")
    }

    fn mac(&self) -> HmacSha256 {
        // HMAC takes keys of any length; the error type exists for fixed-size-key MACs.
        HmacSha256::new_from_slice(self.secret.expose()).expect("HMAC accepts any key length")
    }
}

/// Decodes one base64url part of a token as JSON; the messages say what was wrong with which.
fn decode_json<T: for<'de> Deserialize<'de>>(
    part: &str,
    not_base64: &'static str,
    not_json: &'static str,
) -> Result<T, AuthError> {
    let bytes = URL_SAFE_NO_PAD.decode(part).map_err(|_| AuthError::Malformed(not_base64))?;
    serde_json::from_slice(&bytes).map_err(|_| AuthError::Malformed(not_json))
}

fn unix_seconds(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// The token in an `Authorization` header value: `Bearer <token>` (scheme case-insensitive).
fn bearer_token(value: &HeaderValue) -> Result<&str, AuthError> {
    let value = value.to_str().map_err(|_| AuthError::NotBearer)?;
    let (scheme, token) = value.split_once(' ').ok_or(AuthError::NotBearer)?;
    let token = token.trim();
    if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() {
        return Err(AuthError::NotBearer);
    }
    Ok(token)
}

/// Middleware for protected routes: 401 unless the request carries a valid bearer token;
/// otherwise the [`Subject`] is added to the request's extensions.
pub async fn require_bearer(State(verifier): State<Verifier>, mut request: Request, next: Next) -> Response {
    let result = request
        .headers()
        .get(header::AUTHORIZATION)
        .ok_or(AuthError::Missing)
        .and_then(bearer_token)
        .and_then(|token| verifier.verify(token, SystemTime::now()));
    match result {
        Ok(subject) => {
            request.extensions_mut().insert(subject);
            next.run(request).await
        }
        Err(error) => {
            tracing::info!(reason = %error, "request refused: not authenticated");
            error.into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use axum::Router;
    use axum::body::Body;
    use axum::routing::get;
    use tower::ServiceExt as _;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

    fn verifier() -> Verifier {
        Verifier::new(JwtSecret::new(SECRET).unwrap())
    }

    fn at(seconds: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(seconds)
    }

    /// A token with the given header JSON and claims, signed with HMAC-SHA256 regardless of
    /// what the header says: what an attacker forging tokens would send.
    fn forge(header: &str, claims: serde_json::Value, key: &[u8]) -> String {
        let input = format!("{}.{}", URL_SAFE_NO_PAD.encode(header), URL_SAFE_NO_PAD.encode(claims.to_string()));
        let mut mac = HmacSha256::new_from_slice(key).unwrap();
        mac.update(input.as_bytes());
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes()))
    }

    #[test]
    fn a_minted_token_verifies_to_its_subject() {
        let token = verifier().mint("alice", Duration::from_secs(60), at(1_000));
        assert_eq!(verifier().verify(&token, at(1_030)), Ok(Subject("alice".into())));
    }

    #[test]
    fn expiry_and_not_before_are_enforced_with_leeway() {
        let v = verifier();
        let token = v.mint("alice", Duration::from_secs(60), at(1_000));
        let leeway = LEEWAY.as_secs();
        assert!(v.verify(&token, at(1_060 + leeway - 1)).is_ok());
        assert_eq!(v.verify(&token, at(1_060 + leeway)), Err(AuthError::Expired));

        let later = v.sign(&serde_json::json!({"sub": "bob", "exp": 5_000, "nbf": 2_000}));
        assert_eq!(v.verify(&later, at(1_000)), Err(AuthError::NotYetValid));
        assert!(v.verify(&later, at(2_000 - leeway)).is_ok());
    }

    #[test]
    fn fractional_times_are_accepted() {
        let v = verifier();
        let token = v.sign(&serde_json::json!({"sub": "alice", "exp": 5_000.5, "nbf": 1_000.25}));
        assert!(v.verify(&token, at(2_000)).is_ok());
    }

    #[test]
    fn a_token_without_exp_or_sub_is_malformed() {
        let v = verifier();
        for claims in [
            serde_json::json!({"sub": "alice"}),
            serde_json::json!({"exp": 5_000}),
            serde_json::json!({"sub": "alice", "exp": "tomorrow"}),
            serde_json::json!({"sub": "", "exp": 5_000}),
        ] {
            let token = v.sign(&claims);
            assert!(matches!(v.verify(&token, at(1_000)), Err(AuthError::Malformed(_))), "{claims}");
        }
    }

    #[test]
    fn a_bad_signature_is_refused() {
        let token = forge(
            r#"{"alg":"HS256","typ":"JWT"}"#,
            serde_json::json!({"sub": "mallory", "exp": 5_000}),
            b"another-secret-another-secret-another",
        );
        assert_eq!(verifier().verify(&token, at(1_000)), Err(AuthError::Signature));

        // Tampering with the payload of a genuine token breaks its signature.
        let genuine = verifier().mint("alice", Duration::from_secs(60), at(1_000));
        let mut parts: Vec<&str> = genuine.split('.').collect();
        let admin = URL_SAFE_NO_PAD.encode(r#"{"sub":"admin","exp":5000}"#);
        parts[1] = &admin;
        assert_eq!(verifier().verify(&parts.join("."), at(1_000)), Err(AuthError::Signature));
    }

    #[test]
    fn algorithms_other_than_hs256_are_refused() {
        let claims = serde_json::json!({"sub": "mallory", "exp": 5_000});
        // alg none with an empty signature: the classic forgery.
        let none = format!(
            "{}.{}.",
            URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        assert_eq!(verifier().verify(&none, at(1_000)), Err(AuthError::Algorithm));
        for alg in ["HS512", "RS256", "hs256", "None"] {
            let token = forge(&format!(r#"{{"alg":"{alg}"}}"#), claims.clone(), SECRET);
            assert_eq!(verifier().verify(&token, at(1_000)), Err(AuthError::Algorithm), "{alg}");
        }
    }

    #[test]
    fn garbage_is_malformed() {
        for token in ["", "abc", "a.b", "a.b.c.d", "!!!.e30.", "e30.e30.sig"] {
            assert!(matches!(verifier().verify(token, at(1_000)), Err(AuthError::Malformed(_))), "{token:?}");
        }
        let huge = "a".repeat(MAX_TOKEN_LEN + 1);
        assert!(matches!(verifier().verify(&huge, at(1_000)), Err(AuthError::Malformed(_))));
    }

    fn app() -> Router {
        Router::new()
            .route("/", get(|axum::Extension(Subject(sub)): axum::Extension<Subject>| async move { sub }))
            .route_layer(axum::middleware::from_fn_with_state(verifier(), require_bearer))
    }

    async fn call(authorization: Option<&str>) -> (http::StatusCode, http::HeaderMap, serde_json::Value) {
        let mut request = http::Request::get("/");
        if let Some(value) = authorization {
            request = request.header(header::AUTHORIZATION, value);
        }
        let response = app().oneshot(request.body(Body::empty()).unwrap()).await.unwrap();
        let (parts, body) = response.into_parts();
        let bytes = http_body_util::BodyExt::collect(body).await.unwrap().to_bytes();
        let json = serde_json::from_slice(&bytes)
            .unwrap_or(serde_json::Value::String(String::from_utf8_lossy(&bytes).into_owned()));
        (parts.status, parts.headers, json)
    }

    #[tokio::test]
    async fn the_middleware_answers_401_with_a_json_error() {
        let expired = verifier().mint("alice", Duration::from_secs(1), at(1_000));
        let none = format!(
            "{}.{}.",
            URL_SAFE_NO_PAD.encode(r#"{"alg":"none"}"#),
            URL_SAFE_NO_PAD.encode(r#"{"sub":"mallory","exp":99999999999}"#)
        );
        let hs512 =
            forge(r#"{"alg":"HS512"}"#, serde_json::json!({"sub": "mallory", "exp": 99_999_999_999u64}), SECRET);
        let cases = [
            (None, "missing bearer token"),
            (Some("Basic YWxhZGRpbjpvcGVuc2VzYW1l".to_owned()), "malformed Authorization"),
            (Some("Bearer".to_owned()), "malformed Authorization"),
            (Some("Bearer not-a-jwt".to_owned()), "malformed token"),
            (Some(format!("Bearer {expired}")), "expired"),
            (Some(format!("Bearer {none}")), "only HS256"),
            (Some(format!("Bearer {hs512}")), "only HS256"),
        ];
        for (authorization, expected) in cases {
            let (status, headers, body) = call(authorization.as_deref()).await;
            assert_eq!(status, http::StatusCode::UNAUTHORIZED, "{authorization:?}");
            assert_eq!(body["error"]["code"], "UNAUTHENTICATED", "{authorization:?}");
            let message = body["error"]["message"].as_str().unwrap();
            assert!(message.contains(expected), "{authorization:?}: {message}");
            assert!(headers.contains_key(header::WWW_AUTHENTICATE));
        }
    }

    #[tokio::test]
    async fn a_valid_token_reaches_the_handler_with_its_subject() {
        let token = verifier().mint("alice", Duration::from_secs(60), SystemTime::now());
        let (status, _, body) = call(Some(&format!("bearer {token}"))).await;
        assert_eq!(status, http::StatusCode::OK);
        assert_eq!(body, "alice");
    }
}
