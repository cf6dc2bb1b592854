//! Time: the [`Clock`] port, its system and manual implementations, and the one
//! wire format for times (RFC 3339, UTC, microseconds, `Z`).

use std::sync::Mutex;

use chrono::{DateTime, Duration, SubsecRound, Utc};

/// The source of "now" for the service and the stores.
///
/// Every time the service writes is read from its clock, truncated to whole
/// microseconds (the precision of the wire format and of every store).
pub trait Clock: Send + Sync + 'static {
    /// The current time.
    fn now(&self) -> DateTime<Utc>;
}

/// The real wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock that only moves when told to; for tests and the conformance suite.
///
/// It starts at the real current time so that stores with physical expiry (Redis
/// `EXPIREAT`) never purge data the test still expects to see.
#[derive(Debug)]
pub struct ManualClock {
    now: Mutex<DateTime<Utc>>,
}

impl Default for ManualClock {
    fn default() -> Self {
        Self::new()
    }
}

impl ManualClock {
    /// A manual clock set to the current wall time, truncated to microseconds.
    #[must_use]
    pub fn new() -> Self {
        Self::starting_at(Utc::now())
    }

    /// A manual clock set to `start`.
    #[must_use]
    pub fn starting_at(start: DateTime<Utc>) -> Self {
        Self {
            now: Mutex::new(start.trunc_subsecs(6)),
        }
    }

    /// Moves the clock forward by `by`.
    pub fn advance(&self, by: Duration) {
        let mut now = self
            .now
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *now += by;
    }

    /// Sets the clock to `to`.
    pub fn set(&self, to: DateTime<Utc>) {
        *self
            .now
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = to.trunc_subsecs(6);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self
            .now
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// `now` truncated to the microsecond precision every time is stored with.
pub(crate) fn now_micros(clock: &dyn Clock) -> DateTime<Utc> {
    clock.now().trunc_subsecs(6)
}

/// Formats a time the way the API writes it: `2024-01-01T12:00:00.123456Z`.
#[must_use]
pub fn format_time(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

/// Parses an RFC 3339 time with any offset into UTC, truncated to microseconds.
///
/// # Errors
/// When `s` is not RFC 3339.
pub fn parse_time(s: &str) -> Result<DateTime<Utc>, chrono::ParseError> {
    Ok(DateTime::parse_from_rfc3339(s)?
        .with_timezone(&Utc)
        .trunc_subsecs(6))
}

/// Serde helpers writing times in the API's format; use with `#[serde(with = ...)]`.
pub mod serde_time {
    use chrono::{DateTime, Utc};
    use serde::{Deserialize, Deserializer, Serializer};

    /// Serializes as `2024-01-01T12:00:00.123456Z`.
    ///
    /// # Errors
    /// Only those of the serializer.
    pub fn serialize<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::format_time(t))
    }

    /// Deserializes any RFC 3339 time.
    ///
    /// # Errors
    /// When the string is not RFC 3339.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        let s = String::deserialize(d)?;
        super::parse_time(&s).map_err(serde::de::Error::custom)
    }

    /// The same for an optional time: `null` when `None`.
    pub mod option {
        use chrono::{DateTime, Utc};
        use serde::{Deserialize, Deserializer, Serializer};

        /// Serializes `Some` as a time string, `None` as `null`.
        ///
        /// # Errors
        /// Only those of the serializer.
        pub fn serialize<S: Serializer>(
            t: &Option<DateTime<Utc>>,
            s: S,
        ) -> Result<S::Ok, S::Error> {
            match t {
                Some(t) => s.serialize_str(&crate::clock::format_time(t)),
                None => s.serialize_none(),
            }
        }

        /// Deserializes `null` or any RFC 3339 time.
        ///
        /// # Errors
        /// When the value is neither `null` nor an RFC 3339 string.
        pub fn deserialize<'de, D: Deserializer<'de>>(
            d: D,
        ) -> Result<Option<DateTime<Utc>>, D::Error> {
            Option::<String>::deserialize(d)?
                .map(|s| crate::clock::parse_time(&s).map_err(serde::de::Error::custom))
                .transpose()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_with_micros_and_z() {
        let t = parse_time("2024-01-01T14:00:00.1234567+02:00").expect("valid time");
        assert_eq!(format_time(&t), "2024-01-01T12:00:00.123456Z");
    }

    #[test]
    fn manual_clock_moves_only_when_told() {
        let clock = ManualClock::new();
        let t0 = clock.now();
        assert_eq!(clock.now(), t0);
        clock.advance(Duration::hours(2));
        assert_eq!(clock.now() - t0, Duration::hours(2));
    }
}
