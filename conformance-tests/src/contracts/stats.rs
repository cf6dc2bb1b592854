//! Stats: the counters `hourly_stats` returns are kept per hour as sessions,
//! messages and feedback are stored (see `colloquy_core::stats`).

use chrono::{DateTime, Duration, Utc};
use colloquy_core::stats::{self, HourStats, StatCounts, MAX_QUESTIONS_PER_HOUR};
use colloquy_core::{ChatMessage, Feedback, Metadata, Rating, Role, Session, StoreError};
use serde_json::json;

use super::{by_uuid, create_as, draft_at, meta, new_session, now, set_active, update};
use crate::TestStore;

/// `hourly_stats(from, to)`, which must succeed; questions as their keys, sorted.
async fn hours(s: &TestStore, from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<HourStats> {
    match s.store.hourly_stats(from, to).await {
        Ok(mut found) => {
            for h in &mut found {
                for q in &mut h.questions {
                    q.0 = stats::question_key(&q.0);
                }
                h.questions.sort();
            }
            found
        }
        Err(e) => panic!("hourly_stats({from}, {to}) failed: {e:?}"),
    }
}

async fn session_at(s: &TestStore, session_id: &str, at: DateTime<Utc>) -> Session {
    let mut session = new_session(s, session_id);
    session.created_at = at;
    session.expires_at = at + Duration::days(2);
    create_as(s, &session).await;
    session
}

async fn write(
    s: &TestStore,
    session: &Session,
    role: Role,
    text: &str,
    metadata: Metadata,
    at: DateTime<Utc>,
) -> ChatMessage {
    let mut d = draft_at(role, text, at);
    d.metadata = metadata;
    match s.store.append(&by_uuid(session), d).await {
        Ok((_, m)) => m,
        Err(e) => panic!("setup step append({text:?}) failed: {e:?}"),
    }
}

fn ungrounded_answer(question: &ChatMessage, prompt: u64, completion: u64) -> Metadata {
    meta(json!({
        "in_reply_to": question.id.to_string(),
        "sources": [],
        "usage": {"prompt_tokens": prompt, "completion_tokens": completion, "model": "m"}
    }))
}

/// Sessions, visitor messages, answers (with tokens, grounding and the question),
/// feedback (a replaced one taken back from its hour) and added counts land in the
/// hour each happened in; `hourly_stats` returns the hours from the one `from` is in
/// up to `to`, oldest first; a failed write counts nothing.
pub async fn stats_count_what_happened_in_each_hour(s: &TestStore) {
    let rule = "hourly_stats: 'the counters are kept as things happen, in the same store \
                call that stores the event'";
    let h0 = stats::hour_of(now(s));
    let h1 = h0 + Duration::hours(1);
    let min = Duration::minutes;

    let a = session_at(s, "stats-a", h0 + min(1)).await;
    let q = write(
        s,
        &a,
        Role::User,
        "How much  is it?",
        Metadata::new(),
        h0 + min(2),
    )
    .await;
    let answer = write(
        s,
        &a,
        Role::Assistant,
        "I do not know.",
        ungrounded_answer(&q, 10, 4),
        h0 + min(3),
    )
    .await;
    write(
        s,
        &a,
        Role::System,
        "be brief",
        Metadata::new(),
        h0 + min(3),
    )
    .await;
    let up = Feedback {
        rating: Rating::Up,
        comment: None,
        at: h0 + min(5),
    };
    s.store
        .set_feedback(answer.id, &up)
        .await
        .expect("set_feedback up");

    let b = session_at(s, "stats-b", h1 + min(1)).await;
    let turn = s
        .store
        .begin_turn(
            &by_uuid(&b),
            draft_at(Role::User, "parking?", h1 + min(2)),
            4,
        )
        .await
        .expect("begin_turn");
    write(
        s,
        &b,
        Role::Assistant,
        "Behind the shop.",
        meta(json!({
            "in_reply_to": turn.message.id.to_string(),
            "sources": [{"id": "doc"}],
            "usage": {"prompt_tokens": 5, "completion_tokens": 2}
        })),
        h1 + min(3),
    )
    .await;
    let down = Feedback {
        rating: Rating::Down,
        comment: Some("no".into()),
        at: h1 + min(5),
    };
    s.store
        .set_feedback(answer.id, &down)
        .await
        .expect("set_feedback down");
    let handoff = StatCounts {
        handoffs: 1,
        ..StatCounts::default()
    };
    s.store
        .add_stats(h1 + min(10), &handoff)
        .await
        .expect("add_stats");

    // Failed writes count nothing.
    update(s, &by_uuid(&b), &set_active(false)).await;
    let refused = s
        .store
        .append(&by_uuid(&b), draft_at(Role::User, "late", h1 + min(20)))
        .await;
    assert!(
        matches!(refused, Err(StoreError::SessionInactive)),
        "append to an inactive session: {refused:?}"
    );
    let again = s.store.create_session(&a).await;
    assert!(again.is_err(), "a duplicate create fails: {again:?}");

    let expected_h0 = StatCounts {
        sessions: 1,
        visitor_messages: 1,
        answers: 1,
        tokens_in: 10,
        tokens_out: 4,
        ungrounded: 1,
        ..StatCounts::default()
    };
    let expected_h1 = StatCounts {
        sessions: 1,
        visitor_messages: 1,
        answers: 1,
        tokens_in: 5,
        tokens_out: 2,
        feedback_down: 1,
        handoffs: 1,
        ..StatCounts::default()
    };
    let found = hours(s, h0, h1 + Duration::hours(1)).await;
    let counts: Vec<(DateTime<Utc>, StatCounts)> =
        found.iter().map(|h| (h.hour, h.counts)).collect();
    assert_eq!(
        counts,
        [(h0, expected_h0), (h1, expected_h1)],
        "{rule}: each event in its own hour (the replaced thumbs up taken back from hour \
         {h0}, the thumbs down in hour {h1}; failed writes count nothing)"
    );
    assert_eq!(
        found[0].questions,
        [("how much is it".to_owned(), 1)],
        "{rule}: the ungrounded answer's question is listed in its hour"
    );
    assert!(
        found[1].questions.is_empty(),
        "a grounded answer lists no question: {:?}",
        found[1].questions
    );

    let only_h1: Vec<DateTime<Utc>> = hours(s, h1, h1 + Duration::hours(5))
        .await
        .iter()
        .map(|h| h.hour)
        .collect();
    assert_eq!(
        only_h1,
        [h1],
        "hourly_stats leaves out hours before `from`'s"
    );
    let only_h0: Vec<DateTime<Utc>> = hours(s, h0 + min(30), h1)
        .await
        .iter()
        .map(|h| h.hour)
        .collect();
    assert_eq!(
        only_h0,
        [h0],
        "hourly_stats covers 'the one `from` is in up to `to` (exclusive)'"
    );
}

/// An hour lists at most `MAX_QUESTIONS_PER_HOUR` distinct ungrounded questions;
/// a question already listed is still counted once the list is full, and every
/// ungrounded answer is counted in `ungrounded`.
pub async fn stats_keep_a_bounded_list_of_questions_per_hour(s: &TestStore) {
    let h0 = stats::hour_of(now(s));
    let at = h0 + Duration::minutes(1);
    let chat = session_at(s, "stats-many", at).await;
    let distinct = MAX_QUESTIONS_PER_HOUR + 3;
    let mut first = None;
    for i in 0..distinct {
        let q = write(
            s,
            &chat,
            Role::User,
            &format!("question {i}?"),
            Metadata::new(),
            at,
        )
        .await;
        write(
            s,
            &chat,
            Role::Assistant,
            "?",
            ungrounded_answer(&q, 0, 0),
            at,
        )
        .await;
        first.get_or_insert(q);
    }
    let first = first.expect("at least one question");
    write(
        s,
        &chat,
        Role::Assistant,
        "?",
        ungrounded_answer(&first, 0, 0),
        at,
    )
    .await;

    let found = hours(s, h0, h0 + Duration::hours(1)).await;
    assert_eq!(found.len(), 1, "one hour: {found:?}");
    let hour = &found[0];
    assert_eq!(
        hour.counts.ungrounded,
        i64::try_from(distinct + 1).unwrap_or(i64::MAX),
        "every ungrounded answer is counted"
    );
    assert_eq!(
        hour.questions.len(),
        MAX_QUESTIONS_PER_HOUR,
        "an hour lists at most MAX_QUESTIONS_PER_HOUR distinct questions"
    );
    assert!(
        hour.questions.contains(&("question 0".to_owned(), 2)),
        "a listed question is still counted when the list is full: {:?}",
        hour.questions.iter().find(|q| q.0 == "question 0")
    );
}
