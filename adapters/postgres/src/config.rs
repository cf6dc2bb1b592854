//! [`PostgresConfig`]: where the database is and how the store uses it.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use crate::error::ConnectError;

/// Settings of a [`PostgresStore`](crate::PostgresStore).
///
/// [`PostgresConfig::new`] gives the documented defaults; change fields as needed.
/// `Debug` shows the URL with its password replaced by `***`.
#[derive(Clone, PartialEq, Eq)]
pub struct PostgresConfig {
    /// A libpq-style connection string: a URL
    /// (`postgres://user:password@host:5432/dbname?sslmode=require`) or key/value
    /// pairs (`host=/var/run/postgresql user=postgres dbname=colloquy`).
    ///
    /// `sslmode=require` connects with TLS (rustls) and verifies the server's
    /// certificate chain and host name against the system's trusted roots plus
    /// [`root_cert`](Self::root_cert); `disable` and `prefer` (the default) connect
    /// without TLS. Unix-socket hosts never use TLS.
    pub url: String,
    /// Most connections the pool opens (default 16). Each API operation holds one for
    /// a single statement.
    pub pool_size: usize,
    /// PostgreSQL's `statement_timeout` for every statement the store runs
    /// (default 5 s; zero disables it). A statement cancelled by it fails with
    /// `StoreError::Unavailable`.
    pub statement_timeout: Duration,
    /// How long connecting may take, and how long an operation waits for a free
    /// pooled connection, before it fails with `StoreError::Unavailable` (default 5 s).
    pub connect_timeout: Duration,
    /// Skip the schema migrations at start-up (default `false`): for deployments
    /// whose database role may not create tables. The store then checks that the
    /// schema is at this build's version and refuses to start otherwise.
    pub no_migrate: bool,
    /// The PostgreSQL schema holding the store's tables (default `None`: the first
    /// schema of the role's `search_path`, usually `public`). Created when missing,
    /// unless `no_migrate`. Lowercase ASCII letters, digits and `_`, not starting
    /// with a digit, at most 63 characters.
    pub schema: Option<String>,
    /// A PEM file of extra CA certificates trusted for `sslmode=require` (default
    /// `None`: the system's roots only), like libpq's `sslrootcert`.
    pub root_cert: Option<PathBuf>,
}

impl PostgresConfig {
    /// The default pool size.
    pub const DEFAULT_POOL_SIZE: usize = 16;
    /// The default statement timeout.
    pub const DEFAULT_STATEMENT_TIMEOUT: Duration = Duration::from_secs(5);
    /// The default connect (and pool wait) timeout.
    pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

    /// The defaults, connecting to `url`.
    #[must_use]
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            pool_size: Self::DEFAULT_POOL_SIZE,
            statement_timeout: Self::DEFAULT_STATEMENT_TIMEOUT,
            connect_timeout: Self::DEFAULT_CONNECT_TIMEOUT,
            no_migrate: false,
            schema: None,
            root_cert: None,
        }
    }

    /// The URL with its password, if any, replaced by `***`: safe to log.
    #[must_use]
    pub fn redacted_url(&self) -> String {
        redact(&self.url)
    }

    /// Checks the settings that do not need the database.
    pub(crate) fn validate(&self) -> Result<(), ConnectError> {
        if self.pool_size == 0 {
            return Err(ConnectError::Config("pool_size must be at least 1".into()));
        }
        if let Some(schema) = &self.schema {
            if !is_plain_identifier(schema) {
                return Err(ConnectError::Config(format!(
                    "schema {schema:?} must be 1 to 63 lowercase ASCII letters, digits or _, \
                     not starting with a digit"
                )));
            }
        }
        Ok(())
    }
}

impl fmt::Debug for PostgresConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresConfig")
            .field("url", &self.redacted_url())
            .field("pool_size", &self.pool_size)
            .field("statement_timeout", &self.statement_timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("no_migrate", &self.no_migrate)
            .field("schema", &self.schema)
            .field("root_cert", &self.root_cert)
            .finish()
    }
}

/// Whether `s` is an identifier PostgreSQL takes without quoting.
fn is_plain_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && s.len() <= 63
}

/// `url` with every password replaced by `***`: the `user:password@` of a URL, a
/// `password=` query parameter, and a `password=` key of the key/value form.
fn redact(url: &str) -> String {
    let url_form = ["postgres://", "postgresql://"]
        .iter()
        .find_map(|scheme| url.strip_prefix(scheme).map(|rest| (*scheme, rest)));
    match url_form {
        Some((scheme, rest)) => {
            let (authority, tail) = rest.split_at(rest.find(['/', '?']).unwrap_or(rest.len()));
            let authority = match authority.rfind('@') {
                Some(at) => {
                    let (userinfo, host) = authority.split_at(at);
                    match userinfo.split_once(':') {
                        Some((user, _)) => format!("{user}:***{host}"),
                        None => authority.to_owned(),
                    }
                }
                None => authority.to_owned(),
            };
            let tail = match tail.split_once('?') {
                Some((path, query)) => {
                    let query: Vec<String> = query
                        .split('&')
                        .map(|pair| match pair.split_once('=') {
                            Some((key, _)) if key == "password" => format!("{key}=***"),
                            _ => pair.to_owned(),
                        })
                        .collect();
                    format!("{path}?{}", query.join("&"))
                }
                None => tail.to_owned(),
            };
            format!("{scheme}{authority}{tail}")
        }
        None => redact_key_value(url),
    }
}

/// Redacts `password = value` in the key/value form, where a value is a single
/// word or a quoted string with `\`-escapes.
fn redact_key_value(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    loop {
        let trimmed = rest.trim_start();
        out.push_str(&rest[..rest.len() - trimmed.len()]);
        if trimmed.is_empty() {
            return out;
        }
        let key_end = trimmed
            .find(|c: char| c == '=' || c.is_whitespace())
            .unwrap_or(trimmed.len());
        let key = &trimmed[..key_end];
        let after_key = &trimmed[key_end..];
        let after_eq = after_key.trim_start();
        let Some(value_part) = after_eq.strip_prefix('=') else {
            // Not key=value: keep the rest as is (the parser will reject it).
            out.push_str(trimmed);
            return out;
        };
        let value_start = value_part.trim_start();
        let value_len = value_length(value_start);
        let sep = &trimmed[key_end..trimmed.len() - value_start.len()];
        out.push_str(key);
        out.push_str(sep);
        if key == "password" {
            out.push_str("***");
        } else {
            out.push_str(&value_start[..value_len]);
        }
        rest = &value_start[value_len..];
    }
}

/// The byte length of the value at the start of `s` (quoted or a word).
fn value_length(s: &str) -> usize {
    if let Some(quoted) = s.strip_prefix('\'') {
        let mut escaped = false;
        for (i, c) in quoted.char_indices() {
            match c {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                '\'' => return i + 2,
                _ => {}
            }
        }
        s.len()
    } else {
        s.find(char::is_whitespace).unwrap_or(s.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_redacted_in_every_form() {
        let cases = [
            (
                "postgres://app:s3cret@db.example:5432/chat?sslmode=require",
                "postgres://app:***@db.example:5432/chat?sslmode=require",
            ),
            ("postgresql://app:p%40ss@h/db", "postgresql://app:***@h/db"),
            (
                "postgres://app@h/db?password=s3cret&sslmode=require",
                "postgres://app@h/db?password=***&sslmode=require",
            ),
            (
                "host=db user=app password=s3cret dbname=chat",
                "host=db user=app password=*** dbname=chat",
            ),
            (
                "host=db password = 's3 cr\\'et' dbname=chat",
                "host=db password = *** dbname=chat",
            ),
            (
                "postgres://postgres@%2Fvar%2Frun%2Fpostgresql/postgres",
                "postgres://postgres@%2Fvar%2Frun%2Fpostgresql/postgres",
            ),
        ];
        for (url, redacted) in cases {
            assert_eq!(redact(url), redacted, "{url}");
            let config = PostgresConfig::new(url);
            let debug = format!("{config:?}");
            assert!(!debug.contains("s3"), "{debug}");
            assert!(!debug.contains("p%40ss"), "{debug}");
        }
    }

    #[test]
    fn defaults_are_as_documented() {
        let c = PostgresConfig::new("postgres://localhost/db");
        assert_eq!(c.pool_size, 16);
        assert_eq!(c.statement_timeout, Duration::from_secs(5));
        assert_eq!(c.connect_timeout, Duration::from_secs(5));
        assert!(!c.no_migrate);
        assert_eq!(c.schema, None);
        assert_eq!(c.root_cert, None);
        assert!(c.validate().is_ok());
    }

    #[test]
    fn schema_names_must_need_no_quoting() {
        let with = |s: &str| PostgresConfig {
            schema: Some(s.into()),
            ..PostgresConfig::new("postgres://localhost/db")
        };
        assert!(with("colloquy").validate().is_ok());
        assert!(with("_t1").validate().is_ok());
        for bad in ["", "Chat", "1x", "a-b", "a b", "x\"; drop", &"a".repeat(64)] {
            assert!(with(bad).validate().is_err(), "{bad:?}");
        }
    }
}
