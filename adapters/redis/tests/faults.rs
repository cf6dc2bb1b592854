//! Redis going away and coming back, on private `redis-server`s on their own ports:
//! operations fail fast with `StoreError::Unavailable` (no hang), the service reports
//! `store_unavailable`, and everything works again within 2 s of Redis being back.
//!
//! On a cluster an operation may write to two slots (a pointer first, the session's
//! own keys last). Killing the node of one step makes the operation fail between or
//! before its steps: what it wrote first must stay invisible, and an operation that
//! failed must not have stored anything a reader sees.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Duration as Span;
use colloquy_core::ports::ChatStore;
use colloquy_core::{
    ChatService, Clock, ErrorCode, ManualClock, MessageDraft, MessageQuery, Metadata, Page, Role,
    Session, SessionFilter, SessionRef, StoreError,
};
use colloquy_redis::{RedisConfig, RedisStore};
use common::{free_port, temp_dir, PrivateCluster, RedisServer};
use redis::AsyncCommands;
use uuid::Uuid;

/// Longer than any failure may take with the timeouts below; only guards against a hang.
const HANG_GUARD: Duration = Duration::from_secs(10);

fn session(clock: &ManualClock) -> Session {
    session_named(clock, &format!("fault-{}", Uuid::new_v4().simple()))
}

fn session_named(clock: &ManualClock, sid: &str) -> Session {
    let now = clock.now();
    Session {
        id: Uuid::now_v7(),
        session_id: sid.to_owned(),
        external_user_id: None,
        created_at: now,
        expires_at: now + Span::hours(1),
        is_active: true,
        responder: colloquy_core::Responder::Ai,
        handoff_requested_at: None,
        metadata: Metadata::new(),
    }
}

fn draft(clock: &ManualClock) -> MessageDraft {
    draft_with_id(clock, Uuid::now_v7())
}

fn draft_with_id(clock: &ManualClock, id: Uuid) -> MessageDraft {
    MessageDraft {
        id,
        role: Role::User,
        message: "hello".into(),
        metadata: Metadata::new(),
        timestamp: clock.now(),
    }
}

fn by_sid(s: &Session) -> SessionRef {
    SessionRef::parse(&s.session_id)
}

/// Creates a session and appends to it; the whole round must succeed.
async fn write_round(store: &RedisStore, clock: &ManualClock) -> Result<(), StoreError> {
    let s = session(clock);
    store.create_session(&s).await?;
    store.append(&by_sid(&s), draft(clock)).await?;
    let got = store.session(&by_sid(&s)).await?;
    assert_eq!(got.map(|g| g.id), Some(s.id));
    Ok(())
}

fn assert_unavailable<T: std::fmt::Debug>(what: &str, result: Result<T, StoreError>) {
    assert!(
        matches!(result, Err(StoreError::Unavailable(_))),
        "{what}: expected Unavailable, got {result:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_redis_is_unavailable_then_service_resumes_within_2s() {
    let dir = temp_dir("fault");
    let port = free_port();
    let Some(mut server) = RedisServer::start(port, dir.path()) else {
        return;
    };
    let clock = Arc::new(ManualClock::new());
    let config = RedisConfig {
        prefix: "fault:".into(),
        connect_timeout: Duration::from_millis(500),
        response_timeout: Duration::from_secs(1),
        ..RedisConfig::default()
    };
    let store = Arc::new(
        RedisStore::connect(&server.url(), &config, clock.clone())
            .await
            .expect("connect to the private server"),
    );
    let service = ChatService::builder(store.clone(), clock.clone()).build();
    write_round(&store, &clock).await.expect("works while up");
    service.ready().await.expect("ready while up");
    let known = session(&clock);
    store.create_session(&known).await.expect("create");

    server.kill();

    let guard = |f| tokio::time::timeout(HANG_GUARD, f);
    assert_unavailable(
        "get",
        guard(store.session(&SessionRef::from_uuid(known.id)))
            .await
            .expect("get does not hang"),
    );
    assert_unavailable(
        "append",
        tokio::time::timeout(HANG_GUARD, store.append(&by_sid(&known), draft(&clock)))
            .await
            .expect("append does not hang"),
    );
    assert_unavailable(
        "create",
        tokio::time::timeout(HANG_GUARD, store.create_session(&session(&clock)))
            .await
            .expect("create does not hang"),
    );
    assert_unavailable(
        "ping",
        tokio::time::timeout(HANG_GUARD, store.ping())
            .await
            .expect("ping does not hang"),
    );
    let not_ready = tokio::time::timeout(HANG_GUARD, service.ready())
        .await
        .expect("ready does not hang");
    let code = not_ready.expect_err("not ready while Redis is down").code();
    assert_eq!(code, ErrorCode::StoreUnavailable);
    assert_eq!(code.as_str(), "store_unavailable");

    server.restart(); // returns once the new server answers PING
    let back = Instant::now();
    loop {
        let attempt = tokio::time::timeout(HANG_GUARD, write_round(&store, &clock))
            .await
            .expect("no hang after restart");
        match attempt {
            Ok(()) => break,
            Err(e) => assert!(
                back.elapsed() < Duration::from_secs(2),
                "not recovered 2 s after Redis came back: {e:?}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(20)).await; // poll interval, not a sync
    }
    let recovered_in = back.elapsed();
    assert!(recovered_in < Duration::from_secs(2));
    service.ready().await.expect("ready again");
    eprintln!("recovered {recovered_in:?} after Redis came back");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frozen_redis_times_out_as_unavailable_instead_of_hanging() {
    let dir = temp_dir("frozen");
    let port = free_port();
    let Some(server) = RedisServer::start(port, dir.path()) else {
        return;
    };
    let clock = Arc::new(ManualClock::new());
    let config = RedisConfig {
        prefix: "frozen:".into(),
        connect_timeout: Duration::from_millis(500),
        response_timeout: Duration::from_millis(500),
        ..RedisConfig::default()
    };
    let store = RedisStore::connect(&server.url(), &config, clock.clone())
        .await
        .expect("connect to the private server");
    write_round(&store, &clock).await.expect("works while up");

    server.signal("STOP"); // the socket stays open but nothing answers
    let result = tokio::time::timeout(HANG_GUARD, store.ping())
        .await
        .expect("the response timeout ends the wait");
    server.signal("CONT");
    assert_unavailable("ping to a frozen Redis", result);

    let back = Instant::now();
    loop {
        match write_round(&store, &clock).await {
            Ok(()) => break,
            Err(e) => assert!(
                back.elapsed() < Duration::from_secs(2),
                "not recovered 2 s after Redis resumed: {e:?}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(20)).await; // poll interval, not a sync
    }
}

/// A store on a private cluster, with timeouts short enough for a dead node.
struct ClusterFixture {
    cluster: PrivateCluster,
    store: RedisStore,
    clock: Arc<ManualClock>,
}

impl ClusterFixture {
    async fn start() -> Option<Self> {
        let cluster = PrivateCluster::start()?;
        let clock = Arc::new(ManualClock::new());
        let config = RedisConfig {
            prefix: "steps:".into(),
            connect_timeout: Duration::from_millis(300),
            response_timeout: Duration::from_secs(1),
            ..RedisConfig::default()
        };
        let store = RedisStore::connect_cluster(&cluster.addresses(), &config, clock.clone())
            .await
            .expect("connect to the private cluster");
        Some(Self {
            cluster,
            store,
            clock,
        })
    }

    /// A session_id whose slot is on node `node` (and the list index is not).
    fn session_id_on(&self, node: usize) -> String {
        let index = self.cluster.node_of("steps:{idx}:c");
        assert_ne!(index, node, "pick another node");
        (0..)
            .map(|i| format!("steps-{i}"))
            .find(|sid| self.cluster.node_of(sid) == node)
            .expect("some session_id lands on every node")
    }

    /// A UUID whose slot is on node `node`.
    fn uuid_on(&self, node: usize) -> Uuid {
        std::iter::repeat_with(Uuid::now_v7)
            .find(|id| self.cluster.node_of(&id.to_string()) == node)
            .expect("some UUID lands on every node")
    }

    /// A message id (as a client may choose it) whose pointer is on node `node`: the
    /// pointer's slot is named by the id's low 14 bits, so one the store generates for
    /// a session_id on that node.
    fn message_id_on(&self, node: usize) -> Uuid {
        (0..)
            .map(|i| format!("pointer-{i}"))
            .find(|sid| self.cluster.node_of(sid) == node)
            .map(|sid| self.store.new_message_id(&SessionRef::parse(&sid)))
            .expect("some session_id lands on every node")
    }

    /// The node other than the list index's and `not`.
    fn other_node(&self, not: usize) -> usize {
        let index = self.cluster.node_of("steps:{idx}:c");
        (0..3)
            .find(|n| *n != not && *n != index)
            .unwrap_or((not + 1) % 3)
    }

    /// Restarts node `n` and waits until the store answers for `s` again.
    async fn restart(&mut self, n: usize, s: &Session) {
        self.cluster.nodes[n].restart();
        self.cluster.wait_ok();
        let deadline = Instant::now() + HANG_GUARD;
        let probe = MessageQuery::newest(1);
        while tokio::time::timeout(HANG_GUARD, self.store.list_messages(&by_sid(s), &probe))
            .await
            .map_or(true, |r| matches!(r, Err(StoreError::Unavailable(_))))
        {
            assert!(Instant::now() < deadline, "the store did not come back");
            tokio::time::sleep(Duration::from_millis(50)).await; // poll interval
        }
    }

    async fn messages(&self, s: &Session) -> Vec<Uuid> {
        let all = MessageQuery {
            page: Page::default(),
            ..MessageQuery::default()
        };
        let (_, listed) = self
            .store
            .list_messages(&by_sid(s), &all)
            .await
            .expect("list");
        listed.iter().map(|m| m.id).collect()
    }
}

/// The pointer first, the append last: the append's node dies in between, the append
/// fails, and its message is nowhere to be seen; a retry stores it once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_append_failing_after_its_pointer_leaves_no_message() {
    let Some(mut f) = ClusterFixture::start().await else {
        return;
    };
    let session_node = f.cluster.node_of("steps:{idx}:c").wrapping_add(1) % 3;
    let s = session_named(&f.clock, &f.session_id_on(session_node));
    f.store.create_session(&s).await.expect("create");
    let (_, first) = f
        .store
        .append(&by_sid(&s), draft(&f.clock))
        .await
        .expect("append");
    let pointer_node = f.other_node(session_node);
    let lost = draft_with_id(&f.clock, f.message_id_on(pointer_node));

    f.cluster.nodes[session_node].kill();
    let failed = tokio::time::timeout(HANG_GUARD, f.store.append(&by_sid(&s), lost.clone()))
        .await
        .expect("no hang");
    assert_unavailable("append with the session's node down", failed);
    // The first step happened: the pointer is there.
    let mut raw = redis::Client::open(f.cluster.nodes[pointer_node].url())
        .expect("url")
        .get_multiplexed_async_connection()
        .await
        .expect("connect");
    let names: Vec<String> = raw
        .keys(format!("steps:{{*}}:{}:p", lost.id))
        .await
        .expect("KEYS");
    assert_eq!(names.len(), 1, "one pointer: {names:?}");
    let pointer: Option<String> = raw.get(&names[0]).await.expect("GET");
    assert_eq!(pointer.as_deref(), Some(s.session_id.as_str()));

    f.restart(session_node, &s).await;
    assert_eq!(
        f.messages(&s).await,
        [first.id],
        "the failed append stored nothing"
    );
    assert_eq!(f.store.message(lost.id).await.expect("get"), None);
    let (_, retried) = f
        .store
        .append(&by_sid(&s), lost.clone())
        .await
        .expect("retry");
    assert_eq!(f.messages(&s).await, [first.id, lost.id]);
    let (found, _) = f.store.message(lost.id).await.expect("get").expect("found");
    assert_eq!(found, retried);
}

/// The pointer's node is down: the append fails at its first step and writes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_append_failing_at_its_pointer_writes_nothing() {
    let Some(mut f) = ClusterFixture::start().await else {
        return;
    };
    let session_node = f.cluster.node_of("steps:{idx}:c").wrapping_add(1) % 3;
    let s = session_named(&f.clock, &f.session_id_on(session_node));
    f.store.create_session(&s).await.expect("create");
    let pointer_node = f.other_node(session_node);
    let lost = draft_with_id(&f.clock, f.message_id_on(pointer_node));

    f.cluster.nodes[pointer_node].kill();
    let failed = tokio::time::timeout(HANG_GUARD, f.store.append(&by_sid(&s), lost.clone()))
        .await
        .expect("no hang");
    assert_unavailable("append with the pointer's node down", failed);
    // The session's own node is up: nothing reached it.
    assert_eq!(f.messages(&s).await, Vec::<Uuid>::new());

    f.restart(pointer_node, &s).await;
    assert_eq!(f.messages(&s).await, Vec::<Uuid>::new());
    f.store
        .append(&by_sid(&s), lost.clone())
        .await
        .expect("retry");
    assert_eq!(f.messages(&s).await, [lost.id]);
}

/// The UUID pointer and list entry first, the session last: the session's node dies in
/// between, the create fails, and no reader finds the session; a retry creates it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_create_failing_after_its_pointers_leaves_no_session() {
    let Some(mut f) = ClusterFixture::start().await else {
        return;
    };
    let session_node = f.cluster.node_of("steps:{idx}:c").wrapping_add(1) % 3;
    let mut s = session_named(&f.clock, &f.session_id_on(session_node));
    s.id = f.uuid_on(f.other_node(session_node));

    f.cluster.nodes[session_node].kill();
    let failed = tokio::time::timeout(HANG_GUARD, f.store.create_session(&s))
        .await
        .expect("no hang");
    assert_unavailable("create with the session's node down", failed);

    // The UUID pointer and the list entry were written (their nodes are up) ...
    let listed = f
        .store
        .list_sessions(&SessionFilter::default(), Page::default())
        .await;
    // ... but the list checks each entry in the session's slot, which is down.
    assert_unavailable("list with the session's node down", listed);
    f.cluster.nodes[session_node].restart();
    f.cluster.wait_ok();
    let deadline = Instant::now() + HANG_GUARD;
    let found = loop {
        match f.store.session(&SessionRef::from_uuid(s.id)).await {
            Err(StoreError::Unavailable(_)) => {
                assert!(Instant::now() < deadline, "the store did not come back");
                tokio::time::sleep(Duration::from_millis(50)).await; // poll interval
            }
            other => break other.expect("get by UUID"),
        }
    };
    assert_eq!(found, None, "no session by UUID");
    assert_eq!(f.store.session(&by_sid(&s)).await.expect("get"), None);
    let listed = f
        .store
        .list_sessions(&SessionFilter::default(), Page::default())
        .await
        .expect("list");
    assert!(listed.is_empty(), "no session listed: {listed:?}");
    f.store.create_session(&s).await.expect("retry");
    assert_eq!(
        f.store
            .session(&SessionRef::from_uuid(s.id))
            .await
            .expect("get"),
        Some(s.clone())
    );
    let listed = f
        .store
        .list_sessions(&SessionFilter::default(), Page::default())
        .await
        .expect("list");
    assert_eq!(listed, [s]);
}

/// The UUID pointer's node is down: the create fails at its first step, and the
/// session's own (live) node never gets the session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_create_failing_at_its_uuid_pointer_writes_no_session() {
    let Some(mut f) = ClusterFixture::start().await else {
        return;
    };
    let session_node = f.cluster.node_of("steps:{idx}:c").wrapping_add(1) % 3;
    let mut s = session_named(&f.clock, &f.session_id_on(session_node));
    let pointer_node = f.other_node(session_node);
    s.id = f.uuid_on(pointer_node);

    f.cluster.nodes[pointer_node].kill();
    let failed = tokio::time::timeout(HANG_GUARD, f.store.create_session(&s))
        .await
        .expect("no hang");
    assert_unavailable("create with the UUID pointer's node down", failed);
    assert_eq!(
        f.store
            .session(&by_sid(&s))
            .await
            .expect("get by session_id"),
        None,
        "the session's node never got it"
    );
    f.cluster.nodes[pointer_node].restart();
    f.cluster.wait_ok();
    f.store.create_session(&s).await.expect("retry");
    assert_eq!(f.store.session(&by_sid(&s)).await.expect("get"), Some(s));
}

/// Readiness on a cluster: with one master dead the surviving nodes still answer PING
/// (and, as this cluster does not require full coverage, report `cluster_state:ok`),
/// but the store is not ready: that master's slots are served by nobody. Ready again
/// once the node is back, on the same store.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_master_makes_the_cluster_store_not_ready_though_the_others_answer_ping() {
    let Some(mut f) = ClusterFixture::start().await else {
        return;
    };
    f.store.ping().await.expect("ready while every node is up");
    let s = session_named(&f.clock, &f.session_id_on(f.other_node(0)));
    f.store.create_session(&s).await.expect("create");

    f.cluster.nodes[0].kill();
    for round in 0..2 {
        let started = Instant::now();
        let result = tokio::time::timeout(HANG_GUARD, f.store.ping())
            .await
            .expect("ping does not hang");
        assert_unavailable(&format!("ping with a master down (round {round})"), result);
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "readiness answered in {:?}",
            started.elapsed()
        );
        for node in &f.cluster.nodes[1..] {
            let client = redis::Client::open(node.url()).expect("url");
            let mut conn = client
                .get_multiplexed_async_connection()
                .await
                .expect("a survivor accepts connections");
            let pong: String = redis::cmd("PING")
                .query_async(&mut conn)
                .await
                .expect("a survivor answers PING");
            assert_eq!(pong, "PONG");
        }
        // Second round: after the node timeout, when the others have marked it failed.
        if round == 0 {
            tokio::time::sleep(Duration::from_millis(2500)).await; // let the node timeout pass
        }
    }

    f.restart(0, &s).await;
    let deadline = Instant::now() + HANG_GUARD;
    while let Err(e) = f.store.ping().await {
        assert!(
            Instant::now() < deadline,
            "not ready after the node came back: {e:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await; // poll interval
    }
}
