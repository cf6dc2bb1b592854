//! `colloquy --healthcheck`: asks the server on `--bind` for `GET /healthz` and exits
//! 0 on a 200, 1 otherwise — a container's `HEALTHCHECK` without curl in the image.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long the whole check may take.
const TIMEOUT: Duration = Duration::from_secs(5);

/// The address to ask: `bind`, with an unspecified IP (`0.0.0.0`, `::`) replaced by
/// the loopback address of its family.
fn target(bind: SocketAddr) -> SocketAddr {
    match bind.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => {
            SocketAddr::new(Ipv4Addr::LOCALHOST.into(), bind.port())
        }
        IpAddr::V6(ip) if ip.is_unspecified() => {
            SocketAddr::new(Ipv6Addr::LOCALHOST.into(), bind.port())
        }
        _ => bind,
    }
}

/// `Ok` when the server on `bind` answers `GET /healthz` with 200 within 5 s.
pub(crate) async fn check(bind: SocketAddr) -> Result<(), String> {
    let addr = target(bind);
    let exchange = async {
        let mut stream = TcpStream::connect(addr).await?;
        let request = format!("GET /healthz HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await?;
        let mut head = Vec::new();
        stream.read_to_end(&mut head).await?;
        Ok::<_, std::io::Error>(head)
    };
    let head = tokio::time::timeout(TIMEOUT, exchange)
        .await
        .map_err(|_| format!("no answer from http://{addr}/healthz within {TIMEOUT:?}"))?
        .map_err(|e| format!("http://{addr}/healthz: {e}"))?;
    let status_line = String::from_utf8_lossy(&head)
        .lines()
        .next()
        .unwrap_or_default()
        .to_owned();
    if status_line.starts_with("HTTP/1.1 200") {
        Ok(())
    } else {
        Err(format!("http://{addr}/healthz answered {status_line:?}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unspecified_bind_is_checked_on_loopback() {
        let bind: SocketAddr = "0.0.0.0:8080".parse().expect("addr");
        assert_eq!(target(bind), "127.0.0.1:8080".parse().expect("addr"));
        let bind: SocketAddr = "[::]:9000".parse().expect("addr");
        assert_eq!(target(bind), "[::1]:9000".parse().expect("addr"));
        let bind: SocketAddr = "10.1.2.3:80".parse().expect("addr");
        assert_eq!(target(bind), bind);
    }
}
