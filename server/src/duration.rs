//! Durations on the command line: a number of seconds, or a number with a unit
//! (`500ms`, `30s`, `15m`, `24h`, `7d`).

use std::time::Duration;

use colloquy_core::Retention;

/// Why a duration did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid duration {input:?}: use seconds (30) or a number with ms, s, m, h or d (30s, 15m, 24h)")]
pub(crate) struct DurationError {
    input: String,
}

/// Parses `30`, `500ms`, `30s`, `15m`, `24h` or `7d`.
pub(crate) fn parse(input: &str) -> Result<Duration, DurationError> {
    let error = || DurationError {
        input: input.to_owned(),
    };
    let text = input.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let n: u64 = number.parse().map_err(|_| error())?;
    let millis_per_unit: u64 = match unit.trim() {
        "ms" => 1,
        "" | "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return Err(error()),
    };
    n.checked_mul(millis_per_unit)
        .map(Duration::from_millis)
        .ok_or_else(error)
}

/// Parses `--retention`: `forever`, or a duration as [`parse`] reads it (`0` purges
/// expired sessions at the next purge).
pub(crate) fn parse_retention(input: &str) -> Result<Retention, DurationError> {
    if input.trim().eq_ignore_ascii_case("forever") {
        return Ok(Retention::Forever);
    }
    let keep = parse(input)?;
    chrono::Duration::from_std(keep)
        .map(Retention::For)
        .map_err(|_| DurationError {
            input: input.to_owned(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retention_is_forever_or_a_duration() {
        assert_eq!(parse_retention("forever"), Ok(Retention::Forever));
        assert_eq!(parse_retention("0"), Ok(Retention::default()));
        assert_eq!(
            parse_retention("7d"),
            Ok(Retention::For(chrono::Duration::days(7)))
        );
        assert!(parse_retention("always").is_err());
    }

    #[test]
    fn numbers_and_units() {
        assert_eq!(parse("30"), Ok(Duration::from_secs(30)));
        assert_eq!(parse("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse("15m"), Ok(Duration::from_secs(900)));
        assert_eq!(parse("24h"), Ok(Duration::from_secs(86_400)));
        assert_eq!(parse("7d"), Ok(Duration::from_secs(604_800)));
        assert_eq!(parse("0"), Ok(Duration::ZERO));
        for bad in [
            "",
            "h",
            "-1",
            "1.5h",
            "3 weeks",
            "1y",
            "99999999999999999999d",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
