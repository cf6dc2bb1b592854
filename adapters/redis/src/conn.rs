//! One connection type over standalone Redis and Redis Cluster, counting requests.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use redis::aio::{ConnectionLike, ConnectionManager};
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::RoutingInfo;
use redis::{Cmd, Pipeline, RedisFuture, RedisResult, Value};

/// The two deployments the store supports.
#[derive(Clone)]
enum Inner {
    Standalone(ConnectionManager),
    Cluster(ClusterConnection),
}

/// A cheap-to-clone, multiplexed connection; every request sent through it (a command,
/// a script call or a pipeline) counts as one round trip.
#[derive(Clone)]
pub(crate) struct Conn {
    inner: Inner,
    requests: Arc<AtomicU64>,
}

impl Conn {
    pub(crate) fn standalone(manager: ConnectionManager) -> Self {
        Self {
            inner: Inner::Standalone(manager),
            requests: Arc::default(),
        }
    }

    pub(crate) fn cluster(connection: ClusterConnection) -> Self {
        Self {
            inner: Inner::Cluster(connection),
            requests: Arc::default(),
        }
    }

    /// Whether keys of different hash slots must go in separate requests.
    pub(crate) fn is_cluster(&self) -> bool {
        matches!(self.inner, Inner::Cluster(_))
    }

    /// Sends `cmd` to the node `routing` names (cluster only; standalone Redis gets it
    /// like any command).
    pub(crate) async fn route(&self, cmd: Cmd, routing: RoutingInfo) -> RedisResult<Value> {
        self.requests.fetch_add(1, Ordering::Relaxed);
        match &self.inner {
            Inner::Standalone(c) => cmd.query_async(&mut c.clone()).await,
            Inner::Cluster(c) => c.clone().route_command(cmd, routing).await,
        }
    }

    /// Requests sent so far by this connection and its clones.
    pub(crate) fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        self.requests.fetch_add(1, Ordering::Relaxed);
        match &mut self.inner {
            Inner::Standalone(c) => c.req_packed_command(cmd),
            Inner::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        self.requests.fetch_add(1, Ordering::Relaxed);
        match &mut self.inner {
            Inner::Standalone(c) => c.req_packed_commands(cmd, offset, count),
            Inner::Cluster(c) => c.req_packed_commands(cmd, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match &self.inner {
            Inner::Standalone(c) => c.get_db(),
            Inner::Cluster(c) => c.get_db(),
        }
    }
}
