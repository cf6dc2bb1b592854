//! `begin_turn`: chat's first step, an append that returns the model's context.

use chrono::Duration;
use colloquy_core::ports::Turn;
use colloquy_core::{ChatMessage, Entity, MessageDraft, Role, SessionRef, StoreError};

use super::{
    append, assert_err, assert_message_gone, assert_message_stored, both_refs, by_uuid, create,
    delete_message, draft, get_message, list_all, new_session, set_active, texts, update,
};
use crate::TestStore;

#[track_caller]
fn turn<'a>(
    s: &'a TestStore,
    to: &'a SessionRef,
    d: MessageDraft,
    window: usize,
) -> impl std::future::Future<Output = Turn> + 'a {
    let at = std::panic::Location::caller();
    async move {
        let text = d.message.clone();
        match s.store.begin_turn(to, d, window).await {
            Ok(turn) => turn,
            Err(e) => panic!(
                "{at}: begin_turn({:?}, {text:?}, window {window}) on a live, active session \
                 failed: {e:?}",
                to.as_str()
            ),
        }
    }
}

/// `begin_turn` (by UUID and by session_id) stores the message as `append` does
/// (timestamp raised to the previous message's) and returns the session and the
/// message as stored.
pub async fn begin_turn_stores_the_message_and_returns_the_session(s: &TestStore) {
    let chat = create(s, "turns").await;
    s.clock.advance(Duration::seconds(10));
    let first = append(s, &chat, Role::User, "first").await;
    for (how, reference) in both_refs(&chat) {
        let mut d = draft(s, Role::User, &format!("hello {how}"));
        d.timestamp = first.timestamp - Duration::seconds(5);
        let mut expected = d.clone().into_message(chat.id);
        expected.timestamp = first.timestamp;
        let t = turn(s, &reference, d, 10).await;
        assert_eq!(
            t.session, chat,
            "begin_turn returns Turn.session, 'the session, as stored when the message was \
             appended' ({how})"
        );
        assert_eq!(
            t.message, expected,
            "begin_turn 'appends the user's message as append does' and returns it as stored \
             (timestamp raised to the previous message's) ({how})"
        );
        assert_eq!(
            get_message(s, expected.id).await,
            Some((expected.clone(), chat.clone())),
            "the message begin_turn appended is stored ({how})"
        );
        assert_eq!(
            list_all(s, &chat).await.last(),
            Some(&expected),
            "the message begin_turn appended is the session's newest ({how})"
        );
    }
}

/// `Turn.system` holds the oldest `window` non-deleted system messages in write
/// order; `Turn.recent` the newest `window` non-deleted messages of any role,
/// oldest first, ending with the new message.
pub async fn begin_turn_returns_the_context_windows(s: &TestStore) {
    let chat = create(s, "context").await;
    // Everything written, in write order, with whether it is deleted.
    let mut written: Vec<(ChatMessage, bool)> = Vec::new();
    let script = [
        (Role::System, "sys0", false),
        (Role::User, "u1", false),
        (Role::System, "sys2", false),
        (Role::Assistant, "a3", false),
        (Role::System, "sys4", true),
        (Role::User, "u5", false),
        (Role::System, "sys6", false),
        (Role::Assistant, "a7", false),
        (Role::User, "u8", true),
    ];
    for (role, text, deleted) in script {
        let m = append(s, &chat, role, text).await;
        if deleted {
            delete_message(s, m.id).await;
        }
        written.push((m, deleted));
    }
    let cases = [
        (Role::User, 3),
        (Role::User, 1),
        (Role::Assistant, 2),
        (Role::System, 100),
        (Role::User, 4),
        (Role::System, 2),
        (Role::User, 100),
    ];
    for (step, (role, window)) in cases.into_iter().enumerate() {
        let t = turn(
            s,
            &by_uuid(&chat),
            draft(s, role, &format!("turn{step}")),
            window,
        )
        .await;
        written.push((t.message.clone(), false));
        let live: Vec<&ChatMessage> = written.iter().filter(|(_, d)| !d).map(|(m, _)| m).collect();
        let system: Vec<&str> = live
            .iter()
            .filter(|m| m.role == Role::System)
            .take(window)
            .map(|m| m.message.as_str())
            .collect();
        let recent: Vec<&str> = live[live.len().saturating_sub(window)..]
            .iter()
            .map(|m| m.message.as_str())
            .collect();
        assert_eq!(
            texts(&t.system),
            system,
            "Turn.system: 'the session's oldest window non-deleted system messages, in write \
             order' (turn{step}, {role:?}, window {window})"
        );
        assert_eq!(
            texts(&t.recent),
            recent,
            "Turn.recent: 'the session's newest window non-deleted messages of any role, \
             oldest first; the last one is message' (turn{step}, window {window})"
        );
        assert_eq!(
            t.recent.last(),
            Some(&t.message),
            "Turn.recent: 'the last one is message' (turn{step})"
        );
        let stored: Vec<(ChatMessage, colloquy_core::Session)> = {
            let mut out = Vec::new();
            for m in t.system.iter().chain(&t.recent) {
                if let Some(found) = get_message(s, m.id).await {
                    out.push(found);
                }
            }
            out
        };
        assert_eq!(
            stored.iter().map(|(m, _)| m.clone()).collect::<Vec<_>>(),
            t.system
                .iter()
                .chain(&t.recent)
                .cloned()
                .collect::<Vec<_>>(),
            "Turn.system and Turn.recent hold the messages as stored (turn{step})"
        );
    }
}

/// `begin_turn` fails like `append`: `NotFound(Session)` for a missing, deleted or
/// expired session, `SessionInactive` for an inactive one, `Conflict(Message)` for
/// a message id that exists; it writes nothing then.
pub async fn begin_turn_fails_like_append(s: &TestStore) {
    let ghost = new_session(s, "never-created");
    let deleted = create(s, "deleted").await;
    s.store
        .delete_session(&by_uuid(&deleted))
        .await
        .expect("delete");
    let closed = create(s, "closed").await;
    append(s, &closed, Role::User, "before closing").await;
    update(s, &by_uuid(&closed), &set_active(false)).await;
    let open = create(s, "open").await;
    let existing = append(s, &open, Role::User, "existing").await;
    let hidden = append(s, &open, Role::User, "hidden").await;
    delete_message(s, hidden.id).await;

    for (what, session) in [("never created", &ghost), ("deleted", &deleted)] {
        for (how, reference) in both_refs(session) {
            let d = draft(s, Role::User, "hello?");
            let id = d.id;
            assert_err!(
                s.store.begin_turn(&reference, d, 5).await,
                StoreError::NotFound(Entity::Session),
                "begin_turn fails like append: a {what} session {how}"
            );
            assert_message_gone(s, id, "begin_turn writes nothing when it fails").await;
        }
    }
    for (how, reference) in both_refs(&closed) {
        let d = draft(s, Role::User, "anyone?");
        let id = d.id;
        assert_err!(
            s.store.begin_turn(&reference, d, 5).await,
            StoreError::SessionInactive,
            "begin_turn fails like append: SessionInactive when is_active is false ({how})"
        );
        assert_message_gone(s, id, "begin_turn writes nothing when it fails").await;
    }
    assert_eq!(
        texts(&list_all(s, &closed).await),
        ["before closing"],
        "begin_turn writes nothing to an inactive session"
    );
    for (what, id) in [
        ("a live message", existing.id),
        ("a soft-deleted message", hidden.id),
    ] {
        let mut d = draft(s, Role::User, "again");
        d.id = id;
        assert_err!(
            s.store.begin_turn(&by_uuid(&open), d, 5).await,
            StoreError::Conflict(Entity::Message),
            "begin_turn fails like append: Conflict(Message) when {what} has the draft's id"
        );
    }
    assert_eq!(
        texts(&list_all(s, &open).await),
        ["existing"],
        "begin_turn writes nothing when the message id conflicts"
    );
    assert_message_stored(
        s,
        hidden.id,
        "a conflicting begin_turn leaves the message stored",
    )
    .await;

    s.clock.advance(Duration::hours(2));
    for (how, reference) in both_refs(&open) {
        let d = draft(s, Role::User, "too late");
        let id = d.id;
        assert_err!(
            s.store.begin_turn(&reference, d, 5).await,
            StoreError::NotFound(Entity::Session),
            "begin_turn fails like append: an expired session {how}"
        );
        assert_message_gone(s, id, "begin_turn writes nothing when it fails").await;
    }
}
