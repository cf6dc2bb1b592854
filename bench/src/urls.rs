//! Store URLs, parsed with the `url` crate: reading their address, routing them
//! through the round-trip proxy, and printing them without their password.

use std::net::SocketAddr;

use colloquy_bench::BenchError;
use url::Url;

/// Parses a store URL, for messages without its password.
pub(crate) fn parse_url(url: &str) -> Result<Url, BenchError> {
    Url::parse(url).map_err(|e| BenchError::BadUrl {
        url: redacted(url),
        reason: e.to_string(),
    })
}

/// `url` without its password; a URL that does not parse loses everything before
/// its `@`.
pub(crate) fn redacted(url: &str) -> String {
    match Url::parse(url) {
        Ok(mut parsed) => {
            if parsed.password().is_some() {
                let _ = parsed.set_password(Some("***"));
            }
            parsed.to_string()
        }
        Err(_) => match url.rsplit_once('@') {
            Some((_, host)) => format!("***@{host}"),
            None => url.to_owned(),
        },
    }
}

/// `url` with its host and port replaced by `addr` (the round-trip proxy).
pub(crate) fn url_via(url: &str, addr: SocketAddr) -> Result<String, BenchError> {
    let mut parsed = parse_url(url)?;
    let bad = |reason: &str| BenchError::BadUrl {
        url: redacted(url),
        reason: reason.to_owned(),
    };
    parsed
        .set_host(Some(&addr.ip().to_string()))
        .map_err(|e| bad(&e.to_string()))?;
    parsed
        .set_port(Some(addr.port()))
        .map_err(|()| bad("cannot carry a port"))?;
    Ok(parsed.to_string())
}

/// The address of the host of `url` (`default_port` when it names none; IPv4 first).
pub(crate) fn addr(url: &str, default_port: u16) -> Result<SocketAddr, BenchError> {
    let parsed = parse_url(url)?;
    let addrs = parsed
        .socket_addrs(|| Some(default_port))
        .map_err(BenchError::io(format!("resolving {}", redacted(url))))?;
    addrs
        .iter()
        .find(|a| a.is_ipv4())
        .or(addrs.first())
        .copied()
        .ok_or_else(|| BenchError::BadUrl {
            url: redacted(url),
            reason: "no address".to_owned(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redis_urls_are_rerouted_through_the_proxy() {
        let proxy: SocketAddr = "127.0.0.1:4000".parse().expect("literal address");
        assert_eq!(
            url_via("redis://127.0.0.1:6379/3", proxy).expect("valid"),
            "redis://127.0.0.1:4000/3"
        );
        assert_eq!(
            url_via("redis://user:pw@localhost:6379", proxy).expect("valid"),
            "redis://user:pw@127.0.0.1:4000"
        );
        assert_eq!(
            addr("redis://localhost:6379/0", 6379).expect("valid"),
            "127.0.0.1:6379".parse().expect("literal address")
        );
        assert_eq!(
            addr("redis://user:pw@127.0.0.1:7000/1", 6379).expect("valid"),
            "127.0.0.1:7000".parse().expect("literal address")
        );
        assert_eq!(
            addr("redis://127.0.0.1", 6379).expect("valid"),
            "127.0.0.1:6379".parse().expect("literal address")
        );
        assert!(addr("memory", 6379).is_err());
    }

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            redacted("redis://user:secret@host:1/0"),
            "redis://user:***@host:1/0"
        );
        let error = parse_url("redis://user:secret@[bad").expect_err("invalid");
        assert!(!error.to_string().contains("secret"), "{error}");
    }
}
