//! Concurrency: racing appends, creates, deletes and readers. No sleeps and no
//! polling: tasks signal each other through channels, and the harness's deadline
//! bounds every wait.

use std::collections::HashSet;
use std::sync::Arc;

use colloquy_core::{ChatMessage, Clock, Cursor, Entity, MessageQuery, Page, Role, StoreError};
use tokio::sync::{mpsc, watch};
use uuid::Uuid;

use super::{
    assert_err, assert_message_gone, by_sid, by_uuid, create, draft_at, get, list, list_all,
    message_ids, new_session,
};
use crate::TestStore;

/// Many tasks appending to one session (half by UUID, half by session_id) lose
/// nothing and agree on one total order.
pub async fn concurrent_appends_lose_nothing_and_agree_on_one_order(s: &TestStore) {
    const TASKS: usize = 8;
    const EACH: usize = 25;
    let chat = create(s, "busy").await;
    let mut handles = Vec::new();
    for task in 0..TASKS {
        let store = Arc::clone(&s.store);
        let clock = Arc::clone(&s.clock);
        let reference = if task % 2 == 0 {
            by_uuid(&chat)
        } else {
            by_sid(&chat)
        };
        handles.push(tokio::spawn(async move {
            for i in 0..EACH {
                let d = draft_at(Role::User, &format!("{task}:{i}"), clock.now());
                if let Err(e) = store.append(&reference, d).await {
                    panic!("append {task}:{i} to a live, active session failed: {e:?}");
                }
            }
        }));
    }
    for h in handles {
        h.await.expect("appending task");
    }
    let first = list_all(s, &chat).await;
    let rule = "'when many appends race on one session, each gets its own place in one total \
                order'";
    assert_eq!(first.len(), TASKS * EACH, "{rule}: no append lost");
    let unique: HashSet<Uuid> = first.iter().map(|m| m.id).collect();
    assert_eq!(unique.len(), TASKS * EACH, "{rule}: no duplicates");
    for task in 0..TASKS {
        let own: Vec<usize> = first
            .iter()
            .filter_map(|m| m.message.split_once(':'))
            .filter(|(t, _)| *t == task.to_string())
            .filter_map(|(_, i)| i.parse().ok())
            .collect();
        assert_eq!(
            own,
            (0..EACH).collect::<Vec<_>>(),
            "{rule}: task {task}'s appends keep the order it made them in"
        );
    }
    assert!(
        first.windows(2).all(|w| w[0].timestamp <= w[1].timestamp),
        "timestamps never go backwards in write order"
    );
    assert_eq!(
        list_all(s, &chat).await,
        first,
        "{rule}: every reader sees the same order"
    );
    let mut paged: Vec<ChatMessage> = Vec::new();
    for offset in (0..TASKS * EACH).step_by(30) {
        let query = MessageQuery {
            page: Page { limit: 30, offset },
            ..MessageQuery::default()
        };
        paged.extend(list(s, &by_uuid(&chat), &query).await);
    }
    assert_eq!(paged, first, "{rule}: pages agree with the whole list");
    let mut newest_first = list(
        s,
        &by_uuid(&chat),
        &MessageQuery {
            order: colloquy_core::Order::Desc,
            page: super::big_page(),
            ..MessageQuery::default()
        },
    )
    .await;
    newest_first.reverse();
    assert_eq!(
        newest_first, first,
        "{rule}: desc is the exact reverse of asc"
    );
}

/// A delete racing appends leaves no orphan: every append either failed with
/// `NotFound(Session)` or its message is deleted with the session (its id is free
/// again).
pub async fn delete_racing_appends_leaves_no_orphans(s: &TestStore) {
    const TASKS: usize = 6;
    let chat = create(s, "race").await;
    let (landed, mut landings) = mpsc::unbounded_channel::<()>();
    let (deleted, deleted_seen) = watch::channel(false);
    let mut handles = Vec::new();
    for task in 0..TASKS {
        let store = Arc::clone(&s.store);
        let clock = Arc::clone(&s.clock);
        let landed = landed.clone();
        let deleted = deleted_seen.clone();
        let reference = if task % 2 == 0 {
            by_uuid(&chat)
        } else {
            by_sid(&chat)
        };
        handles.push(tokio::spawn(async move {
            let mut written = Vec::new();
            // Appends until the delete wins; the first append begun after
            // delete_session returned must fail, so this ends.
            for i in 0.. {
                let after_delete = *deleted.borrow();
                let d = draft_at(Role::User, &format!("{task}:{i}"), clock.now());
                let id = d.id;
                match store.append(&reference, d).await {
                    Ok(_) if after_delete => panic!(
                        "delete_session: 'once it returns ... an append ... fails with \
                         NotFound(Session)', yet an append begun after it returned succeeded"
                    ),
                    Ok(_) => {
                        written.push(id);
                        let _ = landed.send(());
                        // An in-memory append never suspends: let the deleting task run.
                        tokio::task::yield_now().await;
                    }
                    Err(StoreError::NotFound(Entity::Session)) => break,
                    Err(e) => panic!(
                        "an append racing delete_session 'either fails with \
                         NotFound(Session) or is deleted too', got {e:?}"
                    ),
                }
            }
            written
        }));
    }
    drop(landed);
    // Let some appends land first, then delete while the others keep going.
    for _ in 0..10 {
        landings
            .recv()
            .await
            .expect("appending tasks ended before ten appends landed");
    }
    s.store
        .delete_session(&by_uuid(&chat))
        .await
        .expect("delete_session of a live session");
    deleted.send_replace(true);
    // The appends that raced the delete are each task's last ones; a fast store
    // lands thousands before it, and checking every one would only cost time.
    const RACED: usize = 50;
    let mut written = 0;
    let mut raced = Vec::new();
    for h in handles {
        let ids = h.await.expect("appending task");
        written += ids.len();
        raced.extend(ids.iter().rev().take(RACED).copied());
    }
    assert!(written >= 10, "ten appends landed before the delete");
    assert_eq!(get(s, "race").await, None, "the session is deleted");
    assert_err!(
        s.store
            .list_messages(&by_uuid(&chat), &super::everything())
            .await,
        StoreError::NotFound(Entity::Session),
        "list_messages after delete_session"
    );
    for id in raced {
        let visible = s.store.message(id).await;
        assert!(
            matches!(visible, Ok(None)),
            "delete_session: 'once it returns, no message of the session is visible' — \
             message({id}) gave {visible:?}"
        );
        assert_message_gone(
            s,
            id,
            "delete_session: 'an append racing with the delete either fails with \
             NotFound(Session) or is deleted too' (no orphan stays stored)",
        )
        .await;
    }
}

/// Concurrent creates with one session_id: exactly one wins, the rest get
/// `Conflict(Session)`.
pub async fn concurrent_creates_with_one_session_id_have_one_winner(s: &TestStore) {
    let mut handles = Vec::new();
    for _ in 0..8 {
        let store = Arc::clone(&s.store);
        let candidate = new_session(s, "contested");
        handles.push(tokio::spawn(async move {
            store
                .create_session(&candidate)
                .await
                .map(|()| candidate.id)
        }));
    }
    let mut winners = Vec::new();
    for h in handles {
        match h.await.expect("creating task") {
            Ok(id) => winners.push(id),
            Err(StoreError::Conflict(Entity::Session)) => {}
            Err(e) => panic!(
                "a create losing the race for a session_id fails with Conflict(Session), got \
                 {e:?}"
            ),
        }
    }
    assert_eq!(
        winners.len(),
        1,
        "exactly one of concurrent creates with one session_id wins"
    );
    assert_eq!(
        get(s, "contested").await.map(|x| x.id),
        Some(winners[0]),
        "the session_id names the winner"
    );
}

/// Paging with `After` cursors (oldest first) while other tasks append reads every
/// message exactly once: no gap, no duplicate; paging back with `Before` cursors
/// (newest first) from a page read during the appends sees exactly the messages
/// written before it.
pub async fn cursor_paging_while_appending_has_no_gap_and_no_duplicate(s: &TestStore) {
    const TASKS: usize = 4;
    const EACH: usize = 40;
    let chat = create(s, "paged-live").await;
    let (progress, mut progressed) = watch::channel(0_usize);
    let progress = Arc::new(progress);
    let mut handles = Vec::new();
    for task in 0..TASKS {
        let store = Arc::clone(&s.store);
        let clock = Arc::clone(&s.clock);
        let progress = Arc::clone(&progress);
        let reference = by_uuid(&chat);
        handles.push(tokio::spawn(async move {
            for i in 0..EACH {
                let d = draft_at(Role::User, &format!("{task}:{i}"), clock.now());
                if let Err(e) = store.append(&reference, d).await {
                    panic!("append to a live session failed: {e:?}");
                }
                progress.send_modify(|n| *n += 1);
                // An in-memory append never suspends: let the reader interleave.
                tokio::task::yield_now().await;
            }
        }));
    }
    drop(progress);

    let reference = by_uuid(&chat);
    let mut read: Vec<ChatMessage> = Vec::new();
    let mut snapshot: Option<Uuid> = None;
    let mut writers_done = false;
    loop {
        let query = MessageQuery {
            cursor: read.last().map(|m| Cursor::After(m.id)),
            page: Page {
                limit: 7,
                offset: 0,
            },
            ..MessageQuery::default()
        };
        let page = list(s, &reference, &query).await;
        if page.is_empty() {
            if writers_done {
                break;
            }
            // Wait for more appends (or for every writer to finish): no polling.
            writers_done = progressed.changed().await.is_err();
            continue;
        }
        read.extend(page);
        if read.len() > TASKS * EACH {
            break; // duplicates: the assertion below says so
        }
        if snapshot.is_none() && read.len() >= 20 {
            let newest = list(s, &reference, &MessageQuery::newest(1)).await;
            snapshot = newest.first().map(|m| m.id);
        }
    }
    for h in handles {
        h.await.expect("appending task");
    }
    let all = list_all(s, &chat).await;
    assert_eq!(all.len(), TASKS * EACH, "every append landed");
    assert_eq!(
        message_ids(&read),
        message_ids(&all),
        "paging with After(last id of the previous page) while messages are appended must \
         read every message once, in write order: no gap, no duplicate"
    );

    let newest = snapshot.expect("a snapshot was taken after 20 messages");
    let upto = all
        .iter()
        .position(|m| m.id == newest)
        .expect("the snapshot's newest message is stored");
    let mut back: Vec<ChatMessage> = list(
        s,
        &reference,
        &MessageQuery {
            order: colloquy_core::Order::Desc,
            cursor: Some(Cursor::Before(newest)),
            page: Page {
                limit: 6,
                offset: 0,
            },
            ..MessageQuery::default()
        },
    )
    .await;
    while let Some(last) = back.last().map(|m| m.id) {
        let page = list(
            s,
            &reference,
            &MessageQuery {
                order: colloquy_core::Order::Desc,
                cursor: Some(Cursor::Before(last)),
                page: Page {
                    limit: 6,
                    offset: 0,
                },
                ..MessageQuery::default()
            },
        )
        .await;
        if page.is_empty() || back.len() > upto {
            break;
        }
        back.extend(page);
    }
    back.reverse();
    assert_eq!(
        message_ids(&back),
        message_ids(&all[..upto]),
        "paging newest first with Before(last id of the previous page) must read every \
         message written before the cursor once: no gap, no duplicate"
    );
}
