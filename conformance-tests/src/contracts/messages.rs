//! Messages: append, get, list (filters, paging, order), soft delete.

use chrono::Duration;
use colloquy_core::{
    Entity, MessageFilter, MessageQuery, Order, Page, Role, SessionRef, StoreError,
};
use serde_json::json;
use uuid::Uuid;

use super::{
    append, append_all, assert_err, assert_message_gone, assert_message_stored, both_refs, by_uuid,
    create, delete_message, draft, get_message, list, list_all, meta, new_session, set_active,
    texts, update,
};
use crate::TestStore;

/// `append` (by UUID and by session_id) returns the session and the message as
/// stored; `message(id)` returns the same message, field for field, with its session.
pub async fn append_then_get_round_trips(s: &TestStore) {
    let chat = create(s, "chat").await;
    for (how, reference) in both_refs(&chat) {
        let mut d = draft(
            s,
            Role::Assistant,
            "Grüße 👋\nline two \"quoted\" 'single' \\ %_",
        );
        d.metadata = meta(json!({
            "sources": [{"url": "https://example.com", "score": 0.93}],
            "finish_reason": "stop",
            "nested": {"empty": {}, "list": [], "null": null}
        }));
        let expected = d.clone().into_message(chat.id);
        let (session, stored) = s
            .store
            .append(&reference, d)
            .await
            .unwrap_or_else(|e| panic!("append {how} failed: {e:?}"));
        assert_eq!(
            session, chat,
            "append 'returns the session ... as stored' ({how})"
        );
        assert_eq!(
            stored, expected,
            "append 'returns ... the message as stored' ({how}): the draft in this session, \
             not deleted"
        );
        assert_eq!(
            get_message(s, expected.id).await,
            Some((expected.clone(), chat.clone())),
            "message(id) 'returns the message id with its session' after append {how}"
        );
    }
    assert_eq!(
        get_message(s, Uuid::new_v4()).await,
        None,
        "message(id) of an id never appended is Ok(None)"
    );
}

/// `message(id)` and `list_messages` return the session as it is stored now, after
/// an update too; `list_messages` takes either reference.
pub async fn reads_return_the_current_session(s: &TestStore) {
    let chat = create(s, "current").await;
    let patch = colloquy_core::SessionPatch {
        metadata: Some(meta(json!({"topic": "pricing"}))),
        external_user_id: Some(Some("u-1".into())),
        ..colloquy_core::SessionPatch::default()
    };
    let updated = update(s, &by_uuid(&chat), &patch).await;
    let (session, _) = s
        .store
        .append(&by_uuid(&chat), draft(s, Role::User, "after the update"))
        .await
        .expect("append after an update");
    assert_eq!(
        session, updated,
        "append returns 'the session ... as stored': as updated"
    );
    let t = s
        .store
        .begin_turn(&super::by_sid(&chat), draft(s, Role::User, "turn"), 1)
        .await
        .expect("begin_turn after an update");
    assert_eq!(
        t.session, updated,
        "begin_turn returns the session as stored: as updated"
    );
    let m = append(s, &chat, Role::User, "hi").await;
    assert_eq!(
        get_message(s, m.id).await,
        Some((m.clone(), updated.clone())),
        "message(id) returns the message with its session as stored now (after an update)"
    );
    for (how, reference) in both_refs(&chat) {
        let (session, page) = s
            .store
            .list_messages(&reference, &super::everything())
            .await
            .unwrap_or_else(|e| panic!("list_messages {how} failed: {e:?}"));
        assert_eq!(
            session, updated,
            "list_messages 'returns the session and the page' ({how}): the session as stored"
        );
        assert_eq!(
            texts(&page),
            ["after the update", "turn", "hi"],
            "list_messages {how}: the session's messages"
        );
    }
}

/// `append` to a missing or deleted session fails with `NotFound(Session)` and
/// writes nothing.
pub async fn append_to_missing_session_is_not_found(s: &TestStore) {
    let ghost = new_session(s, "never-created");
    let deleted = create(s, "deleted").await;
    s.store
        .delete_session(&by_uuid(&deleted))
        .await
        .expect("delete");
    for (what, session) in [("never created", &ghost), ("deleted", &deleted)] {
        for (how, reference) in both_refs(session) {
            let d = draft(s, Role::User, "hello?");
            let id = d.id;
            assert_err!(
                s.store.append(&reference, d).await,
                StoreError::NotFound(Entity::Session),
                "append to a {what} session {how}"
            );
            assert_message_gone(s, id, "append writes nothing when the session is missing").await;
        }
    }
}

/// `append` to an inactive session fails with `SessionInactive` and writes nothing;
/// reactivated, it takes messages again.
pub async fn append_to_inactive_session_is_rejected(s: &TestStore) {
    let chat = create(s, "closed").await;
    update(s, &by_uuid(&chat), &set_active(false)).await;
    for (how, reference) in both_refs(&chat) {
        let d = draft(s, Role::User, "anyone?");
        let id = d.id;
        assert_err!(
            s.store.append(&reference, d).await,
            StoreError::SessionInactive,
            "append fails with SessionInactive when the session's is_active is false ({how})"
        );
        assert!(
            list_all(s, &chat).await.is_empty(),
            "append writes nothing when the session is inactive"
        );
        assert_message_gone(s, id, "append writes nothing when the session is inactive").await;
    }
    update(s, &by_uuid(&chat), &set_active(true)).await;
    append(s, &chat, Role::User, "reopened").await;
    assert_eq!(
        texts(&list_all(s, &chat).await),
        ["reopened"],
        "a reactivated session takes messages"
    );
}

/// `append` of an id that exists fails with `Conflict(Message)` and changes nothing:
/// in the same session, in another session, and when the existing message is
/// soft-deleted (it stays stored).
pub async fn duplicate_message_id_conflicts(s: &TestStore) {
    let chat = create(s, "dup").await;
    let elsewhere = create(s, "elsewhere").await;
    let first = append(s, &chat, Role::User, "first").await;
    let hidden = append(s, &chat, Role::User, "hidden").await;
    delete_message(s, hidden.id).await;
    for (what, id) in [
        ("a live message", first.id),
        ("a soft-deleted message", hidden.id),
    ] {
        for (where_, target) in [("the same session", &chat), ("another session", &elsewhere)] {
            let mut again = draft(s, Role::Assistant, "second");
            again.id = id;
            assert_err!(
                s.store.append(&by_uuid(target), again).await,
                StoreError::Conflict(Entity::Message),
                "append fails with Conflict(Message) when a message with the draft's id \
                 exists ({what}, appended to {where_})"
            );
        }
    }
    assert_eq!(
        texts(&list_all(s, &chat).await),
        ["first"],
        "a conflicting append writes nothing"
    );
    assert!(
        list_all(s, &elsewhere).await.is_empty(),
        "a conflicting append writes nothing in the other session"
    );
    assert_eq!(
        get_message(s, first.id).await.map(|(m, _)| m),
        Some(first),
        "a conflicting append leaves the existing message as it was"
    );
}

/// Messages come back in write order, also when their timestamps are equal.
pub async fn messages_keep_write_order_with_equal_timestamps(s: &TestStore) {
    let chat = create(s, "order").await;
    let written: Vec<String> = (0..12).map(|i| format!("m{i:02}")).collect();
    let refs: Vec<&str> = written.iter().map(String::as_str).collect();
    // Ids are random (v4), so no store can get the order right by sorting on them.
    append_all(s, &chat, &refs).await;
    let listed = list_all(s, &chat).await;
    assert_eq!(
        texts(&listed),
        refs,
        "list_messages returns write order when timestamps are equal"
    );
    assert!(
        listed.iter().all(|m| m.timestamp == listed[0].timestamp),
        "the timestamps were equal as written: {listed:?}"
    );
}

/// A timestamp earlier than the previous message's is raised to it, so ordering by
/// `(timestamp, write order)` is the write order.
pub async fn earlier_timestamp_is_raised(s: &TestStore) {
    let chat = create(s, "skew").await;
    s.clock.advance(Duration::seconds(10));
    let first = append(s, &chat, Role::User, "first").await;
    let mut late = draft(s, Role::Assistant, "written second, stamped earlier");
    late.timestamp = first.timestamp - Duration::seconds(5);
    let (_, stored) = s
        .store
        .append(&by_uuid(&chat), late.clone())
        .await
        .expect("append");
    let rule = "append 'raises the timestamp to the previous message's when it is earlier'";
    assert_eq!(stored.timestamp, first.timestamp, "{rule}: as returned");
    assert_eq!(
        get_message(s, late.id).await.map(|(m, _)| m.timestamp),
        Some(first.timestamp),
        "{rule}: as stored"
    );
    assert_eq!(
        texts(&list_all(s, &chat).await),
        ["first", "written second, stamped earlier"],
        "{rule}: so the list is in write order"
    );
    let mut later = draft(s, Role::User, "stamped later");
    later.timestamp = first.timestamp + Duration::seconds(1);
    let (_, kept) = s
        .store
        .append(&by_uuid(&chat), later.clone())
        .await
        .expect("append");
    assert_eq!(
        kept.timestamp, later.timestamp,
        "a timestamp later than the previous message's is kept as given"
    );
}

/// `list_messages` filters follow `MessageFilter::matches`: role, case-insensitive
/// search, no wildcard characters.
pub async fn list_messages_filters(s: &TestStore) {
    let chat = create(s, "filters").await;
    append(s, &chat, Role::System, "You are a helpful Assistant").await;
    append(s, &chat, Role::User, "What does PRICING look like?").await;
    append(s, &chat, Role::Assistant, "Pricing starts at 10 EUR").await;
    append(s, &chat, Role::User, "thanks 100%").await;
    append(s, &chat, Role::Assistant, "Grüße aus KÖLN, v1.2").await;
    let hidden = append(s, &chat, Role::User, "pricing, deleted").await;
    delete_message(s, hidden.id).await;
    let filter = |role: Option<Role>, search: Option<&str>| MessageFilter {
        role,
        search: search.map(Into::into),
    };
    let cases: [(MessageFilter, Vec<&str>); 15] = [
        (
            filter(Some(Role::User), None),
            vec!["What does PRICING look like?", "thanks 100%"],
        ),
        (
            filter(Some(Role::System), None),
            vec!["You are a helpful Assistant"],
        ),
        (
            filter(None, Some("pricing")),
            vec!["What does PRICING look like?", "Pricing starts at 10 EUR"],
        ),
        (
            filter(Some(Role::Assistant), Some("PRICING")),
            vec!["Pricing starts at 10 EUR"],
        ),
        (filter(None, Some("0%")), vec!["thanks 100%"]),
        (filter(None, Some("_")), vec![]),
        (filter(None, Some("%")), vec!["thanks 100%"]),
        // Case-insensitive beyond ASCII, as str::to_lowercase.
        (filter(None, Some("köln")), vec!["Grüße aus KÖLN, v1.2"]),
        (filter(None, Some("GRÜSSE")), vec![]),
        (filter(None, Some("GRÜẞE")), vec!["Grüße aus KÖLN, v1.2"]),
        (filter(None, Some("grüße")), vec!["Grüße aus KÖLN, v1.2"]),
        // No pattern language: dots, brackets and backslashes are plain text.
        (filter(None, Some("1.2")), vec!["Grüße aus KÖLN, v1.2"]),
        (filter(None, Some("1.3")), vec![]),
        (filter(None, Some("[a-z]")), vec![]),
        (filter(None, Some("\\")), vec![]),
    ];
    for (f, expected) in cases {
        let query = MessageQuery {
            filter: f.clone(),
            page: super::big_page(),
            ..MessageQuery::default()
        };
        let got = list(s, &by_uuid(&chat), &query).await;
        assert_eq!(
            texts(&got),
            expected,
            "list_messages: 'filters follow MessageFilter::matches exactly' for {f:?} \
             (deleted messages never listed)"
        );
    }
}

/// `list_messages` pages with limit and offset over non-deleted messages, in
/// either order.
pub async fn list_messages_paging_in_both_orders(s: &TestStore) {
    let chat = create(s, "paging").await;
    let names: Vec<String> = (0..10).map(|i| format!("m{i}")).collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let all = append_all(s, &chat, &refs).await;
    delete_message(s, all[1].id).await;
    let asc = ["m0", "m2", "m3", "m4", "m5", "m6", "m7", "m8", "m9"];
    for order in [Order::Asc, Order::Desc] {
        let mut expected: Vec<&str> = asc.to_vec();
        if order == Order::Desc {
            expected.reverse();
        }
        for (limit, offset) in [(3, 2), (5, 7), (1, 0), (100, 0), (4, 9), (4, 50)] {
            let query = MessageQuery {
                order,
                page: Page { limit, offset },
                ..MessageQuery::default()
            };
            let got = list(s, &by_uuid(&chat), &query).await;
            let want: Vec<&str> = expected.iter().skip(offset).take(limit).copied().collect();
            assert_eq!(
                texts(&got),
                want,
                "list_messages takes messages in query.order ({order:?}), skipping \
                 page.offset ({offset}) and returning at most page.limit ({limit}); deleted \
                 messages do not count"
            );
        }
    }
}

/// `list_messages` of a missing session fails with `NotFound(Session)`.
pub async fn list_messages_of_missing_session_is_not_found(s: &TestStore) {
    create(s, "exists").await;
    for reference in [
        SessionRef::from_uuid(Uuid::new_v4()),
        SessionRef::parse("does-not-exist"),
    ] {
        assert_err!(
            s.store
                .list_messages(&reference, &super::everything())
                .await,
            StoreError::NotFound(Entity::Session),
            "list_messages of a missing session {:?}",
            reference.as_str()
        );
    }
}

/// `delete_message` hides a message from `message` and `list_messages`; it stays
/// stored (its id stays taken); a second delete, or an unknown id, fails with
/// `NotFound(Message)`.
pub async fn soft_delete_hides_but_keeps_the_row(s: &TestStore) {
    let chat = create(s, "soft").await;
    let keep = append(s, &chat, Role::User, "keep").await;
    let hide = append(s, &chat, Role::Assistant, "hide").await;
    s.store
        .delete_message(hide.id)
        .await
        .expect("delete_message of a live message");

    assert_eq!(
        get_message(s, hide.id).await,
        None,
        "delete_message: 'no reader sees it' — message(id) is Ok(None)"
    );
    assert_eq!(
        texts(&list_all(s, &chat).await),
        ["keep"],
        "delete_message: 'no reader sees it' — not listed"
    );
    assert_err!(
        s.store.delete_message(hide.id).await,
        StoreError::NotFound(Entity::Message),
        "delete_message fails with NotFound(Message) when the message is already soft-deleted"
    );
    assert_err!(
        s.store.delete_message(Uuid::new_v4()).await,
        StoreError::NotFound(Entity::Message),
        "delete_message fails with NotFound(Message) when the message is missing"
    );
    assert_eq!(
        get_message(s, keep.id).await,
        Some((keep.clone(), chat.clone())),
        "delete_message leaves the other messages alone"
    );
    assert_message_stored(
        s,
        hide.id,
        "delete_message: the message 'stays stored but no reader sees it'",
    )
    .await;
}

/// A message belongs to its session by UUID only: once that session is expired,
/// `message` and `delete_message` fail even though another live session has the
/// expired session's UUID as its session_id, and that session does not see it.
pub async fn message_reads_follow_the_session_uuid_never_a_look_alike(s: &TestStore) {
    let owner = create(s, "owner").await;
    let m = append(s, &owner, Role::User, "owned").await;
    let look_alike = create(s, &owner.id.to_string()).await;
    let shorten = colloquy_core::SessionPatch {
        expires_at: Some(super::now(s) + Duration::seconds(30)),
        ..colloquy_core::SessionPatch::default()
    };
    update(s, &by_uuid(&owner), &shorten).await;
    s.clock.advance(Duration::minutes(1));

    let rule = "message(id) 'returns Ok(None) when ... its session is missing or expired': \
                the message's session is the one with its UUID, never one whose session_id \
                is that UUID's text";
    assert_eq!(get_message(s, m.id).await, None, "{rule}");
    assert_err!(
        s.store.delete_message(m.id).await,
        StoreError::NotFound(Entity::Message),
        "delete_message 'fails with NotFound(Message) when ... its session is missing or \
         expired' (a session with a look-alike session_id does not own it)"
    );
    let (session, page) = s
        .store
        .list_messages(
            &SessionRef::parse(&owner.id.to_string()),
            &super::everything(),
        )
        .await
        .expect("list_messages of the look-alike session");
    assert_eq!(
        (session.id, page),
        (look_alike.id, vec![]),
        "the owner's UUID text now names the look-alike session (by session_id), which \
         holds no message"
    );
    assert_err!(
        s.store
            .list_messages(
                &by_uuid(&look_alike),
                &MessageQuery {
                    cursor: Some(colloquy_core::Cursor::After(m.id)),
                    ..MessageQuery::default()
                },
            )
            .await,
        StoreError::NotFound(Entity::Message),
        "a cursor naming a message of another (expired) session fails with NotFound(Message)"
    );
}

/// Errors name their entity: `NotFound(Session)` when the session reference
/// matches nothing, `NotFound(Message)` when the message (or cursor) does,
/// `Conflict(Session)` for a taken session_id or UUID, `Conflict(Message)` for a
/// taken message id, `SessionInactive` for an append to an inactive session.
pub async fn errors_name_their_entity(s: &TestStore) {
    let chat = create(s, "entities").await;
    let m = append(s, &chat, Role::User, "hi").await;
    let missing = SessionRef::parse("missing");
    assert_err!(
        s.store.list_messages(&missing, &super::everything()).await,
        StoreError::NotFound(Entity::Session),
        "list_messages of a missing session names the session"
    );
    assert_err!(
        s.store
            .list_messages(
                &by_uuid(&chat),
                &MessageQuery {
                    cursor: Some(colloquy_core::Cursor::Before(Uuid::new_v4())),
                    ..MessageQuery::default()
                }
            )
            .await,
        StoreError::NotFound(Entity::Message),
        "list_messages with an unknown cursor names the message"
    );
    assert_err!(
        s.store.delete_message(Uuid::new_v4()).await,
        StoreError::NotFound(Entity::Message),
        "delete_message of an unknown id names the message"
    );
    let mut taken = new_session(s, "entities");
    assert_err!(
        s.store.create_session(&taken).await,
        StoreError::Conflict(Entity::Session),
        "create_session with a taken session_id names the session"
    );
    taken.session_id = "free".into();
    taken.id = chat.id;
    assert_err!(
        s.store.create_session(&taken).await,
        StoreError::Conflict(Entity::Session),
        "create_session with a taken UUID names the session"
    );
    let mut again = draft(s, Role::User, "again");
    again.id = m.id;
    assert_err!(
        s.store.append(&by_uuid(&chat), again).await,
        StoreError::Conflict(Entity::Message),
        "append with a taken message id names the message"
    );
    update(s, &by_uuid(&chat), &set_active(false)).await;
    assert_err!(
        s.store
            .append(&by_uuid(&chat), draft(s, Role::User, "closed"))
            .await,
        StoreError::SessionInactive,
        "append to an inactive session is SessionInactive"
    );
    s.store
        .delete_session(&by_uuid(&chat))
        .await
        .expect("delete_session");
    assert_err!(
        s.store.delete_message(m.id).await,
        StoreError::NotFound(Entity::Message),
        "delete_message of a message whose session was deleted names the message"
    );
    assert_err!(
        s.store
            .append(&by_uuid(&chat), draft(s, Role::User, "gone"))
            .await,
        StoreError::NotFound(Entity::Session),
        "append to a deleted session names the session"
    );
}
