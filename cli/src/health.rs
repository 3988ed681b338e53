//! Health probes: whether a service's container is ready, checked the way its manifest says —
//! `grpc.health.v1`, an HTTP GET, a TCP connection (each from this machine to the container's
//! address on the workspace network: its ports need not be published) or a command run inside
//! the container.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use indexmap::IndexMap;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

use crate::docker::container;
use crate::manifest::HealthCheck;

/// Where a probe goes: the container and its address.
#[derive(Debug, Clone, Copy)]
pub struct ProbeTarget<'a> {
    /// Container id, for `cmd` probes.
    pub container: &'a str,
    /// Its address on the workspace network.
    pub address: IpAddr,
    /// The service's named ports.
    pub ports: &'a IndexMap<String, u16>,
}

/// Runs one probe; `Err` says why the service is not ready, in a few words.
pub async fn probe(check: &HealthCheck, target: ProbeTarget<'_>, timeout: Duration) -> Result<(), String> {
    let socket = |port: &str| {
        target
            .ports
            .get(port)
            .map(|&number| SocketAddr::new(target.address, number))
            .ok_or_else(|| format!("the service has no port named `{port}`"))
    };
    match check {
        HealthCheck::Tcp { port } => {
            let address = socket(port)?;
            within(timeout, async {
                TcpStream::connect(address).await.map(drop).map_err(|error| format!("{address}: {error}"))
            })
            .await
        }
        HealthCheck::Http { path, port } => within(timeout, http_get(socket(port)?, path)).await,
        HealthCheck::Grpc { service, port } => within(timeout, grpc_check(socket(port)?, service, timeout)).await,
        HealthCheck::Cmd(command) => match container::exec(target.container, command, timeout).await {
            Ok((Some(0), _)) => Ok(()),
            Ok((Some(code), output)) => {
                Err(format!("`{}` exited with {code}{}", command.join(" "), last_line(&output)))
            }
            Ok((None, _)) => Err(format!("`{}` still ran after {}s", command.join(" "), timeout.as_secs_f64())),
            Err(error) => Err(error.to_string()),
        },
    }
}

async fn within(timeout: Duration, probe: impl Future<Output = Result<(), String>>) -> Result<(), String> {
    tokio::time::timeout(timeout, probe)
        .await
        .unwrap_or_else(|_| Err(format!("no answer within {}s", timeout.as_secs_f64())))
}

/// `GET path`: any 2xx status is healthy.
async fn http_get(address: SocketAddr, path: &str) -> Result<(), String> {
    let mut stream = TcpStream::connect(address).await.map_err(|error| format!("{address}: {error}"))?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: {address}\r\nUser-Agent: plat\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.map_err(|error| format!("{address}: {error}"))?;
    // The status line is all that counts; read until it is complete.
    let mut head = Vec::new();
    let mut buffer = [0u8; 512];
    while !head.contains(&b'\n') && head.len() < 4096 {
        let read = stream.read(&mut buffer).await.map_err(|error| format!("{address}: {error}"))?;
        if read == 0 {
            break;
        }
        head.extend_from_slice(&buffer[..read]);
    }
    let status_line = String::from_utf8_lossy(&head).lines().next().unwrap_or_default().to_owned();
    match status_line.split_whitespace().nth(1).and_then(|code| code.parse::<u16>().ok()) {
        Some(code) if (200..300).contains(&code) => Ok(()),
        Some(_) => Err(format!("GET {path}: {}", status_line.split_once(' ').map_or("", |(_, rest)| rest))),
        None => Err(format!("GET {path}: not an HTTP answer")),
    }
}

/// `grpc.health.v1.Health/Check`: healthy when it answers SERVING.
async fn grpc_check(address: SocketAddr, service: &str, timeout: Duration) -> Result<(), String> {
    let endpoint = tonic::transport::Endpoint::from_shared(format!("http://{address}"))
        .map_err(|error| error.to_string())?
        .connect_timeout(timeout)
        .timeout(timeout);
    let channel = endpoint.connect().await.map_err(|error| format!("{address}: {}", source_chain(&error)))?;
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
        ProbeTarget { container: "unused", address: IpAddr::V4(Ipv4Addr::LOCALHOST), ports }
    }

    #[tokio::test]
    async fn http_probes_want_a_2xx_answer() {
        let ok = serve_once("HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n").await;
        let unavailable = serve_once("HTTP/1.1 503 Service Unavailable\r\n\r\n").await;
        let ports = IndexMap::from([("ok".to_owned(), ok), ("down".to_owned(), unavailable)]);
        let check = |port: &str| HealthCheck::Http { path: "/readyz".into(), port: port.into() };
        let second = Duration::from_secs(1);
        assert_eq!(probe(&check("ok"), target(&ports), second).await, Ok(()));
        assert_eq!(
            probe(&check("down"), target(&ports), second).await,
            Err("GET /readyz: 503 Service Unavailable".to_owned())
        );
        assert_eq!(
            probe(&check("metrics"), target(&ports), second).await,
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
        assert_eq!(probe(&HealthCheck::Tcp { port: "open".into() }, target(&ports), second).await, Ok(()));
        let refused = probe(&HealthCheck::Tcp { port: "closed".into() }, target(&ports), second).await;
        assert!(refused.unwrap_err().contains("refused"));
    }
}
