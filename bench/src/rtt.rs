//! Counting store round trips: [`RttProxy`] sits between colloquy and its store (Redis,
//! PostgreSQL) and counts how often the client starts talking again after the store
//! answered. With one HTTP request at a time, that count per request is the number of
//! round trips the API operation costs. A pipelined batch (several commands, or
//! PostgreSQL's Parse/Bind/Execute/Sync, sent before reading) counts once.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UnixStream};
use tokio::task::JoinHandle;

use crate::BenchError;

/// Where the proxy forwards to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Upstream {
    /// A TCP address (Redis, PostgreSQL over TCP).
    Tcp(SocketAddr),
    /// A Unix socket (PostgreSQL's `/var/run/postgresql/.s.PGSQL.5432`).
    Unix(PathBuf),
}

/// A TCP proxy to a store that counts client turns. Stops when dropped.
#[derive(Debug)]
pub struct RttProxy {
    addr: SocketAddr,
    turns: Arc<AtomicU64>,
    accept: JoinHandle<()>,
}

impl RttProxy {
    /// Listens on a free loopback port and forwards every connection to `upstream`.
    ///
    /// # Errors
    /// [`BenchError::Io`] when it cannot listen.
    pub async fn start(upstream: Upstream) -> Result<Self, BenchError> {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(BenchError::io("binding the Redis proxy"))?;
        let addr = listener
            .local_addr()
            .map_err(BenchError::io("reading the proxy's address"))?;
        let turns = Arc::new(AtomicU64::new(0));
        let counted = turns.clone();
        let accept = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let turns = counted.clone();
                let upstream = upstream.clone();
                tokio::spawn(async move {
                    let _ = client.set_nodelay(true);
                    match upstream {
                        Upstream::Tcp(addr) => {
                            if let Ok(server) = TcpStream::connect(addr).await {
                                let _ = server.set_nodelay(true);
                                relay(client, server, &turns).await;
                            }
                        }
                        Upstream::Unix(path) => {
                            if let Ok(server) = UnixStream::connect(path).await {
                                relay(client, server, &turns).await;
                            }
                        }
                    }
                });
            }
        });
        Ok(Self {
            addr,
            turns,
            accept,
        })
    }

    /// Where colloquy should connect.
    #[must_use]
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Client turns so far (a turn: the client sends after Redis last answered).
    #[must_use]
    pub fn turns(&self) -> u64 {
        self.turns.load(Ordering::SeqCst)
    }
}

impl Drop for RttProxy {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

/// Forwards both directions until either side closes, counting client turns.
async fn relay<S>(client: TcpStream, server: S, turns: &AtomicU64)
where
    S: AsyncRead + AsyncWrite,
{
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = tokio::io::split(server);
    // True while the last bytes moved went from the client to Redis.
    let client_talking = AtomicBool::new(false);
    let upstream = async {
        let mut buffer = vec![0u8; 64 * 1024];
        loop {
            let n = match client_read.read(&mut buffer).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            if !client_talking.swap(true, Ordering::SeqCst) {
                turns.fetch_add(1, Ordering::SeqCst);
            }
            if server_write.write_all(&buffer[..n]).await.is_err() {
                break;
            }
        }
    };
    let downstream = async {
        let mut buffer = vec![0u8; 64 * 1024];
        loop {
            let n = match server_read.read(&mut buffer).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            client_talking.store(false, Ordering::SeqCst);
            if client_write.write_all(&buffer[..n]).await.is_err() {
                break;
            }
        }
    };
    tokio::select! {
        () = upstream => {},
        () = downstream => {},
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fake Redis answering `+OK\r\n` to every read.
    async fn fake_redis() -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind fake redis");
        let addr = listener.local_addr().expect("fake redis address");
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut b = [0u8; 1024];
                    while let Ok(n) = s.read(&mut b).await {
                        if n == 0 || s.write_all(b"+OK\r\n").await.is_err() {
                            break;
                        }
                    }
                });
            }
        });
        addr
    }

    #[tokio::test]
    async fn counts_one_turn_per_request_reply_exchange() {
        let proxy = RttProxy::start(Upstream::Tcp(fake_redis().await))
            .await
            .expect("proxy starts");
        let mut conn = TcpStream::connect(proxy.addr())
            .await
            .expect("connect to proxy");
        let mut reply = [0u8; 5];
        for _ in 0..3 {
            conn.write_all(b"PING\r\n").await.expect("write");
            conn.read_exact(&mut reply).await.expect("read reply");
            assert_eq!(&reply, b"+OK\r\n");
        }
        assert_eq!(proxy.turns(), 3);
    }
}
