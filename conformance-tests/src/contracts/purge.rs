//! Purge and retention: `purge_expired(cutoff)` physically removes the sessions
//! expired at or before `cutoff`, with their messages, and nothing else.
//!
//! Stores declared with [`TestStore::expires_physically`] may answer `Ok(0)`; their
//! checks that data is physically gone are then skipped (everything visible is
//! still checked).

use chrono::{DateTime, Duration, Utc};
use colloquy_core::{ChatMessage, Role, Session, StoreError};

use super::{
    append, assert_message_gone, assert_message_stored, assert_session_gone, assert_session_stored,
    by_sid, by_uuid, create, create_as, get, get_message, list_all, new_session, now,
};
use crate::TestStore;

/// Calls `purge_expired(cutoff)` and checks the count; returns whether the data is
/// to be physically gone (always, unless the store expires data physically and
/// answered 0).
#[track_caller]
fn purge<'a>(
    s: &'a TestStore,
    cutoff: DateTime<Utc>,
    expected: u64,
    rule: &'a str,
) -> impl std::future::Future<Output = bool> + 'a {
    let at = std::panic::Location::caller();
    async move {
        let got: Result<u64, StoreError> = s.store.purge_expired(cutoff).await;
        match got {
            Ok(n) if n == expected => true,
            Ok(0) if s.has_physical_expiry() => false,
            other => panic!(
                "{at}: {rule}\n  purge_expired({cutoff}) 'returns how many sessions it removed'\n  \
                 expected: Ok({expected}){}\n  got:      {other:?}",
                if s.has_physical_expiry() {
                    " (or Ok(0): the store expires data physically)"
                } else {
                    ""
                }
            ),
        }
    }
}

/// A session expiring at `expires_at`, with one message.
async fn expiring_at(
    s: &TestStore,
    session_id: &str,
    expires_at: DateTime<Utc>,
) -> (Session, ChatMessage) {
    let mut session = new_session(s, session_id);
    session.expires_at = expires_at;
    create_as(s, &session).await;
    let m = append(s, &session, Role::User, session_id).await;
    (session, m)
}

/// `purge_expired(now)` removes every expired session with all its messages,
/// soft-deleted ones included, returns how many sessions it removed, and leaves
/// live sessions alone; a second purge removes nothing.
pub async fn purge_removes_expired_sessions_and_returns_the_count(s: &TestStore) {
    let mut doomed = Vec::new();
    for i in 0..3 {
        let session = create(s, &format!("doomed-{i}")).await;
        let a = append(s, &session, Role::User, "a").await;
        let b = append(s, &session, Role::Assistant, "b").await;
        super::delete_message(s, b.id).await;
        doomed.push((session, [a, b]));
    }
    let keeper = create(s, "keeper").await;
    let kept = append(s, &keeper, Role::User, "kept").await;
    let extend = colloquy_core::SessionPatch {
        expires_at: Some(keeper.expires_at + Duration::hours(3)),
        ..colloquy_core::SessionPatch::default()
    };
    let keeper = super::update(s, &by_uuid(&keeper), &extend).await;
    s.clock.advance(Duration::hours(2));

    let rule = "purge_expired 'removes physically every session whose expires_at is at or \
                before cutoff, with all its messages'";
    let removed = purge(s, now(s), 3, rule).await;
    assert_eq!(
        get_message(s, kept.id).await,
        Some((kept.clone(), keeper.clone())),
        "purge_expired 'never removes a session expiring after cutoff': the live session and \
         its messages stay"
    );
    assert_eq!(
        list_all(s, &keeper).await,
        vec![kept],
        "the live session's messages stay listed after a purge"
    );
    if removed {
        for (session, messages) in &doomed {
            assert_session_gone(s, session.id, rule).await;
            for m in messages {
                assert_message_gone(s, m.id, rule).await;
            }
        }
    }
    purge(
        s,
        now(s),
        0,
        "a second purge_expired has nothing left to remove",
    )
    .await;
}

/// Retention: `purge_expired` with a cutoff before a session's expiry removes
/// nothing, so an expired session stays stored (invisible, its UUID and message ids
/// still taken) until a later cutoff reaches its expiry.
pub async fn purge_keeps_data_until_the_cutoff_reaches_expiry(s: &TestStore) {
    let (expired, m) = expiring_at(s, "retained", now(s) + Duration::hours(1)).await;
    s.clock.advance(Duration::hours(2));
    let retention = Duration::hours(1) + Duration::microseconds(1);
    let cutoff = now(s) - retention;
    assert!(
        cutoff < expired.expires_at,
        "test setup: the cutoff is before the expiry"
    );
    purge(
        s,
        cutoff,
        0,
        "purge_expired 'never removes a session expiring after cutoff' (retention keeps data)",
    )
    .await;
    assert_eq!(
        get(s, "retained").await,
        None,
        "an expired session stays invisible"
    );
    let kept = "an expired session 'stays stored (and invisible) for the retention period'";
    assert_session_stored(s, expired.id, kept).await;
    assert_message_stored(s, m.id, kept).await;

    let removed = purge(
        s,
        expired.expires_at,
        1,
        "purge_expired removes the session once the cutoff reaches its expiry",
    )
    .await;
    if removed {
        let gone = "purge_expired removes the session with all its messages";
        assert_session_gone(s, expired.id, gone).await;
        assert_message_gone(s, m.id, gone).await;
    }
}

/// The cutoff is inclusive: a session with `expires_at == cutoff` is purged; one
/// expiring a microsecond later is not.
pub async fn purge_boundary_is_inclusive(s: &TestStore) {
    let t = now(s) + Duration::hours(1);
    let (at, at_message) = expiring_at(s, "at-cutoff", t).await;
    let (after, after_message) =
        expiring_at(s, "after-cutoff", t + Duration::microseconds(1)).await;
    s.clock.set(t);
    let rule = "purge_expired removes 'every session whose expires_at is at or before cutoff' \
                (inclusive: expires_at == cutoff is purged)";
    let removed = purge(s, t, 1, rule).await;
    assert_eq!(
        get(s, "after-cutoff").await,
        Some(after.clone()),
        "purge_expired 'never removes a session expiring after cutoff': expires_at one \
         microsecond after the cutoff (and still live)"
    );
    assert_eq!(
        get_message(s, after_message.id).await,
        Some((after_message.clone(), after.clone())),
        "the messages of a session expiring one microsecond after the cutoff stay"
    );
    if removed {
        assert_session_gone(s, at.id, rule).await;
        assert_message_gone(s, at_message.id, rule).await;
    }
    s.clock.set(t + Duration::microseconds(1));
    let removed = purge(
        s,
        t + Duration::microseconds(1),
        1,
        "purge_expired with the cutoff moved to the second session's expires_at removes it",
    )
    .await;
    if removed {
        assert_session_gone(s, after.id, rule).await;
        assert_message_gone(s, after_message.id, rule).await;
    }
}

/// Purging an expired session leaves alone a new session that reused its
/// session_id: it stays reachable by session_id and UUID, with its messages.
pub async fn purge_leaves_a_new_session_with_the_reused_session_id_alone(s: &TestStore) {
    let old = create(s, "reused").await;
    let old_message = append(s, &old, Role::User, "old").await;
    s.clock.advance(Duration::hours(2));
    let new = create(s, "reused").await;
    let new_message = append(s, &new, Role::User, "new").await;

    let removed = purge(
        s,
        now(s),
        1,
        "purge_expired removes the expired session that held the session_id",
    )
    .await;
    let rule = "purge_expired 'never removes ... a newer session that reused a purged \
                session's session_id'";
    assert_eq!(
        get(s, "reused").await,
        Some(new.clone()),
        "{rule}: session() by session_id"
    );
    assert_eq!(
        get(s, &new.id.to_string()).await,
        Some(new.clone()),
        "{rule}: session() by UUID"
    );
    let (session, listed) = s
        .store
        .list_messages(&by_sid(&new), &super::everything())
        .await
        .unwrap_or_else(|e| panic!("{rule}: list_messages by session_id failed: {e:?}"));
    assert_eq!(
        (session, listed),
        (new.clone(), vec![new_message.clone()]),
        "{rule}: list_messages by session_id"
    );
    let (_, appended) = s
        .store
        .append(&by_sid(&new), super::draft(s, Role::User, "still here"))
        .await
        .unwrap_or_else(|e| panic!("{rule}: append by session_id failed: {e:?}"));
    assert_eq!(
        get_message(s, appended.id).await,
        Some((appended, new.clone())),
        "{rule}: append by session_id"
    );
    if removed {
        assert_message_gone(
            s,
            old_message.id,
            "purge_expired removes the expired session's messages",
        )
        .await;
    }
    s.store
        .delete_session(&by_sid(&new))
        .await
        .unwrap_or_else(|e| panic!("{rule}: delete_session by session_id failed: {e:?}"));
    assert_eq!(get(s, "reused").await, None, "deleted by session_id");
}

/// Purge follows the session's current `expires_at`: an extended session is not
/// purged at its old expiry, a shortened one is purged at its new one.
pub async fn purge_follows_a_changed_expiry(s: &TestStore) {
    let extended = create(s, "extended").await;
    let shortened = create(s, "shortened").await;
    let kept = append(s, &extended, Role::User, "kept").await;
    let old_expiry = extended.expires_at;
    let extend = colloquy_core::SessionPatch {
        expires_at: Some(old_expiry + Duration::hours(2)),
        ..colloquy_core::SessionPatch::default()
    };
    let extended = super::update(s, &by_uuid(&extended), &extend).await;
    let shorten = colloquy_core::SessionPatch {
        expires_at: Some(now(s) + Duration::minutes(10)),
        ..colloquy_core::SessionPatch::default()
    };
    let shortened = super::update(s, &by_sid(&shortened), &shorten).await;

    s.clock.set(old_expiry + Duration::minutes(1));
    let removed = purge(
        s,
        now(s),
        1,
        "'a changed expires_at applies to the session': purge_expired at the old expiry \
         removes the shortened session only",
    )
    .await;
    assert_eq!(
        get(s, "extended").await,
        Some(extended.clone()),
        "purge_expired 'never removes a session expiring after cutoff': a session extended \
         past the cutoff stays, whatever its expiry used to be"
    );
    assert_eq!(
        get_message(s, kept.id).await,
        Some((kept.clone(), extended.clone())),
        "the extended session's messages stay after the purge"
    );
    if removed {
        assert_session_gone(
            s,
            shortened.id,
            "purge_expired removes a session whose shortened expires_at is before the cutoff",
        )
        .await;
    }
    s.clock.set(extended.expires_at);
    purge(
        s,
        now(s),
        1,
        "purge_expired removes the extended session once the cutoff reaches its new expiry",
    )
    .await;
}

/// How many sessions [`purge_removes_every_expired_session_however_many`] expires:
/// more than two batches of any adapter that purges in batches of 500.
const MANY: usize = 1_100;

/// "removes physically every session whose expires_at is at or before cutoff",
/// however many: an adapter that purges in batches must not stop after one.
pub async fn purge_removes_every_expired_session_however_many(s: &TestStore) {
    let sessions: Vec<Session> = (0..MANY)
        .map(|i| new_session(s, &format!("many-{i}")))
        .collect();
    let created = futures::future::join_all(sessions.iter().map(|session| create_as(s, session)));
    created.await;
    s.clock.advance(Duration::days(2));
    let rule = "purge_expired 'removes physically every session whose expires_at is at or \
                before cutoff', however many there are";
    let removed = purge(s, now(s), MANY as u64, rule).await;
    if removed {
        for session in [&sessions[0], &sessions[MANY / 2], &sessions[MANY - 1]] {
            assert_session_gone(s, session.id, rule).await;
        }
    }
    purge(s, now(s), 0, "nothing is left for a second purge_expired").await;
}
