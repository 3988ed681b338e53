//! Health probes: whether a service's container is ready, checked the way its manifest says —
//! `grpc.health.v1`, an HTTP GET, a TCP connection (each to the container's port on the
//! workspace network, however plat reaches it: [`Dialer`]) or a command run inside the
//! container.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use indexmap::IndexMap;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

use crate::docker::relay::{Conn, Destination, Dialer};
use crate::manifest::HealthCheck;

/// Where a probe goes: the container, its host name and address, and its ports.
#[derive(Debug, Clone, Copy)]
pub struct ProbeTarget<'a> {
    /// Container id, for `cmd` probes.
    pub container: &'a str,
    /// Its host name on the workspace network: the service's name.
    pub host: &'a str,
    /// Its address on the workspace network, when it has one.
    pub address: Option<IpAddr>,
    /// The service's named ports.
    pub ports: &'a IndexMap<String, u16>,
}

/// Runs one probe; `Err` says why the service is not ready, in a few words.
pub async fn probe(
    dialer: &Arc<Dialer>,
    check: &HealthCheck,
    target: ProbeTarget<'_>,
    timeout: Duration,
) -> Result<(), String> {
    let destination = |port: &str| {
        target
            .ports
            .get(port)
            .map(|&number| Destination { host: target.host, address: target.address, port: number })
            .ok_or_else(|| format!("the service has no port named `{port}`"))
    };
    // How to reach the container is decided outside the probe's own timeout.
    if let Some(port) = check.port()
        && let Ok(destination) = destination(port)
    {
        dialer.settle(destination).await;
    }
    match check {
        HealthCheck::Tcp { port } => {
            let destination = destination(port)?;
            within(timeout, async {
                dialer.dial(destination, timeout).await.map(drop).map_err(|error| error.to_string())
            })
            .await
        }
        HealthCheck::Http { path, port } => {
            let destination = destination(port)?;
            within(timeout, async {
                let conn = dialer.dial(destination, timeout).await.map_err(|error| error.to_string())?;
                http_get(conn, &format!("{}:{}", destination.host, destination.port), path).await
            })
            .await
        }
        HealthCheck::Grpc { service, port } => {
            let destination = destination(port)?;
            within(timeout, grpc_check(dialer, destination, service, timeout)).await
        }
        HealthCheck::Cmd(command) => {
            let engine = dialer.engine().map_err(|error| error.to_string())?;
            cmd_check(engine, target.container, command, timeout).await
        }
    }
}

/// A command run in the container: healthy when it exits 0.
async fn cmd_check(
    engine: &crate::docker::Engine,
    container: &str,
    command: &[String],
    timeout: Duration,
) -> Result<(), String> {
    match engine.exec(container, command, timeout).await {
        Ok((Some(0), _)) => Ok(()),
        Ok((Some(code), output)) => Err(format!("`{}` exited with {code}{}", command.join(" "), last_line(&output))),
        Ok((None, _)) => Err(format!("`{}` still ran after {}s", command.join(" "), timeout.as_secs_f64())),
        Err(error) => Err(error.to_string()),
    }
}

async fn within(timeout: Duration, probe: impl Future<Output = Result<(), String>>) -> Result<(), String> {
    tokio::time::timeout(timeout, probe)
        .await
        .unwrap_or_else(|_| Err(format!("no answer within {}s", timeout.as_secs_f64())))
}

/// `GET path` over `conn`: any 2xx status is healthy.
async fn http_get(mut conn: Conn, authority: &str, path: &str) -> Result<(), String> {
    let request = format!("GET {path} HTTP/1.1\r\nHost: {authority}\r\nUser-Agent: plat\r\nConnection: close\r\n\r\n");
    conn.write_all(request.as_bytes()).await.map_err(|error| format!("{authority}: {error}"))?;
    // The status line is all that counts; read until it is complete.
    let mut head = Vec::new();
    let mut buffer = [0u8; 512];
    while !head.contains(&b'\n') && head.len() < 4096 {
        let read = conn.read(&mut buffer).await.map_err(|error| format!("{authority}: {error}"))?;
        if read == 0 {
            break;
        }
        head.extend_from_slice(&buffer[..read]);
    }
    let status_line = String::from_utf8_lossy(&head).lines().next().unwrap_or_default().to_owned();
    match status_line.split_whitespace().nth(1).and_then(|code| code.parse::<u16>().ok()) {
        Some(code) if (200..300).contains(&code) => Ok(()),
        Some(_) => Err(format!("GET {path}: {}", status_line.split_once(' ').map_or("", |(_, rest)| rest))),
        None if head.is_empty() => Err(format!("GET {path}: the connection closed without an answer")),
        None => Err(format!("GET {path}: not an HTTP answer")),
    }
}

/// A gRPC channel to `destination`, every connection of which `dialer` opens.
pub async fn grpc_channel(
    dialer: &Arc<Dialer>,
    destination: Destination<'_>,
    timeout: Duration,
) -> Result<tonic::transport::Channel, String> {
    let dialer = Arc::clone(dialer);
    let (host, address, port) = (destination.host.to_owned(), destination.address, destination.port);
    let authority = format!("{host}:{port}");
    let connector = tower::service_fn(move |_: http::Uri| {
        let dialer = Arc::clone(&dialer);
        let host = host.clone();
        async move {
            let conn = dialer.dial(Destination { host: &host, address, port }, timeout).await?;
            Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(conn))
        }
    });
    tonic::transport::Endpoint::from_shared(format!("http://{authority}"))
        .map_err(|error| error.to_string())?
        .connect_timeout(timeout)
        .timeout(timeout)
        .connect_with_connector(connector)
        .await
        .map_err(|error| format!("{authority}: {}", source_chain(&error)))
}

/// `grpc.health.v1.Health/Check`: healthy when it answers SERVING.
async fn grpc_check(
    dialer: &Arc<Dialer>,
    destination: Destination<'_>,
    service: &str,
    timeout: Duration,
) -> Result<(), String> {
    let channel = grpc_channel(dialer, destination, timeout).await?;
    let request = HealthCheckRequest { service: service.to_owned() };
    let response = HealthClient::new(channel)
        .check(request)
        .await
        .map_err(|status| format!("grpc.health.v1 check of `{service}`: {:?}: {}", status.code(), status.message()))?;
    match response.into_inner().status() {
        ServingStatus::Serving => Ok(()),
        other => Err(format!("grpc.health.v1 says `{service}` is {}", other.as_str_name())),
    }
}

/// An error and its causes on one line: tonic's own message is often only "transport error".
fn source_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

fn last_line(output: &str) -> String {
    output.lines().rev().find(|line| !line.trim().is_empty()).map(|line| format!(": {line}")).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;
    use tokio::net::TcpListener;

    async fn serve_once(answer: &'static str) -> u16 {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            let mut request = [0u8; 1024];
            let _ = stream.read(&mut request).await;
            stream.write_all(answer.as_bytes()).await.unwrap();
        });
        port
    }

    fn target(ports: &IndexMap<String, u16>) -> ProbeTarget<'_> {
        ProbeTarget { container: "unused", host: "localhost", address: Some(IpAddr::V4(Ipv4Addr::LOCALHOST)), ports }
    }

    /// A dialer that goes straight to the address, with no Engine behind it.
    async fn dialer() -> Arc<Dialer> {
        Arc::new(Dialer::direct_only())
    }

    #[tokio::test]
    async fn http_probes_want_a_2xx_answer() {
        let ok = serve_once("HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n").await;
        let unavailable = serve_once("HTTP/1.1 503 Service Unavailable\r\n\r\n").await;
        let ports = IndexMap::from([("ok".to_owned(), ok), ("down".to_owned(), unavailable)]);
        let check = |port: &str| HealthCheck::Http { path: "/readyz".into(), port: port.into() };
        let second = Duration::from_secs(1);
        assert_eq!(probe(&dialer().await, &check("ok"), target(&ports), second).await, Ok(()));
        assert_eq!(
            probe(&dialer().await, &check("down"), target(&ports), second).await,
            Err("GET /readyz: 503 Service Unavailable".to_owned())
        );
        assert_eq!(
            probe(&dialer().await, &check("metrics"), target(&ports), second).await,
            Err("the service has no port named `metrics`".to_owned())
        );
    }

    #[tokio::test]
    async fn tcp_probes_want_a_listener() {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
        let open = listener.local_addr().unwrap().port();
        let closed = {
            let other = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
            other.local_addr().unwrap().port()
        };
        let ports = IndexMap::from([("open".to_owned(), open), ("closed".to_owned(), closed)]);
        let second = Duration::from_secs(1);
        assert_eq!(
            probe(&dialer().await, &HealthCheck::Tcp { port: "open".into() }, target(&ports), second).await,
            Ok(())
        );
        let refused = probe(&dialer().await, &HealthCheck::Tcp { port: "closed".into() }, target(&ports), second).await;
        assert!(refused.unwrap_err().contains("refused"));
    }
}
