//! The per-session write order, the live-session_id uniqueness and begin_turn's
//! context are decided inside PostgreSQL (row locks, a partial unique index, a fresh
//! snapshot per statement of the turn function); these races prove it against the
//! real server, many connections at once.

mod common;

use std::collections::HashSet;
use std::time::Duration as StdDuration;

use chrono::Duration;
use colloquy_core::ports::ChatStore;
use colloquy_core::{
    Clock, Entity, ManualClock, MessageDraft, MessageQuery, Metadata, Page, Role, Session,
    SessionRef, StoreError,
};
use colloquy_postgres::PostgresStore;
use uuid::Uuid;

/// Every race below finishes well within this, or the test fails instead of hanging.
const DEADLINE: StdDuration = StdDuration::from_secs(60);

fn session(clock: &ManualClock, sid: &str, ttl: Duration) -> Session {
    let now = clock.now();
    Session {
        id: Uuid::new_v4(),
        session_id: sid.into(),
        external_user_id: None,
        created_at: now,
        expires_at: now + ttl,
        is_active: true,
        responder: colloquy_core::Responder::Ai,
        handoff_requested_at: None,
        metadata: Metadata::new(),
    }
}

fn draft(text: String, timestamp: chrono::DateTime<chrono::Utc>) -> MessageDraft {
    MessageDraft {
        id: Uuid::new_v4(),
        role: Role::User,
        message: text,
        metadata: Metadata::new(),
        timestamp,
    }
}

async fn all_messages(store: &PostgresStore, r: &SessionRef) -> Vec<colloquy_core::ChatMessage> {
    let query = MessageQuery {
        page: Page {
            limit: Page::MAX_LIMIT,
            offset: 0,
        },
        ..MessageQuery::default()
    };
    store.list_messages(r, &query).await.expect("list").1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_begin_turns_each_see_every_earlier_message() {
    let Some((store, clock, schema)) = common::manual().await else {
        return;
    };
    let s = session(&clock, "turns", Duration::hours(1));
    store.create_session(&s).await.expect("create");
    let r = SessionRef::from_uuid(s.id);
    let writers = 8;
    let per_writer = 15;
    let now = clock.now();
    let turns = tokio::time::timeout(DEADLINE, async {
        let tasks: Vec<_> = (0..writers)
            .map(|w| {
                let store = store.clone();
                let r = r.clone();
                tokio::spawn(async move {
                    let mut turns = Vec::new();
                    for i in 0..per_writer {
                        let turn = store
                            .begin_turn(&r, draft(format!("w{w} m{i}"), now), 1000)
                            .await
                            .expect("begin_turn");
                        turns.push(turn);
                    }
                    turns
                })
            })
            .collect();
        let mut turns = Vec::new();
        for t in tasks {
            turns.extend(t.await.expect("writer"));
        }
        turns
    })
    .await
    .expect("turns finish");
    let order = all_messages(&store, &r).await;
    assert_eq!(order.len(), writers * per_writer);
    for turn in &turns {
        // The context is exactly the write order up to and including this message.
        let place = order
            .iter()
            .position(|m| m.id == turn.message.id)
            .expect("message stored");
        let ids: Vec<Uuid> = turn.recent.iter().map(|m| m.id).collect();
        let expected: Vec<Uuid> = order[..=place].iter().map(|m| m.id).collect();
        assert_eq!(ids, expected, "turn for {}", turn.message.message);
    }
    store.close();
    schema.drop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_appends_get_one_order_with_rising_timestamps() {
    let Some((store, clock, schema)) = common::manual().await else {
        return;
    };
    let s = session(&clock, "appends", Duration::hours(1));
    store.create_session(&s).await.expect("create");
    let r = SessionRef::parse("appends");
    let base = clock.now();
    tokio::time::timeout(DEADLINE, async {
        let tasks: Vec<_> = (0..8)
            .map(|w| {
                let store = store.clone();
                let r = r.clone();
                tokio::spawn(async move {
                    for i in 0..25 {
                        // Timestamps deliberately out of order across writers.
                        let ts = base + Duration::milliseconds((w * 7 + i * 3) % 50);
                        store
                            .append(&r, draft(format!("{w}:{i}"), ts))
                            .await
                            .expect("append");
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.expect("writer");
        }
    })
    .await
    .expect("appends finish");
    let order = all_messages(&store, &r).await;
    assert_eq!(order.len(), 200);
    assert!(order.windows(2).all(|w| w[0].timestamp <= w[1].timestamp));
    for w in 0..8 {
        let mine: Vec<&str> = order
            .iter()
            .map(|m| m.message.as_str())
            .filter(|m| m.starts_with(&format!("{w}:")))
            .collect();
        let expected: Vec<String> = (0..25).map(|i| format!("{w}:{i}")).collect();
        assert_eq!(mine, expected, "writer {w}'s messages keep their order");
    }
    store.close();
    schema.drop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_creates_of_an_expired_session_id_have_one_winner() {
    let Some((store, clock, schema)) = common::manual().await else {
        return;
    };
    for round in 0..5 {
        let sid = format!("contested-{round}");
        // An expired holder still stored (retention): the racers must release it once.
        store
            .create_session(&session(&clock, &sid, Duration::seconds(1)))
            .await
            .expect("holder");
        clock.advance(Duration::seconds(2));
        let outcomes = tokio::time::timeout(DEADLINE, async {
            let tasks: Vec<_> = (0..8)
                .map(|_| {
                    let store = store.clone();
                    let s = session(&clock, &sid, Duration::hours(1));
                    tokio::spawn(async move { (s.id, store.create_session(&s).await) })
                })
                .collect();
            let mut outcomes = Vec::new();
            for t in tasks {
                outcomes.push(t.await.expect("creator"));
            }
            outcomes
        })
        .await
        .expect("creates finish");
        let winners: Vec<Uuid> = outcomes
            .iter()
            .filter(|(_, o)| o.is_ok())
            .map(|(id, _)| *id)
            .collect();
        assert_eq!(winners.len(), 1, "round {round}: {outcomes:?}");
        assert!(outcomes
            .iter()
            .all(|(_, o)| matches!(o, Ok(()) | Err(StoreError::Conflict(Entity::Session)))));
        let live = store
            .session(&SessionRef::parse(&sid))
            .await
            .expect("get")
            .expect("the winner is live");
        assert_eq!(live.id, winners[0]);
    }
    store.close();
    schema.drop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_delete_racing_appends_leaves_no_message_behind() {
    let Some((store, clock, schema)) = common::manual().await else {
        return;
    };
    let client = common::raw_client().await;
    for round in 0..5 {
        let s = session(&clock, &format!("doomed-{round}"), Duration::hours(1));
        store.create_session(&s).await.expect("create");
        let r = SessionRef::from_uuid(s.id);
        let now = clock.now();
        let acked = tokio::time::timeout(DEADLINE, async {
            let appenders: Vec<_> = (0..6)
                .map(|w| {
                    let store = store.clone();
                    let r = r.clone();
                    tokio::spawn(async move {
                        let mut acked = HashSet::new();
                        for i in 0..20 {
                            match store.append(&r, draft(format!("{w}:{i}"), now)).await {
                                Ok((_, m)) => {
                                    acked.insert(m.id);
                                }
                                Err(StoreError::NotFound(Entity::Session)) => break,
                                Err(e) => panic!("append: {e:?}"),
                            }
                        }
                        acked
                    })
                })
                .collect();
            tokio::task::yield_now().await;
            store.delete_session(&r).await.expect("delete");
            // Once delete returned, nothing of the session is readable.
            assert!(store.session(&r).await.expect("get").is_none());
            let mut acked = HashSet::new();
            for a in appenders {
                acked.extend(a.await.expect("appender"));
            }
            acked
        })
        .await
        .expect("race finishes");
        for id in acked {
            assert!(store.message(id).await.expect("get").is_none());
        }
        let left: i64 = client
            .query_one(
                &format!(
                    "SELECT count(*) FROM {}.colloquy_messages WHERE session = $1",
                    schema.0
                ),
                &[&s.id],
            )
            .await
            .expect("count")
            .get(0);
        assert_eq!(left, 0, "round {round}: messages outlived their session");
    }
    store.close();
    schema.drop().await;
}
