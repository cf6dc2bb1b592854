//! Feedback: `set_feedback(id, feedback)` stores `metadata.feedback` on a message,
//! the last one wins, and every reader sees it.

use chrono::Duration;
use colloquy_core::{ChatMessage, Entity, Feedback, Rating, Role, Session, StoreError};
use serde_json::json;
use uuid::Uuid;

use super::{
    append, assert_err, by_uuid, create, delete_message, draft, get_message, list_all, meta, now,
    set_active, update,
};
use crate::TestStore;

fn feedback(s: &TestStore, rating: Rating, comment: Option<&str>) -> Feedback {
    Feedback {
        rating,
        comment: comment.map(str::to_owned),
        at: now(s),
    }
}

/// `set_feedback`, which must succeed.
async fn give(s: &TestStore, id: Uuid, feedback: &Feedback) -> (ChatMessage, Session) {
    match s.store.set_feedback(id, feedback).await {
        Ok(stored) => stored,
        Err(e) => panic!("set_feedback({id}, {feedback:?}) failed: {e:?}"),
    }
}

/// `set_feedback` stores the feedback as `metadata.feedback`, keeps every other
/// field and metadata key, returns the message as stored with its session, and every
/// read shows it; a second feedback replaces the first (the last one wins); other
/// messages are untouched; an inactive session's message takes feedback too.
pub async fn feedback_is_stored_with_the_message_and_the_last_one_wins(s: &TestStore) {
    let chat = create(s, "rated").await;
    let question = append(s, &chat, Role::User, "what does it cost?").await;
    let mut d = draft(s, Role::Assistant, "Ten euros.");
    d.metadata = meta(json!({"model": "echo", "sources": [], "usage": {"prompt_tokens": 3}}));
    let (_, answer) = s
        .store
        .append(&by_uuid(&chat), d)
        .await
        .expect("append the answer");

    let up = feedback(s, Rating::Up, None);
    let (stored, session) = give(s, answer.id, &up).await;
    let mut expected = answer.clone();
    expected.metadata.insert(
        "feedback".into(),
        json!({"rating": "up", "comment": null, "at": colloquy_core::format_time(&up.at)}),
    );
    assert_eq!(
        (&stored, &session),
        (&expected, &chat),
        "set_feedback 'returns the message as stored with its session': metadata.feedback \
         added, nothing else changed"
    );
    assert_eq!(
        get_message(s, answer.id).await,
        Some((expected.clone(), chat.clone())),
        "set_feedback: 'every later read of the message (by id ...) shows it'"
    );

    s.clock.advance(Duration::seconds(5));
    let down = feedback(s, Rating::Down, Some("wrong <b>price</b> 💸"));
    let (stored, _) = give(s, answer.id, &down).await;
    assert_eq!(
        Feedback::of(&stored.metadata),
        Some(down.clone()),
        "set_feedback: 'replacing any earlier feedback (the last one wins)'"
    );
    let listed = list_all(s, &chat).await;
    assert_eq!(
        listed.len(),
        2,
        "both messages are still listed after feedback"
    );
    assert_eq!(
        listed[0], question,
        "set_feedback leaves other messages untouched"
    );
    assert_eq!(
        Feedback::of(&listed[1].metadata),
        Some(down),
        "set_feedback: 'every later read of the message (... in lists ...) shows it'"
    );
    assert_eq!(
        (
            listed[1].id,
            &listed[1].message,
            listed[1].timestamp,
            &listed[1].metadata["model"]
        ),
        (answer.id, &answer.message, answer.timestamp, &json!("echo")),
        "set_feedback: 'nothing else of the message changes'"
    );

    let turn = s
        .store
        .begin_turn(&by_uuid(&chat), draft(s, Role::User, "thanks"), 10)
        .await
        .expect("begin_turn");
    let seen = turn.recent.iter().find(|m| m.id == answer.id);
    assert_eq!(
        seen.and_then(|m| Feedback::of(&m.metadata))
            .map(|f| f.rating),
        Some(Rating::Down),
        "set_feedback: 'every later read of the message (... in a turn's context) shows it'"
    );

    update(s, &by_uuid(&chat), &set_active(false)).await;
    let (stored, session) = give(s, question.id, &feedback(s, Rating::Up, None)).await;
    assert!(
        !session.is_active && Feedback::of(&stored.metadata).is_some(),
        "set_feedback: 'The session's is_active does not matter'"
    );
}

/// `set_feedback` fails with `NotFound(Message)` for a missing message, a
/// soft-deleted one, and one whose session has expired or been deleted.
pub async fn feedback_on_a_missing_deleted_or_expired_message_is_not_found(s: &TestStore) {
    let rule = "set_feedback 'fails with NotFound(Message) when the message is missing or \
                soft-deleted, or its session is missing or expired'";
    let up = feedback(s, Rating::Up, None);
    assert_err!(
        s.store.set_feedback(Uuid::new_v4(), &up).await,
        StoreError::NotFound(Entity::Message),
        "{rule} (an id never appended)"
    );

    let chat = create(s, "gone").await;
    let hidden = append(s, &chat, Role::Assistant, "hidden").await;
    delete_message(s, hidden.id).await;
    assert_err!(
        s.store.set_feedback(hidden.id, &up).await,
        StoreError::NotFound(Entity::Message),
        "{rule} (soft-deleted)"
    );

    let doomed = create(s, "deleted").await;
    let orphan = append(s, &doomed, Role::Assistant, "orphan").await;
    s.store
        .delete_session(&by_uuid(&doomed))
        .await
        .expect("delete_session");
    assert_err!(
        s.store.set_feedback(orphan.id, &up).await,
        StoreError::NotFound(Entity::Message),
        "{rule} (session deleted)"
    );

    let old = create(s, "expiring").await;
    let late = append(s, &old, Role::Assistant, "late").await;
    s.clock.advance(Duration::hours(2));
    assert_err!(
        s.store.set_feedback(late.id, &up).await,
        StoreError::NotFound(Entity::Message),
        "{rule} (session expired)"
    );
}
