//! How an HTTP or gRPC exchange ended, observed from the server's response body.
//!
//! The server layers of [`trace`](crate::trace) and [`metrics`](crate::metrics) need the final
//! status of each request. For HTTP it is the response status. For gRPC it usually is not known
//! when the response headers leave: a successful call sends `grpc-status` in the trailers, after
//! the messages, so the layers wrap the response body in an [`ObservedBody`] that reports the
//! outcome when the body ends, when its trailers pass, or when it is dropped unfinished (the
//! client went away).

use std::borrow::Cow;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use http::{HeaderMap, Request, Response, StatusCode};
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use tonic::Code;

/// Which protocol a request speaks; gRPC is recognised by its `application/grpc` content type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    /// Plain HTTP (axum routes).
    Http,
    /// gRPC over HTTP/2 (tonic services).
    Grpc,
}

impl Protocol {
    /// Tells the protocol of a request.
    pub fn of<B>(request: &Request<B>) -> Protocol {
        let grpc = request
            .headers()
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/grpc"));
        if grpc { Protocol::Grpc } else { Protocol::Http }
    }

    /// `"http"` or `"grpc"`, as used in labels and log fields.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Http => "http",
            Protocol::Grpc => "grpc",
        }
    }
}

/// The route a request is counted under: the matched axum route template (`/users/{id}`, never
/// the raw path, whose ids would make one time series per user), or the gRPC method path
/// (`/user.v1.UserService/GetUser`). `"unmatched"` when axum matched no route.
pub(crate) fn route_of<B>(request: &Request<B>, protocol: Protocol) -> String {
    match protocol {
        Protocol::Grpc => request.uri().path().to_owned(),
        Protocol::Http => match request.extensions().get::<axum::extract::MatchedPath>() {
            Some(matched) => matched.as_str().to_owned(),
            None => UNMATCHED.to_owned(),
        },
    }
}

/// The route label of requests that matched no route.
pub(crate) const UNMATCHED: &str = "unmatched";

/// How an exchange ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// An HTTP response status.
    Http(StatusCode),
    /// A gRPC status code.
    Grpc(Code),
}

impl Outcome {
    /// The status as a label: `"200"` for HTTP, `"NOT_FOUND"` for gRPC.
    pub fn label(self) -> Cow<'static, str> {
        match self {
            Outcome::Http(status) => Cow::Owned(status.as_str().to_owned()),
            Outcome::Grpc(code) => Cow::Borrowed(grpc_code_name(code)),
        }
    }

    /// Whether the server, rather than the client, is at fault: worth a warning in the logs.
    pub fn is_server_error(self) -> bool {
        match self {
            Outcome::Http(status) => status.is_server_error(),
            Outcome::Grpc(code) => matches!(
                code,
                Code::Unknown
                    | Code::DeadlineExceeded
                    | Code::Unimplemented
                    | Code::Internal
                    | Code::Unavailable
                    | Code::DataLoss
            ),
        }
    }
}

/// The canonical name of a gRPC code, as in the gRPC specification: `"NOT_FOUND"`.
pub fn grpc_code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

fn grpc_status_in(headers: &HeaderMap) -> Option<Code> {
    let value = headers.get("grpc-status")?.to_str().ok()?.parse::<i32>().ok()?;
    Some(Code::from_i32(value))
}

/// The gRPC code for a non-200 HTTP response to a gRPC request, per the gRPC HTTP/2 spec.
fn grpc_code_for_http(status: StatusCode) -> Code {
    match status.as_u16() {
        400 => Code::Internal,
        401 => Code::Unauthenticated,
        403 => Code::PermissionDenied,
        404 => Code::Unimplemented,
        429 | 502 | 503 | 504 => Code::Unavailable,
        _ => Code::Unknown,
    }
}

type OnEnd = Box<dyn FnOnce(Outcome) + Send + 'static>;

/// Watches a response on its way out and calls back once with its [`Outcome`].
pub(crate) struct Observer {
    protocol: Protocol,
    http_status: StatusCode,
    grpc_status: Option<Code>,
    on_end: OnEnd,
}

impl Observer {
    pub(crate) fn new<B>(protocol: Protocol, response: &Response<B>, on_end: OnEnd) -> Observer {
        let grpc_status = match protocol {
            Protocol::Grpc if response.status() != StatusCode::OK => Some(grpc_code_for_http(response.status())),
            // A trailers-only response (every error tonic sends) carries the status in headers.
            Protocol::Grpc => grpc_status_in(response.headers()),
            Protocol::Http => None,
        };
        Observer { protocol, http_status: response.status(), grpc_status, on_end }
    }

    fn trailers(&mut self, trailers: &HeaderMap) {
        if let Some(code) = grpc_status_in(trailers) {
            self.grpc_status = Some(code);
        }
    }

    fn finish(self, ended: Ended) {
        let outcome = match self.protocol {
            Protocol::Http => Outcome::Http(self.http_status),
            Protocol::Grpc => Outcome::Grpc(match (self.grpc_status, ended) {
                (Some(code), _) => code,
                (None, Ended::Complete) => Code::Unknown,
                (None, Ended::Failed) => Code::Internal,
                (None, Ended::Abandoned) => Code::Cancelled,
            }),
        };
        (self.on_end)(outcome);
    }
}

#[derive(Clone, Copy)]
enum Ended {
    Complete,
    Failed,
    Abandoned,
}

pin_project! {
    /// A response body that reports how the exchange ended; see the module documentation.
    pub struct ObservedBody<B> {
        #[pin]
        inner: B,
        observer: Option<Observer>,
        span: tracing::Span,
        // Whether the inner body said it had nothing more, as of the last look. Kept here
        // because Drop cannot ask the body itself (it has no `B: Body` bound).
        at_end: bool,
    }

    impl<B> PinnedDrop for ObservedBody<B> {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            if let Some(observer) = this.observer.take() {
                let _entered = this.span.enter();
                let ended = if *this.at_end { Ended::Complete } else { Ended::Abandoned };
                observer.finish(ended);
            }
        }
    }
}

impl<B> ObservedBody<B> {
    /// `span` is entered while the body is polled, so work done then is attributed to it.
    pub(crate) fn new(inner: B, observer: Observer, span: tracing::Span) -> Self
    where
        B: Body,
    {
        let at_end = inner.is_end_stream();
        ObservedBody { inner, observer: Some(observer), span, at_end }
    }
}

impl<B: Body> Body for ObservedBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let mut this = self.project();
        let _entered = this.span.enter();
        let frame = ready!(this.inner.as_mut().poll_frame(cx));
        *this.at_end = this.inner.is_end_stream();
        match &frame {
            Some(Ok(frame)) => {
                if let (Some(trailers), Some(observer)) = (frame.trailers_ref(), this.observer.as_mut()) {
                    observer.trailers(trailers);
                }
            }
            Some(Err(_)) => {
                if let Some(observer) = this.observer.take() {
                    observer.finish(Ended::Failed);
                }
            }
            None => {
                if let Some(observer) = this.observer.take() {
                    observer.finish(Ended::Complete);
                }
            }
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
