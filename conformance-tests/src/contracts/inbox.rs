//! The inbox: `inbox(query)` lists live sessions by latest activity first, each row
//! equal to what `inbox::entry_of` computes from the session and its messages, kept
//! as things happen (appends, deletes, feedback, patches).

use chrono::{DateTime, Duration, Utc};
use colloquy_core::inbox::{
    InboxCursor, InboxEntry, InboxFilter, InboxQuery, InboxState, LastMessage, PREVIEW_CHARS,
};
use colloquy_core::{ChatMessage, Feedback, Rating, Responder, Role, Session, SessionPatch};
use uuid::Uuid;

use super::{
    append, by_uuid, create, create_as, delete_message, draft, get, new_session, now, update,
};
use crate::TestStore;

/// `inbox(query)`, which must succeed.
async fn inbox(s: &TestStore, query: &InboxQuery) -> Vec<InboxEntry> {
    match s.store.inbox(query).await {
        Ok(rows) => rows,
        Err(e) => panic!("inbox({query:?}) failed: {e:?}"),
    }
}

/// Every row passing `filter`, in one page.
async fn all(s: &TestStore, filter: InboxFilter) -> Vec<InboxEntry> {
    inbox(
        s,
        &InboxQuery {
            filter,
            after: None,
            limit: 200,
        },
    )
    .await
}

fn ids(rows: &[InboxEntry]) -> Vec<Uuid> {
    rows.iter().map(|r| r.session.id).collect()
}

/// The row of `session` in `rows`.
fn row<'a>(rows: &'a [InboxEntry], session: &Session) -> &'a InboxEntry {
    rows.iter()
        .find(|r| r.session.id == session.id)
        .unwrap_or_else(|| panic!("inbox lists session {:?}", session.session_id))
}

fn last(m: &ChatMessage) -> Option<LastMessage> {
    Some(LastMessage {
        role: m.role,
        text: colloquy_core::inbox::preview(&m.message),
        created_at: m.timestamp,
    })
}

async fn feedback(s: &TestStore, id: Uuid, rating: Rating) {
    let f = Feedback {
        rating,
        comment: None,
        at: now(s),
    };
    if let Err(e) = s.store.set_feedback(id, &f).await {
        panic!("set_feedback({id}) failed: {e:?}");
    }
}

/// `inbox` lists the live sessions latest `last_activity_at` first (equal: greater
/// id first), each with its first question, last message, count, activity, state
/// and rating as `entry_of` computes them; pages continue after a cursor; expired
/// sessions are not listed.
pub async fn inbox_lists_live_sessions_by_latest_activity(s: &TestStore) {
    let rule = "inbox 'latest last_activity_at first (equal times: greater session id first)'";
    let quiet = create(s, "quiet").await;
    s.clock.advance(Duration::seconds(1));
    let talk = create(s, "talk").await;
    let q = append(s, &talk, Role::User, "Where is my order?").await;
    s.clock.advance(Duration::seconds(1));
    let a = append(s, &talk, Role::Assistant, "It left yesterday.").await;
    s.clock.advance(Duration::seconds(1));
    let long = create(s, "long").await;
    let text = "é".repeat(PREVIEW_CHARS + 50);
    let turn = s
        .store
        .begin_turn(&by_uuid(&long), draft(s, Role::User, &text), 4)
        .await
        .expect("begin_turn");
    // Two sessions created at one instant, no messages: greater id first.
    s.clock.advance(Duration::seconds(1));
    let mut twin_a = new_session(s, "twin-a");
    let mut twin_b = new_session(s, "twin-b");
    (twin_a.id, twin_b.id) = (Uuid::from_u128(1 << 100), Uuid::from_u128(2 << 100));
    create_as(s, &twin_a).await;
    create_as(s, &twin_b).await;
    // A session that expires: never listed.
    let mut gone = new_session(s, "gone");
    gone.expires_at = now(s) + Duration::seconds(5);
    create_as(s, &gone).await;
    append(s, &gone, Role::User, "soon gone").await;
    s.clock.advance(Duration::seconds(6));
    // Activity moves `talk` to the top.
    let q2 = append(s, &talk, Role::User, "Thanks!").await;

    let rows = all(s, InboxFilter::default()).await;
    assert_eq!(
        ids(&rows),
        vec![talk.id, twin_b.id, twin_a.id, long.id, quiet.id],
        "{rule}; an expired session is not listed"
    );
    let t = row(&rows, &talk);
    assert_eq!(
        t.session,
        get(s, "talk").await.expect("talk"),
        "inbox rows hold the session"
    );
    assert_eq!(
        t.first_question.as_deref(),
        Some(q.message.as_str()),
        "first_question"
    );
    assert_eq!(t.last_message, last(&q2), "last_message");
    assert_eq!(t.message_count, 3, "message_count");
    assert_eq!(
        t.last_activity_at, q2.timestamp,
        "last_activity_at: the newest message"
    );
    assert_eq!((t.state, t.rated_down), (InboxState::Active, false));
    let _ = a;
    let l = row(&rows, &long);
    assert_eq!(
        l.first_question.as_ref().map(|f| f.chars().count()),
        Some(PREVIEW_CHARS),
        "texts are cut to {PREVIEW_CHARS} characters"
    );
    assert_eq!(
        l.last_message,
        last(&turn.message),
        "begin_turn counts like append"
    );
    assert_eq!(l.message_count, 1);
    let qt = row(&rows, &quiet);
    assert_eq!(
        (&qt.first_question, &qt.last_message, qt.message_count),
        (&None, &None, 0),
        "a session without messages"
    );
    assert_eq!(
        qt.last_activity_at, quiet.created_at,
        "no message: created_at"
    );

    // Paging: one at a time after each cursor gives the same order.
    let mut paged = Vec::new();
    let mut after = None;
    for _ in 0..10 {
        let page = inbox(
            s,
            &InboxQuery {
                filter: InboxFilter::default(),
                after,
                limit: 2,
            },
        )
        .await;
        assert!(page.len() <= 2, "inbox returns at most query.limit rows");
        let Some(tail) = page.last() else { break };
        after = Some(InboxCursor::after(tail));
        paged.extend(page);
    }
    assert_eq!(
        ids(&paged),
        ids(&rows),
        "inbox pages continue after the cursor"
    );
}

/// What a row shows is kept as things happen: a soft-deleted message leaves the
/// count and the previews (not the last activity), feedback rates the session
/// down and up, a patch moves its state; the filters select by each.
pub async fn inbox_rows_follow_deletes_feedback_and_patches(s: &TestStore) {
    let mut x = new_session(s, "x");
    x.external_user_id = Some("visitor-1".into());
    create_as(s, &x).await;
    let q1 = append(s, &x, Role::User, "first question").await;
    s.clock.advance(Duration::seconds(1));
    let a1 = append(s, &x, Role::Assistant, "an answer").await;
    s.clock.advance(Duration::seconds(1));
    let q2 = append(s, &x, Role::User, "second question").await;
    s.clock.advance(Duration::seconds(1));
    let other = create(s, "other").await;
    let a2 = append(s, &other, Role::Assistant, "hello").await;

    let of_x = |rows: Vec<InboxEntry>| row(&rows, &x).clone();
    delete_message(s, q1.id).await;
    let r = of_x(all(s, InboxFilter::default()).await);
    assert_eq!(
        (r.first_question.as_deref(), r.message_count),
        (Some("second question"), 2),
        "a soft-deleted first question leaves the row"
    );
    delete_message(s, q2.id).await;
    let r = of_x(all(s, InboxFilter::default()).await);
    assert_eq!(
        (r.last_message, r.message_count),
        (last(&a1), 1),
        "a deleted last message"
    );
    assert_eq!(r.first_question, None, "no visitor message left");
    assert_eq!(
        r.last_activity_at, q2.timestamp,
        "deleting does not move last activity"
    );

    let down = |rows: &[InboxEntry]| ids(rows);
    let rated = InboxFilter {
        rated_down: true,
        ..InboxFilter::default()
    };
    feedback(s, a1.id, Rating::Down).await;
    feedback(s, a2.id, Rating::Up).await;
    let rows = all(s, rated.clone()).await;
    assert_eq!(
        down(&rows),
        vec![x.id],
        "rating=down lists the sessions rated down"
    );
    assert!(rows[0].rated_down);
    feedback(s, a1.id, Rating::Up).await;
    assert!(
        all(s, rated.clone()).await.is_empty(),
        "feedback replaced: not rated down"
    );
    feedback(s, a1.id, Rating::Down).await;
    feedback(s, a1.id, Rating::Down).await;
    assert_eq!(down(&all(s, rated.clone()).await), vec![x.id]);
    delete_message(s, a1.id).await;
    assert!(
        all(s, rated.clone()).await.is_empty(),
        "a deleted message's rating no longer counts"
    );

    // States follow patches; a pending handoff is activity.
    s.clock.advance(Duration::seconds(1));
    let asked = now(s);
    let state_of = |st: InboxState| InboxFilter {
        state: Some(st),
        ..InboxFilter::default()
    };
    update(
        s,
        &by_uuid(&x),
        &SessionPatch {
            responder: Some(Responder::Human),
            handoff_requested_at: Some(Some(asked)),
            ..SessionPatch::default()
        },
    )
    .await;
    let rows = all(s, state_of(InboxState::Waiting)).await;
    assert_eq!(ids(&rows), vec![x.id], "state=waiting");
    assert_eq!(
        rows[0].last_activity_at, asked,
        "a pending handoff request is activity"
    );
    assert_eq!(
        ids(&all(s, InboxFilter::default()).await),
        vec![x.id, other.id]
    );
    assert_eq!(
        ids(&all(s, state_of(InboxState::Active)).await),
        vec![other.id]
    );
    let cleared = SessionPatch {
        handoff_requested_at: Some(None),
        ..SessionPatch::default()
    };
    update(s, &by_uuid(&x), &cleared).await;
    assert_eq!(
        ids(&all(s, state_of(InboxState::Human)).await),
        vec![x.id],
        "state=human"
    );
    assert!(all(s, state_of(InboxState::Waiting)).await.is_empty());
    assert_eq!(
        ids(&all(s, InboxFilter::default()).await),
        vec![other.id, x.id],
        "the handoff cleared, last activity is the newest message again"
    );
    update(s, &by_uuid(&x), &super::set_active(false)).await;
    let rows = all(s, state_of(InboxState::Closed)).await;
    assert_eq!(ids(&rows), vec![x.id], "state=closed");
    assert_eq!(rows[0].state, InboxState::Closed);
    assert!(all(s, state_of(InboxState::Human)).await.is_empty());

    // By visitor, exactly; by last-activity range [from, to).
    let by_user = |u: &str| InboxFilter {
        external_user_id: Some(u.into()),
        ..InboxFilter::default()
    };
    assert_eq!(ids(&all(s, by_user("visitor-1")).await), vec![x.id]);
    assert!(
        all(s, by_user("Visitor-1")).await.is_empty(),
        "external_user_id is exact"
    );
    update(
        s,
        &by_uuid(&x),
        &SessionPatch {
            external_user_id: Some(Some("visitor-2".into())),
            ..SessionPatch::default()
        },
    )
    .await;
    assert!(
        all(s, by_user("visitor-1")).await.is_empty(),
        "follows a changed external_user_id"
    );
    assert_eq!(ids(&all(s, by_user("visitor-2")).await), vec![x.id]);
    let range = |from: DateTime<Utc>, to: DateTime<Utc>| InboxFilter {
        from: Some(from),
        to: Some(to),
        ..InboxFilter::default()
    };
    let at = a2.timestamp;
    assert_eq!(
        ids(&all(s, range(at, at + Duration::microseconds(1))).await),
        vec![other.id]
    );
    assert!(
        all(
            s,
            range(at + Duration::microseconds(1), at + Duration::hours(1))
        )
        .await
        .is_empty(),
        "from is inclusive, to exclusive"
    );
    let combined = InboxFilter {
        state: Some(InboxState::Active),
        external_user_id: Some("visitor-2".into()),
        ..InboxFilter::default()
    };
    assert!(all(s, combined).await.is_empty(), "filters combine");

    // A deleted session leaves the inbox.
    s.store
        .delete_session(&by_uuid(&other))
        .await
        .expect("delete");
    assert_eq!(ids(&all(s, InboxFilter::default()).await), vec![x.id]);
}
