//! The open-files limit: raised to the hard limit at start-up (each client
//! connection is a file descriptor), and the connection cap fitted under it.

use std::io;

/// The open-files limits of this process (`RLIMIT_NOFILE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FdLimit {
    /// The soft limit found at start-up.
    pub(crate) soft_before: u64,
    /// The soft limit in force now.
    pub(crate) soft: u64,
    /// The hard limit (the most the soft limit may be raised to).
    pub(crate) hard: u64,
}

/// Raises the soft open-files limit to the hard limit.
pub(crate) fn raise() -> io::Result<FdLimit> {
    let (soft_before, hard) = rlimit::Resource::NOFILE.get()?;
    let soft = rlimit::increase_nofile_limit(hard)?;
    Ok(FdLimit {
        soft_before,
        soft,
        hard,
    })
}

/// File descriptors kept for everything but client connections: the store's and
/// the model's connections, the SQLite files, the log. A quarter of the limit, at
/// least 64 and at most 4096.
pub(crate) fn reserve(soft: u64) -> u64 {
    (soft / 4).clamp(64, 4096)
}

/// `requested` connections, lowered to fit under `soft` open files with the
/// [`reserve`]; at least 1.
pub(crate) fn connection_cap(requested: usize, soft: u64) -> usize {
    let room = usize::try_from(soft.saturating_sub(reserve(soft))).unwrap_or(usize::MAX);
    requested.min(room).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_leaves_a_reserve() {
        assert_eq!(connection_cap(10_000, 1_048_576), 10_000);
        assert_eq!(connection_cap(10_000, 20_000), 10_000);
        assert_eq!(connection_cap(20_000, 20_000), 15_904);
        assert_eq!(connection_cap(10_000, 1024), 768);
        assert_eq!(connection_cap(10_000, 100), 36);
        assert_eq!(connection_cap(10_000, 10), 1);
    }

    #[test]
    fn raising_reaches_the_hard_limit() {
        let limit = raise().expect("getrlimit works");
        assert!(limit.soft >= limit.soft_before);
        assert_eq!(limit.soft, limit.hard);
    }
}
