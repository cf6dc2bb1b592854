//! Who is calling: the operator (the request carries the admin token) or a visitor,
//! and from which IP address — the socket's peer, or the client a trusted reverse
//! proxy names in `Forwarded` / `X-Forwarded-For`. A forwarding header from any
//! other peer is ignored, so a visitor cannot pick the address their limits are
//! counted under.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};

use colloquy_core::access::Caller;
use colloquy_core::ErrorCode;
use http::{header, HeaderMap};
use ipnet::IpNet;
use subtle::ConstantTimeEq;

use crate::error::ApiError;
use crate::HttpConfig;

/// The peer address of a request's connection, as a request extension.
/// [`serve`](crate::serve) inserts it; an application that calls
/// [`Api::handle`](crate::Api::handle) from its own server inserts it too, or
/// per-IP rate limits do not apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerAddr(pub SocketAddr);

/// The operator's secret: `Authorization: Bearer <token>` makes a request the
/// operator's. Compared in constant time; never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct AdminToken(String);

impl AdminToken {
    /// The shortest token accepted, in characters.
    pub const MIN_CHARS: usize = 16;

    /// A token of at least [`AdminToken::MIN_CHARS`] visible ASCII characters.
    ///
    /// # Errors
    /// [`WeakToken`] otherwise.
    pub fn new(token: impl Into<String>) -> Result<Self, WeakToken> {
        let token = token.into();
        if token.len() < Self::MIN_CHARS || !token.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(WeakToken);
        }
        Ok(Self(token))
    }

    /// Whether `presented` is the token, in time independent of where they differ.
    #[must_use]
    pub fn matches(&self, presented: &str) -> bool {
        self.0.as_bytes().ct_eq(presented.as_bytes()).into()
    }
}

impl fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AdminToken(***)")
    }
}

/// An admin token that is too short or not printable ASCII.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the admin token must be at least 16 visible ASCII characters")]
pub struct WeakToken;

/// The caller of one request.
#[derive(Debug)]
pub(crate) struct Visitor {
    /// The client's address, when known.
    pub(crate) ip: Option<IpAddr>,
    /// Operator or visitor.
    pub(crate) caller: Caller,
    /// The per-request limit is still to be spent: the handler spends it with the
    /// operation's own limits, in one call of the limiter (see `App::allow`).
    request_pending: AtomicBool,
}

impl Visitor {
    /// Who sent `headers` over a connection from `peer`.
    ///
    /// A request with an `Authorization` header that is not the admin token is
    /// refused (401), so a misconfigured operator tool learns it at once.
    pub(crate) fn identify(
        config: &HttpConfig,
        peer: Option<IpAddr>,
        headers: &HeaderMap,
    ) -> Result<Self, ApiError> {
        let caller = match headers.get(header::AUTHORIZATION) {
            None => Caller::Visitor,
            Some(value) => {
                let presented = value
                    .to_str()
                    .ok()
                    .and_then(|v| v.strip_prefix("Bearer "))
                    .map(str::trim);
                match (&config.admin_token, presented) {
                    (Some(token), Some(presented)) if token.matches(presented) => Caller::Admin,
                    _ => {
                        return Err(ApiError::new(
                            ErrorCode::Unauthorized,
                            "the Authorization header does not carry the admin token",
                        ))
                    }
                }
            }
        };
        Ok(Self {
            ip: peer.map(|peer| client_ip(peer, headers, &config.trusted_proxies)),
            caller,
            request_pending: AtomicBool::new(false),
        })
    }

    /// Leaves the per-request limit to the handler, which spends it together with
    /// its operation's limits.
    pub(crate) fn defer_request_limit(&self) {
        self.request_pending.store(true, Ordering::Relaxed);
    }

    /// Whether the per-request limit was deferred and not yet spent; it is spent
    /// (by the caller) from now on.
    pub(crate) fn take_request_limit(&self) -> bool {
        self.request_pending.swap(false, Ordering::Relaxed)
    }
}

/// An address in a `Forwarded` `for=` value: `192.0.2.1`, `"[2001:db8::1]:4711"`,
/// `192.0.2.1:80`; `unknown` and obfuscated names are not addresses.
fn forwarded_node(value: &str) -> Option<IpAddr> {
    let value = value.trim().trim_matches('"');
    if let Some(rest) = value.strip_prefix('[') {
        return rest.split(']').next()?.parse().ok();
    }
    value
        .parse()
        .ok()
        .or_else(|| value.parse::<SocketAddr>().ok().map(|s| s.ip()))
}

/// The hops a proxy chain reports, nearest the client first.
fn forwarded_chain(headers: &HeaderMap) -> Vec<Option<IpAddr>> {
    let forwarded: Vec<Option<IpAddr>> = headers
        .get_all(header::FORWARDED)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|element| {
            element.split(';').find_map(|pair| {
                let (k, v) = pair.split_once('=')?;
                k.trim()
                    .eq_ignore_ascii_case("for")
                    .then(|| forwarded_node(v))
            })
        })
        .collect();
    if !forwarded.is_empty() {
        return forwarded;
    }
    headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(forwarded_node)
        .collect()
}

/// The client's address: the peer's, unless the peer is a trusted proxy; then the
/// nearest hop of the forwarded chain that is not itself a trusted proxy (read from
/// the right, as each proxy appends the address it saw). A hop that is not an
/// address stops the walk at the last trusted one.
fn client_ip(peer: IpAddr, headers: &HeaderMap, trusted: &[IpNet]) -> IpAddr {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    let mut client = peer;
    if !is_trusted(&client) {
        return client;
    }
    for hop in forwarded_chain(headers).into_iter().rev() {
        let Some(hop) = hop else { break };
        client = hop;
        if !is_trusted(&hop) {
            break;
        }
    }
    client
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_static(v));
        }
        h
    }

    fn peer(ip: &str) -> IpAddr {
        ip.parse().expect("ip")
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn forwarding_headers_count_only_from_trusted_proxies() {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().expect("net")];
        let spoofed = headers(&[("x-forwarded-for", "1.2.3.4")]);
        assert_eq!(
            client_ip(peer("203.0.113.9"), &spoofed, &trusted),
            ip("203.0.113.9")
        );
        assert_eq!(
            client_ip(peer("10.0.0.2"), &spoofed, &trusted),
            ip("1.2.3.4")
        );
        // A client that forges the start of the chain: the proxy appends the real peer.
        let forged = headers(&[("x-forwarded-for", "9.9.9.9, 198.51.100.7, 10.0.0.3")]);
        assert_eq!(
            client_ip(peer("10.0.0.2"), &forged, &trusted),
            ip("198.51.100.7")
        );
        let forwarded = headers(&[(
            "forwarded",
            "for=192.0.2.43, for=\"[2001:db8:cafe::17]:4711\";proto=https",
        )]);
        assert_eq!(
            client_ip(peer("10.0.0.2"), &forwarded, &trusted),
            ip("2001:db8:cafe::17")
        );
        let unknown = headers(&[("forwarded", "for=unknown")]);
        assert_eq!(
            client_ip(peer("10.0.0.2"), &unknown, &trusted),
            ip("10.0.0.2")
        );
        assert_eq!(
            client_ip(peer("10.0.0.2"), &HeaderMap::new(), &[]),
            ip("10.0.0.2")
        );
    }

    #[test]
    fn admin_token_is_checked_and_never_printed() {
        assert!(AdminToken::new("short").is_err());
        let token = AdminToken::new("s3cret-s3cret-s3cret").expect("long enough");
        assert!(token.matches("s3cret-s3cret-s3cret"));
        assert!(!token.matches("s3cret-s3cret-s3creT"));
        assert!(!token.matches(""));
        assert!(!format!("{token:?}").contains("s3cret"));
        let config = HttpConfig {
            admin_token: Some(token),
            ..HttpConfig::default()
        };
        let admin = headers(&[("authorization", "Bearer s3cret-s3cret-s3cret")]);
        let v = Visitor::identify(&config, None, &admin).expect("admin");
        assert_eq!(v.caller, Caller::Admin);
        let wrong = headers(&[("authorization", "Bearer nope")]);
        assert!(Visitor::identify(&config, None, &wrong).is_err());
        let v = Visitor::identify(&config, None, &HeaderMap::new()).expect("visitor");
        assert_eq!(v.caller, Caller::Visitor);
    }
}
