//! [`RedisStore::ready`]: a readiness check that tells the truth on Redis Cluster.
//!
//! redis-rs's own cluster `PING` goes to the masters it has a connection to and skips
//! the rest, and a cluster that refuses commands (`cluster_state:fail`) still answers
//! `PING` on its surviving nodes. So on a cluster the check is:
//!
//! 1. `CLUSTER SLOTS` from any reachable node (up to [`SLOTS_ATTEMPTS`] random picks):
//!    every one of the 16384 slots must have a master;
//! 2. `CLUSTER INFO` on every master named there, concurrently, through the store's
//!    own connection to that node: each must answer and report `cluster_state:ok`.
//!
//! A master that is down (and not yet replaced by its replica) or that the store has
//! no connection to fails step 2; a failed cluster fails step 2 on every node. On
//! standalone Redis it is one `PING`. Every step is bounded by
//! [`RedisConfig::response_timeout`](crate::RedisConfig::response_timeout), at most
//! [`PROBE_TIMEOUT`], and the whole cluster check by twice that.

use std::collections::BTreeSet;
use std::time::Duration;

use futures::future::join_all;
use redis::cluster_routing::{RoutingInfo, SingleNodeRoutingInfo};
use redis::{ErrorKind, RedisError, Value};

use crate::error::Error;
use crate::store::RedisStore;

/// The longest one readiness step may take.
pub(crate) const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// How many random nodes are asked for the slot map before giving up.
const SLOTS_ATTEMPTS: usize = 3;

/// Hash slots of a Redis Cluster.
const SLOTS: i64 = 16_384;

/// Why the store is not ready, when Redis answered but the answer says "not serving".
fn not_ready(why: String) -> Error {
    Error::Redis(RedisError::from((
        ErrorKind::Server(redis::ServerErrorKind::ClusterDown),
        "cluster not ready",
        why,
    )))
}

fn timed_out(what: &str) -> Error {
    Error::Redis(RedisError::from(std::io::Error::new(
        std::io::ErrorKind::TimedOut,
        format!("{what}: no answer within the readiness timeout"),
    )))
}

/// The masters of a `CLUSTER SLOTS` reply (`host`, `port`), after checking that they
/// serve every slot.
fn masters(reply: &Value) -> Result<BTreeSet<(String, u16)>, Error> {
    let Value::Array(ranges) = reply else {
        return Err(Error::Reply(format!("CLUSTER SLOTS: {reply:?}")));
    };
    let mut covered = 0;
    let mut masters = BTreeSet::new();
    for range in ranges {
        let Value::Array(items) = range else {
            return Err(Error::Reply(format!("CLUSTER SLOTS entry: {range:?}")));
        };
        let (Some(start), Some(end), Some(Value::Array(master))) =
            (items.first(), items.get(1), items.get(2))
        else {
            return Err(Error::Reply(format!("CLUSTER SLOTS entry: {range:?}")));
        };
        let start: i64 = parse(start, "CLUSTER SLOTS start")?;
        let end: i64 = parse(end, "CLUSTER SLOTS end")?;
        let (Some(host), Some(port)) = (master.first(), master.get(1)) else {
            return Err(Error::Reply(format!("CLUSTER SLOTS master: {master:?}")));
        };
        covered += end - start + 1;
        masters.insert((
            parse(host, "CLUSTER SLOTS host")?,
            parse(port, "CLUSTER SLOTS port")?,
        ));
    }
    if covered < SLOTS {
        return Err(not_ready(format!(
            "{} of {SLOTS} slots have no master",
            SLOTS - covered
        )));
    }
    Ok(masters)
}

/// One value of a reply, parsed.
fn parse<T: redis::FromRedisValue>(value: &Value, what: &str) -> Result<T, Error> {
    redis::from_redis_value_ref(value).map_err(|e| Error::Reply(format!("{what}: {e}")))
}

/// Whether a `CLUSTER INFO` text reports `cluster_state:ok`.
fn state_ok(info: &str) -> bool {
    info.lines().any(|l| l.trim() == "cluster_state:ok")
}

impl RedisStore {
    fn probe_timeout(&self) -> Duration {
        self.response_timeout.min(PROBE_TIMEOUT)
    }

    /// Whether the store can serve every operation now (see the module docs).
    pub(crate) async fn ready(&self) -> Result<(), Error> {
        let limit = self.probe_timeout();
        if !self.conn.is_cluster() {
            let mut conn = self.conn.clone();
            let pong =
                tokio::time::timeout(limit, redis::cmd("PING").query_async::<String>(&mut conn))
                    .await
                    .map_err(|_| timed_out("PING"))?;
            return pong.map(drop).map_err(Error::from);
        }
        // Both steps together: at most twice one step's limit.
        tokio::time::timeout(2 * limit, self.cluster_ready(limit))
            .await
            .map_err(|_| timed_out("cluster readiness"))?
    }

    /// The two steps of the module docs.
    async fn cluster_ready(&self, limit: Duration) -> Result<(), Error> {
        let masters = self.cluster_masters(limit).await?;
        let checks = masters.into_iter().map(|(host, port)| async move {
            let route = RoutingInfo::SingleNode(SingleNodeRoutingInfo::ByAddress {
                host: host.clone(),
                port,
            });
            let info = tokio::time::timeout(
                limit,
                self.conn
                    .route(redis::cmd("CLUSTER").arg("INFO").clone(), route),
            )
            .await
            .map_err(|_| timed_out(&format!("CLUSTER INFO on {host}:{port}")))??;
            let info: String = parse(&info, "CLUSTER INFO")?;
            if state_ok(&info) {
                Ok(())
            } else {
                Err(not_ready(format!(
                    "{host}:{port} reports the cluster failed"
                )))
            }
        });
        join_all(checks).await.into_iter().collect()
    }

    /// The cluster's masters, from the first of a few random nodes that answers.
    async fn cluster_masters(&self, limit: Duration) -> Result<BTreeSet<(String, u16)>, Error> {
        let mut last = None;
        for _ in 0..SLOTS_ATTEMPTS {
            let route = RoutingInfo::SingleNode(SingleNodeRoutingInfo::Random);
            let slots = tokio::time::timeout(
                limit,
                self.conn
                    .route(redis::cmd("CLUSTER").arg("SLOTS").clone(), route),
            )
            .await;
            match slots {
                Ok(Ok(reply)) => return masters(&reply),
                Ok(Err(e)) => last = Some(Error::from(e)),
                Err(_) => last = Some(timed_out("CLUSTER SLOTS")),
            }
        }
        Err(last.unwrap_or_else(|| timed_out("CLUSTER SLOTS")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(start: i64, end: i64, port: i64) -> Value {
        Value::Array(vec![
            Value::Int(start),
            Value::Int(end),
            Value::Array(vec![
                Value::BulkString(b"127.0.0.1".to_vec()),
                Value::Int(port),
            ]),
        ])
    }

    #[test]
    fn full_coverage_names_the_masters_and_a_gap_is_not_ready() {
        let full = Value::Array(vec![
            range(0, 5460, 7001),
            range(5461, 10922, 7002),
            range(10923, 16383, 7003),
        ]);
        let got = masters(&full).expect("covered");
        assert_eq!(got.len(), 3);
        assert!(got.contains(&("127.0.0.1".to_owned(), 7002)));
        let gap = Value::Array(vec![range(0, 5460, 7001), range(10923, 16383, 7003)]);
        let err = masters(&gap).expect_err("a gap");
        assert!(err.to_string().contains("5462 of 16384"), "{err}");
    }

    #[test]
    fn only_an_ok_state_is_ready() {
        assert!(state_ok("cluster_enabled:1\r\ncluster_state:ok\r\n"));
        assert!(!state_ok(
            "cluster_state:fail\r\ncluster_slots_ok:10000\r\n"
        ));
    }
}
