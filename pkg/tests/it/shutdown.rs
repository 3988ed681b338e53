//! shutdown: in-flight requests finish after the signal, within a bound.
//!
//! Two ways in: in-process with `Shutdown::trigger` (fast, precise), and one test that sends a
//! real SIGTERM to a child process, which is this test binary re-run as a small server.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use pkg::shutdown::{GraceExpired, Shutdown, ShutdownConfig};
use tokio::sync::Notify;

/// A router whose `/slow` handler tells `started` it began, then answers once `release` says so
/// (never, when nothing does): the test decides when a request is in flight and when it ends,
/// with no sleep standing in for either.
fn slow_router(started: Arc<Notify>, release: Arc<Notify>) -> axum::Router {
    axum::Router::new().route(
        "/slow",
        axum::routing::get(move || {
            let (started, release) = (started.clone(), release.clone());
            async move {
                started.notify_one();
                release.notified().await;
                "done"
            }
        }),
    )
}

#[tokio::test]
async fn an_in_flight_request_completes_after_the_signal() {
    let shutdown = Shutdown::new(ShutdownConfig { grace: Duration::from_secs(10), force_exit: false });
    let (started, release) = (Arc::new(Notify::new()), Arc::new(Notify::new()));
    let (listener, addr) = crate::loopback().await;
    let server = axum::serve(listener, slow_router(started.clone(), release.clone()))
        .with_graceful_shutdown(shutdown.signalled());
    let draining = tokio::spawn({
        let shutdown = shutdown.clone();
        async move { shutdown.drain(server).await }
    });

    let request = tokio::spawn(crate::http_get(addr, "/slow"));
    started.notified().await;
    shutdown.trigger();
    assert!(shutdown.is_triggered());
    assert!(!request.is_finished() && !draining.is_finished(), "the request holds the drain");
    // The handler finishes only now, after the signal: what is answered was in flight.
    release.notify_one();

    let (status, _, body) = request.await.unwrap();
    assert_eq!((status.as_u16(), body.as_str()), (200, "done"), "the request in flight was answered");
    draining.await.unwrap().expect("drained within the grace period").unwrap();
    assert!(tokio::net::TcpStream::connect(addr).await.is_err(), "no new connections after shutdown");
}

#[tokio::test]
async fn a_grpc_server_drains_too() {
    let shutdown = Shutdown::new(ShutdownConfig { grace: Duration::from_secs(10), force_exit: false });
    let (_health, service) = pkg::health::Health::new("user.v1.UserService").await;
    let (listener, addr) = crate::loopback().await;
    let server = tonic::transport::Server::builder()
        .add_service(service)
        .serve_with_incoming_shutdown(tonic::transport::server::TcpIncoming::from(listener), shutdown.signalled());
    let draining = tokio::spawn({
        let shutdown = shutdown.clone();
        async move { shutdown.drain(server).await }
    });
    let client = crate::trace::health_client(addr);
    assert_eq!(crate::trace::check(&client, "user.v1.UserService").await.unwrap(), 2, "NOT_SERVING until told");
    shutdown.trigger();
    draining.await.unwrap().unwrap().unwrap();
}

#[tokio::test]
async fn draining_is_bounded_by_the_grace_period() {
    let grace = Duration::from_millis(200);
    let shutdown = Shutdown::new(ShutdownConfig { grace, force_exit: false });
    let started = Arc::new(Notify::new());
    let (listener, addr) = crate::loopback().await;
    // Never released: only the grace period ends the drain.
    let server = axum::serve(listener, slow_router(started.clone(), Arc::new(Notify::new())))
        .with_graceful_shutdown(shutdown.signalled());
    let draining = tokio::spawn({
        let shutdown = shutdown.clone();
        async move { shutdown.drain(server).await }
    });
    let _stuck = tokio::spawn(crate::http_get(addr, "/slow"));
    started.notified().await;

    let signalled_at = Instant::now();
    shutdown.trigger();
    let result = draining.await.unwrap();
    assert_eq!(result.unwrap_err(), GraceExpired { grace });
    let took = signalled_at.elapsed();
    assert!(took >= grace && took < Duration::from_secs(5), "took {took:?}");
}

#[tokio::test]
async fn a_server_that_ends_by_itself_needs_no_signal() {
    let shutdown = Shutdown::new(ShutdownConfig::default());
    assert_eq!(shutdown.drain(async { 7 }).await, Ok(7));
}

const CHILD_ENV: &str = "PKG_TEST_SHUTDOWN_CHILD";

/// Not a test on its own: the server that `sigterm_*` runs as a child process. It prints its
/// address, prints "in flight" when `/slow` begins (which answers once SIGTERM came), drains,
/// and prints "drained".
#[test]
fn child_server_for_sigterm() {
    if std::env::var_os(CHILD_ENV).is_none() {
        return;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    runtime.block_on(async {
        let shutdown =
            Shutdown::on_signals(ShutdownConfig { grace: Duration::from_secs(5), force_exit: true }).unwrap();
        let (listener, addr) = crate::loopback().await;
        let (started, release) = (Arc::new(Notify::new()), Arc::new(Notify::new()));
        let router = slow_router(started.clone(), release.clone());
        tokio::spawn(async move {
            started.notified().await;
            println!("in flight");
        });
        let signalled = shutdown.signalled();
        tokio::spawn(async move {
            signalled.await;
            release.notify_one();
        });
        println!("listening {addr}");
        let server = axum::serve(listener, router).with_graceful_shutdown(shutdown.signalled());
        shutdown.drain(server).await.unwrap().unwrap();
        println!("drained");
    });
}

#[tokio::test]
async fn sigterm_lets_the_request_in_flight_finish_then_the_process_exits() {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "shutdown::child_server_for_sigterm", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // libtest prints the test's name first, so the address may follow it on the same line.
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let reading = tokio::task::spawn_blocking(move || {
        let mut lines = stdout.lines();
        let addr = lines.by_ref().map_while(Result::ok).find_map(|line| {
            line.split_once("listening ").map(|(_, addr)| addr.trim().parse::<std::net::SocketAddr>().unwrap())
        });
        (addr, lines)
    });
    let (addr, mut stdout) = match tokio::time::timeout(Duration::from_secs(60), reading).await {
        Ok(read) => read.unwrap(),
        Err(_) => {
            child.kill().unwrap();
            panic!("the child server did not start within 60s");
        }
    };
    let Some(addr) = addr else {
        child.kill().unwrap();
        panic!("the child server exited without printing its address");
    };

    let request = tokio::spawn(crate::http_get(addr, "/slow"));
    // The child says when the request is in its handler.
    let waiting = tokio::task::spawn_blocking(move || {
        let in_flight = stdout.by_ref().map_while(Result::ok).any(|line| line.contains("in flight"));
        (in_flight, stdout)
    });
    let (in_flight, mut stdout) = tokio::time::timeout(Duration::from_secs(30), waiting).await.unwrap().unwrap();
    assert!(in_flight, "the child saw the request");
    let pid = i32::try_from(child.id()).unwrap();
    // SAFETY: kill(2) with a live child's pid and a valid signal number has no memory effects.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    let signalled_at = Instant::now();

    let answered = tokio::time::timeout(Duration::from_secs(30), request).await;
    // Bounded waits everywhere: a broken child must fail this test, not hang the suite.
    let waited = tokio::task::spawn_blocking(move || {
        let exit = child.wait();
        (exit, child)
    });
    let exit = match tokio::time::timeout(Duration::from_secs(30), waited).await {
        Ok(finished) => Some(finished.unwrap().0.unwrap()),
        Err(_) => {
            // SAFETY: as above; the child is stuck, and a stuck child must not outlive the test.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            None
        }
    };
    let exited_after = signalled_at.elapsed();
    let (status, _, body) = answered.expect("the request in flight was answered").unwrap();
    assert_eq!((status.as_u16(), body.as_str()), (200, "done"));
    let exit = exit.expect("the child exited after SIGTERM");
    assert!(exit.success(), "{exit:?}");
    assert!(exited_after < Duration::from_secs(5), "exited {exited_after:?} after SIGTERM");
    assert!(stdout.any(|line| line.unwrap().contains("drained")));
}
