//! Graceful shutdown on SIGTERM and SIGINT: stop accepting, let in-flight requests finish
//! within a bound, then exit.
//!
//! ```no_run
//! # async fn f(listener: tokio::net::TcpListener, app: axum::Router) -> std::io::Result<()> {
//! use pkg::shutdown::{Shutdown, ShutdownConfig};
//! let shutdown = Shutdown::on_signals(ShutdownConfig::default())?;
//! let server = axum::serve(listener, app).with_graceful_shutdown(shutdown.signalled());
//! // Ok(..) when every request finished; Err(GraceExpired) when the grace period ran out.
//! let _ = shutdown.drain(server).await;
//! # Ok(()) }
//! ```
//!
//! The services' static binaries run as PID 1 in `FROM scratch` images, where the kernel gives
//! no default action to SIGTERM: unhandled, `docker stop` waits its full 10 s and kills. Hence
//! the default grace period of 5 s, well inside Docker's 10 s and Kubernetes' 30 s.
//!
//! With [`ShutdownConfig::force_exit`] (the default), the bound holds even when something
//! refuses to stop: a second signal exits at once, and if draining outlives the grace period
//! the process exits one second after [`Shutdown::drain`] returns, whether or not `main` manages
//! to return (a runtime waiting on a stuck blocking task would otherwise hold it up).

use std::fmt;
use std::future::{Future, IntoFuture};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

/// How long in-flight requests get, and whether the process is made to exit after that.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ShutdownConfig {
    /// How long in-flight requests may take to finish once shutdown began.
    pub grace: Duration,
    /// Exit the process when the grace period runs out or on a second signal; off in tests.
    pub force_exit: bool,
}

impl Default for ShutdownConfig {
    fn default() -> Self {
        ShutdownConfig { grace: Duration::from_secs(5), force_exit: true }
    }
}

/// How long after an expired grace period the process is made to exit, leaving `main` time to
/// flush telemetry.
const EXIT_BACKSTOP: Duration = Duration::from_secs(1);

/// Draining took longer than the grace period; the in-flight requests were abandoned.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("in-flight requests did not finish within {}ms of the shutdown signal", grace.as_millis())]
pub struct GraceExpired {
    /// The grace period.
    pub grace: Duration,
}

/// A shutdown switch: flipped by a signal or by [`trigger`](Shutdown::trigger). Clones share it.
#[derive(Clone)]
pub struct Shutdown {
    inner: Arc<Inner>,
}

struct Inner {
    triggered: watch::Sender<bool>,
    config: ShutdownConfig,
}

impl fmt::Debug for Shutdown {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Shutdown").field("config", &self.inner.config).field("triggered", &self.is_triggered()).finish()
    }
}

impl Shutdown {
    /// A switch flipped only by [`trigger`](Shutdown::trigger): for tests, or for services
    /// that handle signals themselves.
    pub fn new(config: ShutdownConfig) -> Self {
        let (triggered, _) = watch::channel(false);
        Shutdown { inner: Arc::new(Inner { triggered, config }) }
    }

    /// A switch flipped by SIGTERM or SIGINT (Ctrl-C). Needs a Tokio runtime.
    pub fn on_signals(config: ShutdownConfig) -> std::io::Result<Self> {
        let shutdown = Shutdown::new(config);
        let mut signals = Signals::new()?;
        let handle = shutdown.clone();
        tokio::spawn(async move {
            let name = signals.next().await;
            tracing::info!(
                target: "pkg::shutdown",
                signal = name,
                grace_ms = config.grace.as_millis() as u64,
                "shutting down: no new requests, in-flight requests may finish"
            );
            handle.trigger();
            if config.force_exit {
                let name = signals.next().await;
                tracing::warn!(target: "pkg::shutdown", signal = name, "second signal: exiting now");
                std::process::exit(130);
            }
        });
        Ok(shutdown)
    }

    /// Begins shutdown.
    pub fn trigger(&self) {
        self.inner.triggered.send_replace(true);
    }

    /// Whether shutdown has begun.
    pub fn is_triggered(&self) -> bool {
        *self.inner.triggered.borrow()
    }

    /// Resolves when shutdown begins: give it to `axum::serve(..).with_graceful_shutdown` or
    /// tonic's `serve_with_shutdown`, which then stop accepting and wait for in-flight requests.
    pub fn signalled(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut triggered = self.inner.triggered.subscribe();
        async move {
            // The sender lives in `Inner`, which this future does not keep alive; if every
            // `Shutdown` is gone nobody can trigger any more, and waiting forever is right.
            if triggered.wait_for(|triggered| *triggered).await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }

    /// Runs a server until it ends by itself, or until shutdown began and the server drained,
    /// but no longer than the grace period after shutdown began.
    pub async fn drain<F: IntoFuture>(&self, server: F) -> Result<F::Output, GraceExpired> {
        let server = server.into_future();
        tokio::pin!(server);
        let finished = tokio::select! {
            output = &mut server => Some(output),
            () = self.signalled() => None,
        };
        // A server watching the same switch may finish in the very poll that saw the signal.
        if let Some(output) = finished {
            if self.is_triggered() {
                tracing::info!(target: "pkg::shutdown", "drained: every in-flight request finished");
            }
            return Ok(output);
        }
        let grace = self.inner.config.grace;
        match tokio::time::timeout(grace, server).await {
            Ok(output) => {
                tracing::info!(target: "pkg::shutdown", "drained: every in-flight request finished");
                Ok(output)
            }
            Err(_) => {
                tracing::warn!(
                    target: "pkg::shutdown",
                    grace_ms = grace.as_millis() as u64,
                    "grace period over: abandoning in-flight requests"
                );
                if self.inner.config.force_exit {
                    std::thread::spawn(|| {
                        std::thread::sleep(EXIT_BACKSTOP);
                        std::process::exit(1);
                    });
                }
                Err(GraceExpired { grace })
            }
        }
    }
}

/// Resolves on the first SIGTERM or SIGINT, with the signal's name. Needs a Tokio runtime.
pub async fn signal() -> std::io::Result<&'static str> {
    Ok(Signals::new()?.next().await)
}

#[cfg(unix)]
struct Signals {
    terminate: tokio::signal::unix::Signal,
    interrupt: tokio::signal::unix::Signal,
}

#[cfg(unix)]
impl Signals {
    fn new() -> std::io::Result<Self> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Signals { terminate: signal(SignalKind::terminate())?, interrupt: signal(SignalKind::interrupt())? })
    }

    async fn next(&mut self) -> &'static str {
        tokio::select! {
            _ = self.terminate.recv() => "SIGTERM",
            _ = self.interrupt.recv() => "SIGINT",
        }
    }
}

#[cfg(not(unix))]
struct Signals;

#[cfg(not(unix))]
impl Signals {
    fn new() -> std::io::Result<Self> {
        Ok(Signals)
    }

    async fn next(&mut self) -> &'static str {
        let _ = tokio::signal::ctrl_c().await;
        "Ctrl-C"
    }
}
