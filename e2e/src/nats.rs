//! A NATS server for the test, and a subscriber speaking the NATS text protocol directly
//! (CONNECT, SUB, MSG, PING/PONG): enough to receive events without a client library.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

/// Messages received on one subject.
pub struct Subscription {
    messages: mpsc::UnboundedReceiver<Vec<u8>>,
}

impl Subscription {
    /// Subscribes to `subject` on the server at `addr`; returns once the server confirmed it.
    pub async fn subscribe(addr: SocketAddr, subject: &str) -> std::io::Result<Subscription> {
        let stream = TcpStream::connect(addr).await?;
        let (read, mut write) = stream.into_split();
        let mut read = BufReader::new(read);
        let mut line = String::new();
        read.read_line(&mut line).await?; // INFO {...}
        // `verbose` makes the server acknowledge SUB with +OK, so no message can be missed after this returns.
        write.write_all(format!("CONNECT {{\"verbose\":true}}\r\nSUB {subject} 1\r\n").as_bytes()).await?;
        for _ in 0..2 {
            line.clear();
            read.read_line(&mut line).await?;
            if !line.starts_with("+OK") {
                return Err(std::io::Error::other(format!("nats answered {line:?}")));
            }
        }
        let (sender, messages) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut line = String::new();
            loop {
                line.clear();
                if read.read_line(&mut line).await.unwrap_or(0) == 0 {
                    return;
                }
                if line.starts_with("PING") {
                    let _ = write.write_all(b"PONG\r\n").await;
                } else if let Some(rest) = line.strip_prefix("MSG ") {
                    // MSG <subject> <sid> [reply-to] <#bytes>
                    let size: usize = rest.split_whitespace().last().and_then(|n| n.parse().ok()).unwrap_or(0);
                    let mut payload = vec![0; size + 2];
                    if read.read_exact(&mut payload).await.is_err() {
                        return;
                    }
                    payload.truncate(size);
                    let _ = sender.send(payload);
                }
            }
        });
        Ok(Subscription { messages })
    }

    /// The next message, or `None` after `timeout`.
    pub async fn next(&mut self, timeout: Duration) -> Option<Vec<u8>> {
        tokio::time::timeout(timeout, self.messages.recv()).await.ok().flatten()
    }
}
