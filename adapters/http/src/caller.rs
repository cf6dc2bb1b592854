//! Who is calling: the operator (the request carries the admin token) or a visitor,
//! and from which client address — the socket's peer, or, when the peer is a trusted
//! reverse proxy, the client named in the one header the operator chose
//! ([`ClientIpHeader`]); every other forwarding header is ignored, so a visitor cannot
//! pick the address their limits are counted under. IPv6 clients are counted per
//! network prefix (`/64` by default): one host holds a whole /64.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

use colloquy_core::access::Caller;
use colloquy_core::ErrorCode;
use http::{header, HeaderMap};
use ipnet::{IpNet, Ipv6Net};
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
    pub const MIN_CHARS: usize = 32;
    /// The fewest distinct characters a token must have.
    pub const MIN_DISTINCT: usize = 12;

    /// A token of at least [`AdminToken::MIN_CHARS`] visible ASCII characters, with
    /// at least [`AdminToken::MIN_DISTINCT`] distinct characters from at least two
    /// classes (lower case, upper case, digits, symbols): `openssl rand -hex 32` or
    /// `-base64 32` qualify; a word repeated or a run of one character does not.
    ///
    /// # Errors
    /// [`WeakToken`] otherwise.
    pub fn new(token: impl Into<String>) -> Result<Self, WeakToken> {
        let token = token.into();
        if token.len() < Self::MIN_CHARS || !token.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(WeakToken);
        }
        let distinct = token.bytes().collect::<std::collections::BTreeSet<u8>>();
        let classes = [
            token.bytes().any(|b| b.is_ascii_lowercase()),
            token.bytes().any(|b| b.is_ascii_uppercase()),
            token.bytes().any(|b| b.is_ascii_digit()),
            token.bytes().any(|b| b.is_ascii_punctuation()),
        ];
        if distinct.len() < Self::MIN_DISTINCT || classes.iter().filter(|c| **c).count() < 2 {
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

/// An admin token that is too short, not printable ASCII, or of low entropy.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the admin token must be at least 32 visible ASCII characters, with at least 12 distinct ones from two classes (letters, digits, symbols); generate one with `openssl rand -hex 32`")]
pub struct WeakToken;

/// The forwarding header a trusted proxy names the client in
/// (`--client-ip-header`). Only this header is read; a client's own copy of another
/// one passes through the proxy unchanged and must not count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ClientIpHeader {
    /// `X-Forwarded-For` (nginx's `proxy_add_x_forwarded_for`, AWS ALB, most load
    /// balancers): the default.
    #[default]
    XForwardedFor,
    /// `Forwarded` (RFC 7239) `for=`.
    Forwarded,
    /// `X-Real-IP`: one address, set (not appended) by the proxy.
    XRealIp,
}

impl ClientIpHeader {
    /// The header's name as `--client-ip-header` spells it.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::XForwardedFor => "x-forwarded-for",
            Self::Forwarded => "forwarded",
            Self::XRealIp => "x-real-ip",
        }
    }
}

/// An unknown `--client-ip-header`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown client IP header {0:?}: use x-forwarded-for, forwarded or x-real-ip")]
pub struct ClientIpHeaderError(String);

impl FromStr for ClientIpHeader {
    type Err = ClientIpHeaderError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "x-forwarded-for" => Ok(Self::XForwardedFor),
            "forwarded" => Ok(Self::Forwarded),
            "x-real-ip" => Ok(Self::XRealIp),
            _ => Err(ClientIpHeaderError(s.to_owned())),
        }
    }
}

/// The caller of one request.
#[derive(Debug)]
pub(crate) struct Visitor {
    /// The client's address as limits count it (an IPv6 address reduced to its
    /// network prefix), when known.
    pub(crate) ip: Option<IpAddr>,
    /// Operator or visitor.
    pub(crate) caller: Caller,
}

/// 401 `unauthorized`: an `Authorization` header that is not the admin token.
fn wrong_token() -> ApiError {
    ApiError::new(
        ErrorCode::Unauthorized,
        "the Authorization header does not carry the admin token",
    )
}

impl Visitor {
    /// The client address a request from `peer` with `headers` is counted under.
    pub(crate) fn client(
        config: &HttpConfig,
        peer: Option<IpAddr>,
        headers: &HeaderMap,
    ) -> Option<IpAddr> {
        peer.map(|peer| {
            let ip = client_ip(
                peer,
                headers,
                &config.trusted_proxies,
                config.client_ip_header,
            );
            limit_key(ip, config.ipv6_prefix)
        })
    }

    /// Who sent `headers` from the client address `ip` (see [`Visitor::client`]).
    ///
    /// A request with an `Authorization` header that is not the admin token is
    /// refused (401), so a misconfigured operator tool learns it at once.
    pub(crate) fn identify(
        config: &HttpConfig,
        ip: Option<IpAddr>,
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
                    _ => return Err(wrong_token()),
                }
            }
        };
        Ok(Self { ip, caller })
    }
}

/// The address limits count `ip` under: an IPv4 address as is, an IPv6 address with
/// only its first `ipv6_prefix` bits (an IPv4-mapped IPv6 address as its IPv4).
pub fn limit_key(ip: IpAddr, ipv6_prefix: u8) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => Ipv6Net::new(v6, ipv6_prefix.min(128))
                .map_or(ip, |net| IpAddr::V6(net.trunc().addr())),
        },
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

/// The hops the chosen header reports, nearest the client first.
fn forwarded_chain(headers: &HeaderMap, which: ClientIpHeader) -> Vec<Option<IpAddr>> {
    let values = headers
        .get_all(which.as_str())
        .iter()
        .map(|v| v.to_str().ok())
        .collect::<Vec<_>>();
    // A value that is not text names no address: the walk stops there.
    let elements = values
        .iter()
        .flat_map(|v| v.map_or_else(|| vec![""], |v| v.split(',').collect()));
    match which {
        ClientIpHeader::Forwarded => elements
            .filter_map(|element| {
                element.split(';').find_map(|pair| {
                    let (k, v) = pair.split_once('=')?;
                    k.trim()
                        .eq_ignore_ascii_case("for")
                        .then(|| forwarded_node(v))
                })
            })
            .collect(),
        ClientIpHeader::XForwardedFor | ClientIpHeader::XRealIp => {
            elements.map(forwarded_node).collect()
        }
    }
}

/// The client's address: the peer's, unless the peer is a trusted proxy; then the
/// nearest hop of the forwarded chain that is not itself a trusted proxy (read from
/// the right, as each proxy appends the address it saw). A hop that is not an
/// address stops the walk at the last trusted one.
fn client_ip(
    peer: IpAddr,
    headers: &HeaderMap,
    trusted: &[IpNet],
    which: ClientIpHeader,
) -> IpAddr {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    let mut client = peer;
    if !is_trusted(&client) {
        return client;
    }
    for hop in forwarded_chain(headers, which).into_iter().rev() {
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

    const XFF: ClientIpHeader = ClientIpHeader::XForwardedFor;

    #[test]
    fn forwarding_headers_count_only_from_trusted_proxies() {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().expect("net")];
        let spoofed = headers(&[("x-forwarded-for", "1.2.3.4")]);
        assert_eq!(
            client_ip(peer("203.0.113.9"), &spoofed, &trusted, XFF),
            ip("203.0.113.9")
        );
        assert_eq!(
            client_ip(peer("10.0.0.2"), &spoofed, &trusted, XFF),
            ip("1.2.3.4")
        );
        // A client that forges the start of the chain: the proxy appends the real peer.
        let forged = headers(&[("x-forwarded-for", "9.9.9.9, 198.51.100.7, 10.0.0.3")]);
        assert_eq!(
            client_ip(peer("10.0.0.2"), &forged, &trusted, XFF),
            ip("198.51.100.7")
        );
        let forwarded = headers(&[(
            "forwarded",
            "for=192.0.2.43, for=\"[2001:db8:cafe::17]:4711\";proto=https",
        )]);
        assert_eq!(
            client_ip(
                peer("10.0.0.2"),
                &forwarded,
                &trusted,
                ClientIpHeader::Forwarded
            ),
            ip("2001:db8:cafe::17")
        );
        let unknown = headers(&[("forwarded", "for=unknown")]);
        assert_eq!(
            client_ip(
                peer("10.0.0.2"),
                &unknown,
                &trusted,
                ClientIpHeader::Forwarded
            ),
            ip("10.0.0.2")
        );
        assert_eq!(
            client_ip(peer("10.0.0.2"), &HeaderMap::new(), &[], XFF),
            ip("10.0.0.2")
        );
        let real = headers(&[("x-real-ip", "198.51.100.8")]);
        assert_eq!(
            client_ip(peer("10.0.0.2"), &real, &trusted, ClientIpHeader::XRealIp),
            ip("198.51.100.8")
        );
    }

    #[test]
    fn only_the_chosen_header_counts() {
        // The proxy sets X-Forwarded-For; the client's own Forwarded passes through.
        let trusted: Vec<IpNet> = vec!["127.0.0.1/32".parse().expect("net")];
        let spoof = headers(&[
            ("forwarded", "for=10.1.0.77"),
            ("x-real-ip", "10.1.0.78"),
            ("x-forwarded-for", "203.0.113.5"),
        ]);
        assert_eq!(
            client_ip(peer("127.0.0.1"), &spoof, &trusted, XFF),
            ip("203.0.113.5")
        );
        let only_forwarded = headers(&[("forwarded", "for=10.1.0.77")]);
        assert_eq!(
            client_ip(peer("127.0.0.1"), &only_forwarded, &trusted, XFF),
            ip("127.0.0.1"),
            "a header the operator did not name is never read"
        );
        assert_eq!("X-Real-IP".parse(), Ok(ClientIpHeader::XRealIp));
        assert!("true-client-ip".parse::<ClientIpHeader>().is_err());
    }

    #[test]
    fn ipv6_clients_count_per_prefix() {
        assert_eq!(
            limit_key(ip("2001:db8:1:2:aaaa::1"), 64),
            ip("2001:db8:1:2::")
        );
        assert_eq!(
            limit_key(ip("2001:db8:1:2:ffff::9"), 64),
            limit_key(ip("2001:db8:1:2::1"), 64)
        );
        assert_ne!(
            limit_key(ip("2001:db8:1:3::1"), 64),
            limit_key(ip("2001:db8:1:2::1"), 64)
        );
        assert_eq!(limit_key(ip("2001:db8::1"), 128), ip("2001:db8::1"));
        assert_eq!(limit_key(ip("192.0.2.7"), 64), ip("192.0.2.7"));
        assert_eq!(limit_key(ip("::ffff:192.0.2.7"), 64), ip("192.0.2.7"));
    }

    #[test]
    fn admin_token_is_checked_and_never_printed() {
        const TOKEN: &str = "Xk3-pQ9v-Lm2w-Rt7z-Hb4n-Cd8s-Yf6j";
        assert!(AdminToken::new("short").is_err());
        assert!(
            AdminToken::new("s3cret-s3cret-s3cret").is_err(),
            "18 characters"
        );
        assert!(AdminToken::new("a".repeat(64)).is_err(), "one character");
        assert!(
            AdminToken::new("abababababababababababababababab").is_err(),
            "two distinct"
        );
        assert!(
            AdminToken::new("abcdefghijklmnopqrstuvwxyzabcdefgh").is_err(),
            "one class"
        );
        assert!(
            AdminToken::new("0123456789abcdef0123456789abcdef").is_ok(),
            "hex"
        );
        let token = AdminToken::new(TOKEN).expect("strong");
        assert!(token.matches(TOKEN));
        assert!(!token.matches("Xk3-pQ9v-Lm2w-Rt7z-Hb4n-Cd8s-Yf6J"));
        assert!(!token.matches(""));
        assert!(!format!("{token:?}").contains("Xk3"));
        let config = HttpConfig {
            admin_token: Some(token),
            ..HttpConfig::default()
        };
        let admin = headers(&[("authorization", "Bearer Xk3-pQ9v-Lm2w-Rt7z-Hb4n-Cd8s-Yf6j")]);
        let v = Visitor::identify(&config, None, &admin).expect("admin");
        assert_eq!(v.caller, Caller::Admin);
        let wrong = headers(&[("authorization", "Bearer nope")]);
        assert!(Visitor::identify(&config, None, &wrong).is_err());
        let v = Visitor::identify(&config, None, &HeaderMap::new()).expect("visitor");
        assert_eq!(v.caller, Caller::Visitor);
    }
}
