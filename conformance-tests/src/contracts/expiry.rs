//! Expiry: an expired session and its messages are invisible to every method, and
//! expiry is inclusive (`now >= expires_at`) on every path.

use chrono::Duration;
use colloquy_core::{Entity, Role, Session, SessionFilter, StoreError};

use super::{
    append, assert_err, both_refs, create, draft, get_message, list_sessions, no_change,
    session_ids,
};
use crate::TestStore;

const INCLUSIVE: &str = "expiry is inclusive: a session whose expires_at is not after \
                         clock.now() (now >= expires_at) is expired";

/// Once the clock passes `expires_at`, the session and its messages are invisible to
/// every method, lists included, by either reference; other sessions are unaffected.
pub async fn expired_session_is_invisible_everywhere(s: &TestStore) {
    let old = create(s, "old").await;
    let m = append(s, &old, Role::User, "hello").await;
    s.clock.advance(Duration::minutes(30));
    let young = create(s, "young").await;
    s.clock.advance(Duration::minutes(31));
    assert_gone_everywhere(s, &old, m.id, "an hour after creation, past expires_at").await;
    assert!(
        super::get(s, "young").await.is_some(),
        "a live session is unaffected by another's expiry"
    );
    assert_eq!(
        session_ids(&list_sessions(s, &SessionFilter::default()).await),
        vec![young.id],
        "list_sessions lists live sessions only"
    );
}

/// Expiry is inclusive on every path: one microsecond before `expires_at` the
/// session answers on every method; at exactly `expires_at` it is gone from every
/// one (lookup by UUID and by session_id, append, begin_turn, message, list,
/// update, delete, delete_message, list_sessions).
pub async fn expiry_is_inclusive_on_every_path(s: &TestStore) {
    let edge = create(s, "edge").await;
    let m = append(s, &edge, Role::User, "hello").await;
    s.clock.set(edge.expires_at - Duration::microseconds(1));
    let before = "one microsecond before expires_at the session is live";
    for (how, reference) in both_refs(&edge) {
        let found = s.store.session(&reference).await;
        assert!(
            matches!(&found, Ok(Some(x)) if x.id == edge.id),
            "{before}: session() {how} must find it, got {found:?}"
        );
        let listed = s
            .store
            .list_messages(&reference, &super::everything())
            .await;
        assert!(
            matches!(&listed, Ok((x, page)) if x.id == edge.id && page.iter().any(|p| p.id == m.id)),
            "{before}: list_messages() {how} must list it, got {listed:?}"
        );
        let updated = s.store.update_session(&reference, &no_change()).await;
        assert!(
            matches!(&updated, Ok(x) if x.id == edge.id),
            "{before}: update_session() {how} must succeed, got {updated:?}"
        );
        let appended = s
            .store
            .append(&reference, draft(s, Role::User, "late"))
            .await;
        assert!(
            appended.is_ok(),
            "{before}: append() {how} must succeed, got {appended:?}"
        );
        let turn = s
            .store
            .begin_turn(&reference, draft(s, Role::User, "turn"), 4)
            .await;
        assert!(
            turn.is_ok(),
            "{before}: begin_turn() {how} must succeed, got {turn:?}"
        );
    }
    assert!(
        get_message(s, m.id).await.is_some(),
        "{before}: message(id) must return its messages"
    );
    assert!(
        list_sessions(s, &SessionFilter::default())
            .await
            .iter()
            .any(|x| x.id == edge.id),
        "{before}: list_sessions must list it"
    );

    s.clock.set(edge.expires_at);
    assert_gone_everywhere(s, &edge, m.id, "at exactly expires_at").await;
}

/// Checks that `session` (holding message `message`) is invisible to every method.
async fn assert_gone_everywhere(s: &TestStore, session: &Session, message: uuid::Uuid, when: &str) {
    for (how, reference) in both_refs(session) {
        let found = s.store.session(&reference).await;
        assert!(
            matches!(found, Ok(None)),
            "{INCLUSIVE}; {when}: session() {how} must be Ok(None), got {found:?}"
        );
        assert_err!(
            s.store
                .list_messages(&reference, &super::everything())
                .await,
            StoreError::NotFound(Entity::Session),
            "{INCLUSIVE}; {when}: list_messages() {how}"
        );
        assert_err!(
            s.store.update_session(&reference, &no_change()).await,
            StoreError::NotFound(Entity::Session),
            "{INCLUSIVE}; {when}: update_session() {how}"
        );
        assert_err!(
            s.store
                .append(&reference, draft(s, Role::User, "late"))
                .await,
            StoreError::NotFound(Entity::Session),
            "{INCLUSIVE}; {when}: append() {how}"
        );
        assert_err!(
            s.store
                .begin_turn(&reference, draft(s, Role::User, "late turn"), 4)
                .await,
            StoreError::NotFound(Entity::Session),
            "{INCLUSIVE}; {when}: begin_turn() {how}"
        );
        assert_err!(
            s.store.delete_session(&reference).await,
            StoreError::NotFound(Entity::Session),
            "{INCLUSIVE}; {when}: delete_session() {how}"
        );
    }
    let got = s.store.message(message).await;
    assert!(
        matches!(got, Ok(None)),
        "{INCLUSIVE}; {when}: message(id) of its message must be Ok(None), got {got:?}"
    );
    assert_err!(
        s.store.delete_message(message).await,
        StoreError::NotFound(Entity::Message),
        "{INCLUSIVE}; {when}: delete_message() of its message"
    );
    let listed = list_sessions(s, &SessionFilter::default()).await;
    assert!(
        listed.iter().all(|x| x.id != session.id),
        "{INCLUSIVE}; {when}: list_sessions must not list it, got {:?}",
        session_ids(&listed)
    );
    let searched = list_sessions(
        s,
        &SessionFilter {
            search: Some(session.session_id.clone()),
            ..SessionFilter::default()
        },
    )
    .await;
    assert!(
        searched.iter().all(|x| x.id != session.id),
        "{INCLUSIVE}; {when}: list_sessions with a search must not list it"
    );
}
