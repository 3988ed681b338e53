//! One error type for every service: it becomes a gRPC status or an HTTP JSON response.
//!
//! | kind | gRPC code | HTTP status | `error.code` in the JSON body |
//! |---|---|---|---|
//! | InvalidArgument | INVALID_ARGUMENT | 400 | `INVALID_ARGUMENT` |
//! | NotFound | NOT_FOUND | 404 | `NOT_FOUND` |
//! | AlreadyExists | ALREADY_EXISTS | 409 | `ALREADY_EXISTS` |
//! | Unauthenticated | UNAUTHENTICATED | 401 | `UNAUTHENTICATED` |
//! | PermissionDenied | PERMISSION_DENIED | 403 | `PERMISSION_DENIED` |
//! | ResourceExhausted | RESOURCE_EXHAUSTED (+ `google.rpc.RetryInfo`) | 429 (+ `Retry-After`) | `RESOURCE_EXHAUSTED` |
//! | Unavailable | UNAVAILABLE | 503 | `UNAVAILABLE` |
//! | DeadlineExceeded | DEADLINE_EXCEEDED | 504 | `DEADLINE_EXCEEDED` |
//! | Internal | INTERNAL | 500 | `INTERNAL` |
//!
//! An internal error's message and source are logged where it is converted (inside the request's
//! span, so the log line carries the trace id) and replaced by "internal error" on the wire: a
//! database error text says too much to a client.
//!
//! Statuses coming back from an upstream map the other way, so `?` on a client call gives an
//! [`Error`]. Codes outside the list above fold into the closest kind: FAILED_PRECONDITION and
//! OUT_OF_RANGE into InvalidArgument, ABORTED into AlreadyExists (both are conflicts, HTTP 409),
//! CANCELLED into Unavailable, and UNKNOWN, UNIMPLEMENTED, DATA_LOSS into Internal.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode};
use serde::{Deserialize, Serialize};
use tonic::Code;
use tonic_types::{ErrorDetails, StatusExt};

/// What went wrong, in the terms both gRPC and HTTP clients understand.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The request is malformed or breaks a rule; retrying it unchanged will fail again.
    InvalidArgument,
    /// The thing asked for does not exist.
    NotFound,
    /// The thing to create exists already, or the request conflicts with the current state.
    AlreadyExists,
    /// The caller did not say who they are, or the credentials are invalid.
    Unauthenticated,
    /// The caller is known but not allowed to do this.
    PermissionDenied,
    /// Too many requests; the client may try again after `retry_after`, if given.
    ResourceExhausted {
        /// When the client may try again.
        retry_after: Option<Duration>,
    },
    /// A dependency is down or overloaded; the same request may succeed later.
    Unavailable,
    /// The work did not finish in time.
    DeadlineExceeded,
    /// A bug or an unexpected failure; details are logged, never sent to clients.
    Internal,
}

impl ErrorKind {
    /// The code clients see in the JSON body, named like the gRPC code: `"NOT_FOUND"`.
    pub fn code(self) -> &'static str {
        match self {
            ErrorKind::InvalidArgument => "INVALID_ARGUMENT",
            ErrorKind::NotFound => "NOT_FOUND",
            ErrorKind::AlreadyExists => "ALREADY_EXISTS",
            ErrorKind::Unauthenticated => "UNAUTHENTICATED",
            ErrorKind::PermissionDenied => "PERMISSION_DENIED",
            ErrorKind::ResourceExhausted { .. } => "RESOURCE_EXHAUSTED",
            ErrorKind::Unavailable => "UNAVAILABLE",
            ErrorKind::DeadlineExceeded => "DEADLINE_EXCEEDED",
            ErrorKind::Internal => "INTERNAL",
        }
    }

    /// The gRPC status code.
    pub fn grpc_code(self) -> Code {
        match self {
            ErrorKind::InvalidArgument => Code::InvalidArgument,
            ErrorKind::NotFound => Code::NotFound,
            ErrorKind::AlreadyExists => Code::AlreadyExists,
            ErrorKind::Unauthenticated => Code::Unauthenticated,
            ErrorKind::PermissionDenied => Code::PermissionDenied,
            ErrorKind::ResourceExhausted { .. } => Code::ResourceExhausted,
            ErrorKind::Unavailable => Code::Unavailable,
            ErrorKind::DeadlineExceeded => Code::DeadlineExceeded,
            ErrorKind::Internal => Code::Internal,
        }
    }

    /// The HTTP status.
    pub fn http_status(self) -> StatusCode {
        match self {
            ErrorKind::InvalidArgument => StatusCode::BAD_REQUEST,
            ErrorKind::NotFound => StatusCode::NOT_FOUND,
            ErrorKind::AlreadyExists => StatusCode::CONFLICT,
            ErrorKind::Unauthenticated => StatusCode::UNAUTHORIZED,
            ErrorKind::PermissionDenied => StatusCode::FORBIDDEN,
            ErrorKind::ResourceExhausted { .. } => StatusCode::TOO_MANY_REQUESTS,
            ErrorKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            ErrorKind::DeadlineExceeded => StatusCode::GATEWAY_TIMEOUT,
            ErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The kind a gRPC code maps to; see the module documentation for codes outside the list.
    pub fn from_grpc_code(code: Code) -> ErrorKind {
        match code {
            Code::InvalidArgument | Code::FailedPrecondition | Code::OutOfRange => ErrorKind::InvalidArgument,
            Code::NotFound => ErrorKind::NotFound,
            Code::AlreadyExists | Code::Aborted => ErrorKind::AlreadyExists,
            Code::Unauthenticated => ErrorKind::Unauthenticated,
            Code::PermissionDenied => ErrorKind::PermissionDenied,
            Code::ResourceExhausted => ErrorKind::ResourceExhausted { retry_after: None },
            Code::Unavailable | Code::Cancelled => ErrorKind::Unavailable,
            Code::DeadlineExceeded => ErrorKind::DeadlineExceeded,
            Code::Ok | Code::Unknown | Code::Unimplemented | Code::Internal | Code::DataLoss => ErrorKind::Internal,
        }
    }
}

/// A service error: a kind, a message for the client, and optionally the cause for the logs.
#[derive(Clone)]
pub struct Error {
    kind: ErrorKind,
    message: String,
    source: Option<Arc<dyn std::error::Error + Send + Sync + 'static>>,
}

/// A `Result` with [`Error`] as its error.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An error of the given kind; the message is what clients read (except for Internal).
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error { kind, message: message.into(), source: None }
    }

    /// See [`ErrorKind::InvalidArgument`].
    pub fn invalid_argument(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::InvalidArgument, message)
    }

    /// See [`ErrorKind::NotFound`].
    pub fn not_found(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::NotFound, message)
    }

    /// See [`ErrorKind::AlreadyExists`].
    pub fn already_exists(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::AlreadyExists, message)
    }

    /// See [`ErrorKind::Unauthenticated`].
    pub fn unauthenticated(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::Unauthenticated, message)
    }

    /// See [`ErrorKind::PermissionDenied`].
    pub fn permission_denied(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::PermissionDenied, message)
    }

    /// See [`ErrorKind::ResourceExhausted`].
    pub fn resource_exhausted(message: impl Into<String>, retry_after: Option<Duration>) -> Self {
        Error::new(ErrorKind::ResourceExhausted { retry_after }, message)
    }

    /// See [`ErrorKind::Unavailable`].
    pub fn unavailable(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::Unavailable, message)
    }

    /// See [`ErrorKind::DeadlineExceeded`].
    pub fn deadline_exceeded(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::DeadlineExceeded, message)
    }

    /// See [`ErrorKind::Internal`]: the message is logged, never sent.
    pub fn internal(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::Internal, message)
    }

    /// Attaches the underlying cause, logged with internal errors.
    pub fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.source = Some(Arc::new(source));
        self
    }

    /// What went wrong.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The message, as given (for Internal errors, what is logged, not what is sent).
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The message clients receive.
    pub fn public_message(&self) -> &str {
        match self.kind {
            ErrorKind::Internal => "internal error",
            _ => &self.message,
        }
    }

    /// The JSON body an HTTP client receives for this error; `request_id` is the trace id of
    /// the request being served, when there is one.
    pub fn to_body(&self) -> ErrorBody {
        ErrorBody {
            error: ErrorDetail { code: self.kind.code().to_owned(), message: self.public_message().to_owned() },
            request_id: crate::trace::current_trace_id().map(|id| id.to_string()),
        }
    }

    /// Logs an internal error with its cause; called where it leaves the service.
    fn log_if_internal(&self) {
        if self.kind == ErrorKind::Internal {
            let mut causes = String::new();
            let mut next = self.source.as_deref().map(|e| e as &(dyn std::error::Error + 'static));
            while let Some(cause) = next {
                if !causes.is_empty() {
                    causes.push_str(": ");
                }
                causes.push_str(&cause.to_string());
                next = cause.source();
            }
            tracing::error!(error.message = %self.message, error.cause = %causes, "internal error");
        }
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Error");
        d.field("kind", &self.kind).field("message", &self.message);
        if let Some(source) = &self.source {
            d.field("source", source);
        }
        d.finish()
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source.as_deref().map(|e| e as &(dyn std::error::Error + 'static))
    }
}

/// The JSON body of an HTTP error response.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// What went wrong.
    pub error: ErrorDetail,
    /// The trace id of the failed request, to find its logs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

/// The `error` object of an [`ErrorBody`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorDetail {
    /// Like `"NOT_FOUND"`: see [`ErrorKind::code`].
    pub code: String,
    /// Human-readable; "internal error" for internal errors.
    pub message: String,
}

impl From<Error> for tonic::Status {
    fn from(error: Error) -> tonic::Status {
        error.log_if_internal();
        let code = error.kind.grpc_code();
        match error.kind {
            // google.rpc.RetryInfo is how gRPC clients in every language learn when to retry.
            ErrorKind::ResourceExhausted { retry_after: Some(delay) } => tonic::Status::with_error_details(
                code,
                error.public_message(),
                ErrorDetails::with_retry_info(Some(delay)),
            ),
            _ => tonic::Status::new(code, error.public_message()),
        }
    }
}

impl From<tonic::Status> for Error {
    fn from(status: tonic::Status) -> Error {
        let kind = match ErrorKind::from_grpc_code(status.code()) {
            ErrorKind::ResourceExhausted { .. } => ErrorKind::ResourceExhausted {
                retry_after: status.get_details_retry_info().and_then(|info| info.retry_delay),
            },
            kind => kind,
        };
        Error::new(kind, status.message().to_owned()).with_source(status)
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        self.log_if_internal();
        let mut response = (self.kind.http_status(), axum::Json(self.to_body())).into_response();
        if let ErrorKind::ResourceExhausted { retry_after: Some(delay) } = self.kind {
            // Retry-After counts whole seconds; round up so clients never come back too early.
            let seconds = delay.as_secs() + u64::from(delay.subsec_nanos() > 0);
            response.headers_mut().insert(http::header::RETRY_AFTER, HeaderValue::from(seconds.max(1)));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_grpc_code_maps_to_a_kind_that_maps_back_to_a_close_code() {
        for code in [
            Code::InvalidArgument,
            Code::NotFound,
            Code::AlreadyExists,
            Code::Unauthenticated,
            Code::PermissionDenied,
            Code::ResourceExhausted,
            Code::Unavailable,
            Code::DeadlineExceeded,
            Code::Internal,
        ] {
            assert_eq!(ErrorKind::from_grpc_code(code).grpc_code(), code);
        }
        assert_eq!(ErrorKind::from_grpc_code(Code::FailedPrecondition), ErrorKind::InvalidArgument);
        assert_eq!(ErrorKind::from_grpc_code(Code::Aborted), ErrorKind::AlreadyExists);
        assert_eq!(ErrorKind::from_grpc_code(Code::Unknown), ErrorKind::Internal);
    }
}
