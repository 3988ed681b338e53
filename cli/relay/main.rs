//! plat-relay: the one program in the image `plat/relay`, which plat starts on a workspace's
//! network when it cannot reach the containers' addresses itself (Docker Desktop, a remote
//! Engine, plat inside a container). plat runs `plat-relay connect HOST PORT TIMEOUT_MS` in it
//! through the Engine's exec API, with stdin and stdout attached: the relay connects to HOST:PORT
//! from inside the network, says so with one byte (0x06) on stdout, then copies stdin to the
//! connection and the connection to stdout until the connection closes. A connection that
//! fails is a line on stderr and exit status 1.
//!
//! Built by cli/build.rs as a static binary with std alone (no crates), so that it runs
//! `FROM scratch`; `plat-relay serve`, the container's main process, only waits.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream, ToSocketAddrs};
use std::time::Duration;

/// The byte that says "connected": everything after it on stdout is the connection's.
const CONNECTED: u8 = 0x06;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
        ["serve"] => loop {
            // PID 1 of its container: plat removes it with SIGKILL (`docker rm -f`); nothing to
            // clean up, so no signal handling.
            std::thread::sleep(Duration::from_secs(3600));
        },
        ["connect", host, port, timeout_ms] => connect(host, port, timeout_ms),
        _ => {
            eprintln!("usage: plat-relay serve | plat-relay connect HOST PORT TIMEOUT_MS");
            std::process::exit(2);
        }
    }
}

fn connect(host: &str, port: &str, timeout_ms: &str) {
    let fail = |message: String| -> ! {
        eprintln!("{message}");
        std::process::exit(1);
    };
    let port: u16 = port.parse().unwrap_or_else(|_| fail(format!("invalid port `{port}`")));
    let timeout = Duration::from_millis(timeout_ms.parse().unwrap_or(1000));
    let addresses = (host, port).to_socket_addrs().unwrap_or_else(|error| fail(format!("{host}: {error}")));
    let mut last = None;
    let mut stream = None;
    for address in addresses {
        match TcpStream::connect_timeout(&address, timeout) {
            Ok(connected) => {
                stream = Some(connected);
                break;
            }
            Err(error) => last = Some(format!("{address}: {error}")),
        }
    }
    let stream = stream.unwrap_or_else(|| fail(last.unwrap_or_else(|| format!("{host}: no address"))));
    let _ = stream.set_nodelay(true);
    let mut stdout = std::io::stdout().lock();
    if stdout.write_all(&[CONNECTED]).and_then(|()| stdout.flush()).is_err() {
        std::process::exit(1);
    }
    let mut upstream = stream.try_clone().unwrap_or_else(|error| fail(error.to_string()));
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut std::io::stdin().lock(), &mut upstream);
        // plat closed its side: the server sees the end of the request.
        let _ = upstream.shutdown(Shutdown::Write);
    });
    let mut downstream = stream;
    let mut buffer = [0u8; 16 * 1024];
    loop {
        match downstream.read(&mut buffer) {
            Ok(0) | Err(_) => break,
            Ok(read) => {
                if stdout.write_all(&buffer[..read]).and_then(|()| stdout.flush()).is_err() {
                    break;
                }
            }
        }
    }
    // The connection ended: so does the exec, whatever stdin still holds.
    std::process::exit(0);
}
