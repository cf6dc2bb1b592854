//! Privacy: `erase_user(external_user_id)` hard-deletes everything stored about one
//! visitor and nothing else.

use chrono::Duration;
use colloquy_core::ports::Erased;
use colloquy_core::{Role, Session, SessionFilter};

use super::{
    append, assert_message_gone, assert_message_stored, assert_session_gone, assert_session_stored,
    by_uuid, create_as, delete_message, get, list_sessions, new_session, set_active, update,
};
use crate::TestStore;

/// A session of `external_user_id`, expiring after `ttl`.
async fn of_user(s: &TestStore, session_id: &str, user: Option<&str>, ttl: Duration) -> Session {
    let mut session = new_session(s, session_id);
    session.external_user_id = user.map(str::to_owned);
    session.expires_at = session.created_at + ttl;
    create_as(s, &session).await;
    session
}

/// `erase_user` removes every session of the visitor (live, inactive, expired but
/// stored) with every message (soft-deleted too), returns the counts, leaves other
/// visitors' sessions and sessions without a visitor alone, and a second call erases
/// nothing.
pub async fn erase_user_hard_deletes_every_session_of_that_visitor_only(s: &TestStore) {
    let rule = "erase_user 'erases ... every session whose external_user_id equals \
                external_user_id exactly, live, inactive or expired but still stored, with \
                all its messages, soft-deleted ones included. A hard delete'";
    let hour = Duration::hours(1);
    let live = of_user(s, "alice-live", Some("alice"), hour * 48).await;
    let a1 = append(s, &live, Role::User, "my address is 1 Main St").await;
    let a2 = append(s, &live, Role::Assistant, "noted").await;
    delete_message(s, a2.id).await;
    let inactive = of_user(s, "alice-closed", Some("alice"), hour * 48).await;
    let a3 = append(s, &inactive, Role::User, "bye").await;
    update(s, &by_uuid(&inactive), &set_active(false)).await;
    let expiring = of_user(s, "alice-old", Some("alice"), hour).await;
    let a4 = append(s, &expiring, Role::User, "old secret").await;
    let bob = of_user(s, "bob", Some("bob"), hour * 48).await;
    let b1 = append(s, &bob, Role::User, "bob's").await;
    let nobody = of_user(s, "nobody", None, hour * 48).await;
    let n1 = append(s, &nobody, Role::User, "anonymous").await;
    let alike = of_user(s, "alice-upper", Some("Alice"), hour * 48).await;
    s.clock.advance(hour * 2);

    let erased = s.store.erase_user("alice").await;
    assert!(
        matches!(
            erased,
            Ok(Erased {
                sessions: 3,
                messages: 4
            })
        ),
        "{rule}; 'Returns how much it erased'\n  expected: Ok(Erased {{ sessions: 3, messages: 4 }})\n  got: {erased:?}"
    );
    for session in [&live, &inactive, &expiring] {
        assert_session_gone(s, session.id, rule).await;
    }
    for id in [a1.id, a2.id, a3.id, a4.id] {
        assert_message_gone(s, id, rule).await;
    }
    let filter = SessionFilter {
        external_user_id: Some("alice".into()),
        ..SessionFilter::default()
    };
    assert!(
        list_sessions(s, &filter).await.is_empty(),
        "{rule}: no session of alice is listed afterwards"
    );

    let other = "erase_user: 'Sessions of other visitors, and sessions without an \
                 external_user_id, stay'";
    for session in [&bob, &nobody, &alike] {
        assert_eq!(
            get(s, &session.session_id).await.map(|found| found.id),
            Some(session.id),
            "{other} (session {:?})",
            session.session_id
        );
        assert_session_stored(s, session.id, other).await;
    }
    for id in [b1.id, n1.id] {
        assert_message_stored(s, id, other).await;
    }

    let again = s.store.erase_user("alice").await;
    assert!(
        matches!(
            again,
            Ok(Erased {
                sessions: 0,
                messages: 0
            })
        ),
        "erase_user: 'a second call erases nothing and returns zeros'\n  got: {again:?}"
    );
}
