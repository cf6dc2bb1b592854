//! Cursors: `Before(id)` / `After(id)` relative to a message of the session in
//! write order, in either order, with offsets and filters.

use chrono::Duration;
use colloquy_core::{
    ChatMessage, Cursor, Entity, MessageFilter, MessageQuery, Order, Page, Role, StoreError,
};
use uuid::Uuid;

use super::{
    append, append_all, assert_err, both_refs, by_uuid, create, delete_message, list, texts,
};
use crate::TestStore;

fn query(order: Order, cursor: Cursor, limit: usize, offset: usize) -> MessageQuery {
    MessageQuery {
        order,
        cursor: Some(cursor),
        page: Page { limit, offset },
        ..MessageQuery::default()
    }
}

async fn ten(s: &TestStore, session_id: &str) -> (colloquy_core::Session, Vec<ChatMessage>) {
    let chat = create(s, session_id).await;
    let all = append_all(
        s,
        &chat,
        &["m0", "m1", "m2", "m3", "m4", "m5", "m6", "m7", "m8", "m9"],
    )
    .await;
    (chat, all)
}

/// `Before(id)` keeps the messages written before `id`, `After(id)` those written
/// after it, each in either order, by either reference; the cursor message itself
/// is never included; a cursor at either end gives an empty page.
pub async fn cursors_before_and_after_in_both_orders(s: &TestStore) {
    let (chat, all) = ten(s, "cursors").await;
    let cases: [(Cursor, Order, Vec<&str>); 8] = [
        (
            Cursor::After(all[3].id),
            Order::Asc,
            vec!["m4", "m5", "m6", "m7", "m8", "m9"],
        ),
        (
            Cursor::After(all[3].id),
            Order::Desc,
            vec!["m9", "m8", "m7", "m6", "m5", "m4"],
        ),
        (
            Cursor::Before(all[6].id),
            Order::Asc,
            vec!["m0", "m1", "m2", "m3", "m4", "m5"],
        ),
        (
            Cursor::Before(all[6].id),
            Order::Desc,
            vec!["m5", "m4", "m3", "m2", "m1", "m0"],
        ),
        (Cursor::After(all[9].id), Order::Asc, vec![]),
        (Cursor::After(all[9].id), Order::Desc, vec![]),
        (Cursor::Before(all[0].id), Order::Asc, vec![]),
        (Cursor::Before(all[0].id), Order::Desc, vec![]),
    ];
    for (how, reference) in both_refs(&chat) {
        for (cursor, order, expected) in &cases {
            let got = list(s, &reference, &query(*order, *cursor, 100, 0)).await;
            assert_eq!(
                texts(&got),
                *expected,
                "list_messages: 'a Before(id) cursor keeps those written before message id, an \
                 After(id) cursor those written after it'; results come in the requested order \
                 ({cursor:?} = {}, {order:?}, {how})",
                label(&all, cursor.message())
            );
        }
    }
    // The limit counts from the cursor, in the requested order.
    let got = list(
        s,
        &by_uuid(&chat),
        &query(Order::Desc, Cursor::Before(all[6].id), 2, 0),
    )
    .await;
    assert_eq!(
        texts(&got),
        ["m5", "m4"],
        "Before(m6) newest first with limit 2: the two messages right before the cursor"
    );
    let got = list(
        s,
        &by_uuid(&chat),
        &query(Order::Asc, Cursor::After(all[3].id), 2, 0),
    )
    .await;
    assert_eq!(
        texts(&got),
        ["m4", "m5"],
        "After(m3) oldest first with limit 2: the two messages right after the cursor"
    );
    let got = list(
        s,
        &by_uuid(&chat),
        &query(Order::Desc, Cursor::After(all[3].id), 2, 0),
    )
    .await;
    assert_eq!(
        texts(&got),
        ["m9", "m8"],
        "After(m3) newest first with limit 2: the two newest messages after the cursor"
    );
    let got = list(
        s,
        &by_uuid(&chat),
        &query(Order::Asc, Cursor::Before(all[6].id), 2, 0),
    )
    .await;
    assert_eq!(
        texts(&got),
        ["m0", "m1"],
        "Before(m6) oldest first with limit 2: the two oldest messages before the cursor"
    );
}

/// The offset applies after the cursor, in the requested order.
pub async fn cursor_offset_applies_after_the_cursor_in_order(s: &TestStore) {
    let (chat, all) = ten(s, "offsets").await;
    let cases: [(Cursor, Order, usize, usize, Vec<&str>); 6] = [
        (
            Cursor::After(all[3].id),
            Order::Asc,
            3,
            2,
            vec!["m6", "m7", "m8"],
        ),
        (
            Cursor::After(all[3].id),
            Order::Desc,
            3,
            2,
            vec!["m7", "m6", "m5"],
        ),
        (
            Cursor::Before(all[6].id),
            Order::Asc,
            2,
            1,
            vec!["m1", "m2"],
        ),
        (
            Cursor::Before(all[6].id),
            Order::Desc,
            2,
            1,
            vec!["m4", "m3"],
        ),
        (Cursor::Before(all[6].id), Order::Desc, 10, 5, vec!["m0"]),
        (Cursor::After(all[3].id), Order::Asc, 10, 6, vec![]),
    ];
    for (cursor, order, limit, offset, expected) in cases {
        let got = list(s, &by_uuid(&chat), &query(order, cursor, limit, offset)).await;
        assert_eq!(
            texts(&got),
            expected,
            "list_messages: 'offset applies after the cursor, in the requested order' \
             ({cursor:?} = {}, {order:?}, limit {limit}, offset {offset})",
            label(&all, cursor.message())
        );
    }
}

/// A soft-deleted cursor message still works as a cursor; deleted messages are
/// neither listed nor counted by the offset; filters apply after the cursor.
pub async fn soft_deleted_cursor_message_still_works(s: &TestStore) {
    let (chat, all) = ten(s, "deleted-cursor").await;
    delete_message(s, all[3].id).await;
    delete_message(s, all[5].id).await;
    let cases: [(Cursor, Order, usize, Vec<&str>); 5] = [
        (
            Cursor::After(all[3].id),
            Order::Asc,
            0,
            vec!["m4", "m6", "m7", "m8", "m9"],
        ),
        (
            Cursor::Before(all[3].id),
            Order::Desc,
            0,
            vec!["m2", "m1", "m0"],
        ),
        (
            Cursor::After(all[3].id),
            Order::Asc,
            1,
            vec!["m6", "m7", "m8", "m9"],
        ),
        (
            Cursor::Before(all[7].id),
            Order::Desc,
            1,
            vec!["m4", "m2", "m1", "m0"],
        ),
        (
            Cursor::After(all[5].id),
            Order::Desc,
            0,
            vec!["m9", "m8", "m7", "m6"],
        ),
    ];
    for (cursor, order, offset, expected) in cases {
        let got = list(s, &by_uuid(&chat), &query(order, cursor, 100, offset)).await;
        assert_eq!(
            texts(&got),
            expected,
            "list_messages: 'the cursor message may be soft-deleted'; deleted messages are \
             never listed ({cursor:?} = {}, {order:?}, offset {offset})",
            label(&all, cursor.message())
        );
    }

    let mixed = create(s, "filtered-cursor").await;
    let mut written = Vec::new();
    for (i, role) in [Role::User, Role::Assistant]
        .iter()
        .cycle()
        .take(8)
        .enumerate()
    {
        written.push(append(s, &mixed, *role, &format!("{}{i}", role.as_str())).await);
    }
    let filtered = MessageQuery {
        filter: MessageFilter {
            role: Some(Role::Assistant),
            search: None,
        },
        order: Order::Desc,
        cursor: Some(Cursor::Before(written[6].id)),
        page: Page {
            limit: 2,
            offset: 1,
        },
    };
    let got = list(s, &by_uuid(&mixed), &filtered).await;
    assert_eq!(
        texts(&got),
        ["assistant3", "assistant1"],
        "list_messages: the cursor, then the filter, then order, offset and limit \
         (Before(user6), role assistant, newest first, offset 1, limit 2)"
    );
}

/// A cursor naming no message of this session — unknown, or of another session —
/// fails with `NotFound(Message)`; an unknown session still fails with
/// `NotFound(Session)`.
pub async fn cursor_of_another_session_or_unknown_is_message_not_found(s: &TestStore) {
    let (chat, _) = ten(s, "mine").await;
    let other = create(s, "theirs").await;
    let foreign = append(s, &other, Role::User, "not yours").await;
    let expired = create(s, "expired-cursor").await;
    let stale = append(s, &expired, Role::User, "old").await;
    let shorten = colloquy_core::SessionPatch {
        expires_at: Some(super::now(s) + Duration::seconds(30)),
        ..colloquy_core::SessionPatch::default()
    };
    super::update(s, &by_uuid(&expired), &shorten).await;
    s.clock.advance(Duration::minutes(1));
    let cursors = [
        ("an unknown id", Uuid::new_v4()),
        ("a message of another session", foreign.id),
        ("a message of an expired session", stale.id),
    ];
    for (what, id) in cursors {
        for cursor in [Cursor::Before(id), Cursor::After(id)] {
            for order in [Order::Asc, Order::Desc] {
                assert_err!(
                    s.store
                        .list_messages(&by_uuid(&chat), &query(order, cursor, 10, 0))
                        .await,
                    StoreError::NotFound(Entity::Message),
                    "list_messages 'fails with NotFound(Message) when the cursor names no \
                     message of this session' ({cursor:?} is {what}, {order:?})"
                );
            }
        }
    }
}

fn label(all: &[ChatMessage], id: Uuid) -> String {
    all.iter()
        .find(|m| m.id == id)
        .map_or_else(|| id.to_string(), |m| m.message.clone())
}
