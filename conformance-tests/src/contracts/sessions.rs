//! Sessions: create, look up, update, delete, list; references by UUID or session_id.

use chrono::Duration;
use colloquy_core::{Entity, Role, SessionFilter, SessionPatch, SessionRef, StoreError};
use serde_json::json;
use uuid::Uuid;

use super::{
    append, assert_err, assert_message_gone, assert_session_gone, both_refs, by_sid, by_uuid,
    create, create_as, delete_message, get, get_message, list_all, list_sessions, meta,
    new_session, no_change, now, session_ids, set_active, update,
};
use crate::TestStore;

/// `create_session` stores the session as given; `session` finds it by UUID (also
/// written in upper case) and by session_id.
pub async fn create_then_get_by_uuid_and_session_id(s: &TestStore) {
    let mut new = new_session(s, "landing-page.visitor_1:a-b");
    new.external_user_id = Some("user-42".into());
    new.metadata = meta(json!({"page": "/pricing", "nested": {"n": [1, 2.5, null, "é"]}}));
    create_as(s, &new).await;
    for (how, reference) in [
        ("by UUID", new.id.to_string()),
        ("by session_id", new.session_id.clone()),
        ("by upper-case UUID", new.id.to_string().to_uppercase()),
    ] {
        assert_eq!(
            get(s, &reference).await,
            Some(new.clone()),
            "create_session 'stores a new session as given' and session() 'returns the live \
             session that reference names': expected the session field for field, {how}"
        );
    }
}

/// `session` of something never created is `Ok(None)`; so is a reference in a
/// non-hyphenated UUID form (only the hyphenated form is a UUID reference).
pub async fn unknown_session_is_none(s: &TestStore) {
    let exists = create(s, "exists").await;
    for reference in [
        "does-not-exist".to_owned(),
        Uuid::new_v4().to_string(),
        exists.id.simple().to_string(),
        exists.id.braced().to_string(),
        exists.id.urn().to_string(),
        String::new(),
    ] {
        assert_eq!(
            get(s, &reference).await,
            None,
            "session() returns Ok(None) when no live session matches {reference:?} (only the \
             hyphenated 36-character form is a UUID reference)"
        );
    }
}

/// A UUID reference resolves by UUID first and by session_id second: a session
/// whose session_id is another session's UUID is reachable by that text only once
/// the other session is gone; a non-hyphenated UUID text is a session_id only.
pub async fn reference_resolves_uuid_first_then_session_id(s: &TestStore) {
    let a = create(s, "plain").await;
    let b = create(s, &a.id.to_string()).await;
    let text = SessionRef::parse(&a.id.to_string());
    let rule = "a reference names the live session whose id equals its UUID if there is one, \
                otherwise the live session whose session_id equals its text";
    assert_eq!(
        get(s, &a.id.to_string()).await.map(|x| x.id),
        Some(a.id),
        "{rule}: session() must find the session with that UUID, not the one with that \
         session_id"
    );
    assert_eq!(
        get(s, &b.id.to_string()).await.map(|x| x.id),
        Some(b.id),
        "{rule}: session() by b's own UUID"
    );
    let (session, message) = s
        .store
        .append(&text, super::draft(s, Role::User, "to a"))
        .await
        .expect("append by a's UUID text");
    assert_eq!(
        (session.id, message.session),
        (a.id, a.id),
        "{rule}: append() must go to the session with that UUID"
    );
    let (listed, _) = s
        .store
        .list_messages(&text, &super::everything())
        .await
        .expect("list_messages by a's UUID text");
    assert_eq!(listed.id, a.id, "{rule}: list_messages()");
    let patched = s
        .store
        .update_session(&text, &set_active(false))
        .await
        .expect("update by a's UUID text");
    assert_eq!(patched.id, a.id, "{rule}: update_session()");
    assert_eq!(
        get(s, &b.id.to_string()).await.map(|x| x.is_active),
        Some(true),
        "{rule}: update_session() must leave the session_id match alone"
    );
    s.store
        .delete_session(&text)
        .await
        .expect("delete by a's UUID text");
    assert_eq!(
        get(s, &b.id.to_string()).await.map(|x| x.id),
        Some(b.id),
        "{rule}: delete_session() must delete the session with that UUID only"
    );
    assert_eq!(
        get(s, &a.id.to_string()).await.map(|x| x.id),
        Some(b.id),
        "{rule}: once no live session has the UUID, the text names the session whose \
         session_id it is"
    );

    // The simple (32 hex digits) form is never a UUID reference.
    let c = create(s, "by-simple").await;
    let d = create(s, &c.id.simple().to_string()).await;
    assert_eq!(
        get(s, &c.id.simple().to_string()).await.map(|x| x.id),
        Some(d.id),
        "only the hyphenated 36-character form is a UUID reference: 32 bare hex digits \
         are a session_id"
    );
}

/// `create_session` fails with `Conflict(Session)` when a live session has the same
/// session_id, and writes nothing then.
pub async fn duplicate_session_id_conflicts(s: &TestStore) {
    let first = create(s, "taken").await;
    let second = new_session(s, "taken");
    assert_err!(
        s.store.create_session(&second).await,
        StoreError::Conflict(Entity::Session),
        "create_session fails with Conflict(Session) when a live session already has the \
         same session_id"
    );
    assert_eq!(
        get(s, "taken").await,
        Some(first),
        "the session_id still names the first session"
    );
    assert_eq!(
        get(s, &second.id.to_string()).await,
        None,
        "create_session writes nothing when it fails: the loser is not stored"
    );
    assert_eq!(
        list_sessions(s, &SessionFilter::default()).await.len(),
        1,
        "create_session writes nothing when it fails: one session listed"
    );

    // A session_id may look like another session's UUID; it is still a session_id.
    let other = create(s, "other").await;
    let look_alike = create(s, &other.id.to_string()).await;
    let copy = new_session(s, &other.id.to_string());
    assert_err!(
        s.store.create_session(&copy).await,
        StoreError::Conflict(Entity::Session),
        "create_session fails with Conflict(Session) when a live session already has the \
         same session_id, also when that session_id is the text of another session's UUID"
    );
    assert_eq!(
        get(s, &copy.id.to_string()).await,
        None,
        "create_session writes nothing when it fails (look-alike session_id)"
    );
    assert_eq!(
        get(s, &look_alike.id.to_string()).await,
        Some(look_alike),
        "the look-alike session stays as it was"
    );
}

/// `create_session` fails with `Conflict(Session)` when any stored session has the
/// same UUID, an expired one kept for retention included; nothing is written then.
pub async fn duplicate_session_uuid_conflicts(s: &TestStore) {
    let first = create(s, "one").await;
    let mut again = new_session(s, "two");
    again.id = first.id;
    assert_err!(
        s.store.create_session(&again).await,
        StoreError::Conflict(Entity::Session),
        "create_session fails with Conflict(Session) when a stored session has the same id"
    );
    assert_eq!(
        get(s, "two").await,
        None,
        "create_session writes nothing when it fails"
    );
    s.clock.advance(Duration::hours(2));
    let mut later = new_session(s, "three");
    later.id = first.id;
    assert_err!(
        s.store.create_session(&later).await,
        StoreError::Conflict(Entity::Session),
        "create_session fails with Conflict(Session) when ANY stored session has the same \
         id: an expired session stays stored until purged, and its UUID stays taken"
    );
    assert_eq!(
        get(s, "three").await,
        None,
        "create_session writes nothing when it fails"
    );
}

/// The session_id of an expired session may be reused while the expired session is
/// still stored; the old UUID stays invisible.
pub async fn expired_session_id_can_be_reused(s: &TestStore) {
    let old = create(s, "reused").await;
    let old_message = append(s, &old, Role::User, "old").await;
    s.clock.advance(Duration::hours(2));
    let new = create(s, "reused").await;
    assert_eq!(
        get(s, "reused").await,
        Some(new.clone()),
        "the session_id of an expired session may be reused: it names the new session"
    );
    assert_eq!(
        get(s, &old.id.to_string()).await,
        None,
        "the expired session stays invisible by UUID"
    );
    assert!(
        list_all(s, &new).await.is_empty(),
        "the new session does not inherit the expired session's messages"
    );
    assert_eq!(
        get_message(s, old_message.id).await,
        None,
        "the expired session's messages stay invisible"
    );
}

/// `update_session` changes each patched field, leaves the others, replaces
/// metadata whole, returns the session as stored; by UUID and by session_id alike.
pub async fn update_changes_each_field(s: &TestStore) {
    let mut original = new_session(s, "patch-me");
    original.external_user_id = Some("ext".into());
    original.metadata = meta(json!({"a": 1, "b": 2}));
    create_as(s, &original).await;

    let replaced = meta(json!({"c": 3}));
    let new_expiry = original.expires_at + Duration::hours(5);
    let steps = [
        set_active(false),
        SessionPatch {
            metadata: Some(replaced.clone()),
            ..SessionPatch::default()
        },
        SessionPatch {
            external_user_id: Some(Some("other".into())),
            ..SessionPatch::default()
        },
        SessionPatch {
            expires_at: Some(new_expiry),
            ..SessionPatch::default()
        },
        SessionPatch {
            external_user_id: Some(None),
            ..SessionPatch::default()
        },
        set_active(true),
        no_change(),
    ];
    let mut expected = original.clone();
    for (i, patch) in steps.iter().enumerate() {
        let (how, reference) = both_refs(&original)[i % 2].clone();
        patch.apply_to(&mut expected);
        let returned = s
            .store
            .update_session(&reference, patch)
            .await
            .unwrap_or_else(|e| panic!("update_session {how} with {patch:?} failed: {e:?}"));
        assert_eq!(
            returned, expected,
            "update_session 'returns the session as stored' after {patch:?} {how} (fields the \
             patch leaves None are unchanged; metadata is replaced whole)"
        );
        assert_eq!(
            get(s, "patch-me").await,
            Some(expected.clone()),
            "update_session stores the patched session: after {patch:?} {how}"
        );
    }
    assert_eq!(expected.metadata, replaced, "metadata replaced whole");
    assert_eq!(
        expected.external_user_id, None,
        "Some(None) clears external_user_id"
    );
    assert_eq!(expected.expires_at, new_expiry, "expires_at moved");
}

/// `update_session` of a missing, deleted or expired session fails with
/// `NotFound(Session)`, by either reference.
pub async fn update_missing_or_expired_is_not_found(s: &TestStore) {
    let patch = set_active(false);
    assert_err!(
        s.store
            .update_session(&SessionRef::from_uuid(Uuid::new_v4()), &patch)
            .await,
        StoreError::NotFound(Entity::Session),
        "update_session of a session that never existed (by UUID)"
    );
    assert_err!(
        s.store
            .update_session(&SessionRef::parse("never-created"), &patch)
            .await,
        StoreError::NotFound(Entity::Session),
        "update_session of a session that never existed (by session_id)"
    );
    let deleted = create(s, "deleted").await;
    s.store
        .delete_session(&by_uuid(&deleted))
        .await
        .expect("delete");
    for (how, reference) in both_refs(&deleted) {
        assert_err!(
            s.store.update_session(&reference, &patch).await,
            StoreError::NotFound(Entity::Session),
            "update_session of a deleted session, {how}"
        );
    }
    let expiring = create(s, "expiring").await;
    s.clock.advance(Duration::hours(2));
    for (how, reference) in both_refs(&expiring) {
        assert_err!(
            s.store.update_session(&reference, &patch).await,
            StoreError::NotFound(Entity::Session),
            "update_session of an expired session, {how}"
        );
    }
}

/// A changed `expires_at` applies to the session and all its messages at once:
/// extended, they outlive the old expiry; shortened, they vanish at the new one.
pub async fn changed_expiry_applies_to_messages(s: &TestStore) {
    let extended = create(s, "extended").await;
    let shortened = create(s, "shortened").await;
    let kept = append(s, &extended, Role::User, "kept").await;
    let gone = append(s, &shortened, Role::User, "gone").await;
    let extend = SessionPatch {
        expires_at: Some(extended.expires_at + Duration::hours(3)),
        ..SessionPatch::default()
    };
    let extended = update(s, &by_sid(&extended), &extend).await;
    let shorten = SessionPatch {
        expires_at: Some(now(s) + Duration::minutes(10)),
        ..SessionPatch::default()
    };
    update(s, &by_uuid(&shortened), &shorten).await;

    s.clock.advance(Duration::minutes(30));
    let rule = "a changed expires_at applies to the session and all its messages at once";
    assert!(
        get(s, "extended").await.is_some(),
        "{rule}: extended session alive"
    );
    assert_eq!(
        get(s, "shortened").await,
        None,
        "{rule}: a shortened expiry hides the session at the new instant"
    );
    assert_eq!(
        get_message(s, gone.id).await,
        None,
        "{rule}: a shortened expiry hides the session's messages too"
    );

    s.clock.advance(Duration::hours(2));
    assert!(
        get(s, "extended").await.is_some(),
        "{rule}: an extended session outlives its old expiry"
    );
    assert_eq!(
        get_message(s, kept.id).await,
        Some((kept.clone(), extended.clone())),
        "{rule}: an extended session's messages outlive the old expiry"
    );
    assert_eq!(
        super::texts(&list_all(s, &extended).await),
        ["kept"],
        "{rule}: listed after the old expiry"
    );
}

/// `delete_session` (by UUID or by session_id) removes the session and every
/// message in it, soft-deleted ones included; a second delete fails with
/// `NotFound(Session)`; other sessions keep theirs.
pub async fn delete_cascades_to_messages(s: &TestStore) {
    for (how, pick) in [("by UUID", 0), ("by session_id", 1)] {
        let doomed = create(s, &format!("doomed-{pick}")).await;
        let other = create(s, &format!("other-{pick}")).await;
        let a = append(s, &doomed, Role::User, "a").await;
        let b = append(s, &doomed, Role::Assistant, "b").await;
        delete_message(s, b.id).await;
        let survivor = append(s, &other, Role::User, "survivor").await;

        let reference = both_refs(&doomed)[pick].1.clone();
        s.store
            .delete_session(&reference)
            .await
            .unwrap_or_else(|e| panic!("delete_session {how} failed: {e:?}"));
        assert_eq!(
            get(s, &doomed.session_id).await,
            None,
            "delete_session {how} deletes the session"
        );
        assert_eq!(get_message(s, a.id).await, None, "its messages go with it");
        assert_err!(
            s.store
                .list_messages(&by_uuid(&doomed), &super::everything())
                .await,
            StoreError::NotFound(Entity::Session),
            "list_messages after delete_session {how}"
        );
        assert_err!(
            s.store.delete_session(&reference).await,
            StoreError::NotFound(Entity::Session),
            "'a second delete fails with NotFound(Session)' ({how})"
        );
        assert_eq!(
            get_message(s, survivor.id).await,
            Some((survivor.clone(), other.clone())),
            "delete_session {how} leaves other sessions' messages alone"
        );
        let rule = "delete_session deletes every message in the session, soft-deleted ones \
                    included";
        assert_message_gone(s, a.id, rule).await;
        assert_message_gone(s, b.id, rule).await;
        assert_session_gone(
            s,
            doomed.id,
            "delete_session removes the session, so its UUID is free again",
        )
        .await;
    }
}

/// `list_sessions` returns sessions newest `created_at` first (ties: greater id
/// first) and pages with limit and offset.
pub async fn list_sessions_newest_first_with_paging(s: &TestStore) {
    let mut created = Vec::new();
    for i in 0..5 {
        created.push(create(s, &format!("s{i}")).await);
        s.clock.advance(Duration::seconds(1));
    }
    // Two more with the very same created_at.
    let twin_a = create(s, "twin-a").await;
    let twin_b = create(s, "twin-b").await;
    let mut twins = [twin_a.id, twin_b.id];
    twins.sort_unstable_by(|x, y| y.cmp(x));

    let all = list_sessions(s, &SessionFilter::default()).await;
    let mut expected: Vec<Uuid> = twins.to_vec();
    expected.extend(created.iter().rev().map(|x| x.id));
    assert_eq!(
        session_ids(&all),
        expected,
        "list_sessions lists newest created_at first (equal created_at: greater id first)"
    );
    for (limit, offset) in [(2, 3), (1, 0), (3, 5), (10, 7), (10, 100)] {
        let page = s
            .store
            .list_sessions(
                &SessionFilter::default(),
                colloquy_core::Page { limit, offset },
            )
            .await
            .expect("list_sessions page");
        let want: Vec<Uuid> = expected.iter().skip(offset).take(limit).copied().collect();
        assert_eq!(
            session_ids(&page),
            want,
            "list_sessions skips page.offset and returns at most page.limit (limit {limit}, \
             offset {offset})"
        );
    }
}

/// A create that fails leaves `list_sessions` as it was: each stored session is
/// listed once, at its own `created_at`, whatever later creates reused its UUID or
/// session_id.
pub async fn failed_creates_leave_the_session_list_alone(s: &TestStore) {
    // Two sessions with the very same created_at: the greater id comes first.
    let a = create(s, "twin-a").await;
    let b = create(s, "twin-b").await;
    let mut expected = [a.id, b.id];
    expected.sort_unstable_by(|x, y| y.cmp(x));
    s.clock.advance(Duration::seconds(1));
    let mut attempts = Vec::new();
    for (twin, other) in [(&a, &b), (&b, &a)] {
        // The same UUID and session_id, the same UUID under another session_id
        // (new or taken), and a new UUID under a taken session_id.
        for (id, session_id) in [
            (twin.id, twin.session_id.clone()),
            (twin.id, "fresh".to_owned()),
            (twin.id, other.session_id.clone()),
            (Uuid::new_v4(), twin.session_id.clone()),
        ] {
            let mut again = new_session(s, &session_id);
            again.id = id;
            attempts.push(again);
        }
    }
    for again in &attempts {
        assert_err!(
            s.store.create_session(again).await,
            StoreError::Conflict(Entity::Session),
            "create_session fails with Conflict(Session) when a live session has the same \
             session_id or a stored session the same id ({} {})",
            again.session_id,
            again.id
        );
    }
    assert_eq!(
        session_ids(&list_sessions(s, &SessionFilter::default()).await),
        expected,
        "list_sessions lists each stored session once, at its own created_at, after \
         failed creates that reused its UUID or session_id"
    );
    let first = s
        .store
        .list_sessions(
            &SessionFilter::default(),
            colloquy_core::Page {
                limit: 1,
                offset: 0,
            },
        )
        .await
        .expect("list_sessions page");
    assert_eq!(
        session_ids(&first),
        expected[..1],
        "list_sessions' first page is the newest stored session, never one named by a \
         failed create"
    );
}

/// `list_sessions` filters follow `SessionFilter::matches`: is_active, exact
/// external_user_id, case-insensitive search in session_id or external_user_id,
/// with no wildcard characters.
pub async fn list_sessions_filters(s: &TestStore) {
    // One second apart, so that newest-first order does not depend on ids.
    let mut alpha = new_session(s, "Alpha-Landing");
    alpha.external_user_id = Some("User@Example.com".into());
    create_as(s, &alpha).await;
    s.clock.advance(Duration::seconds(1));
    let mut beta = new_session(s, "beta_x");
    beta.external_user_id = Some("someone-else".into());
    create_as(s, &beta).await;
    s.clock.advance(Duration::seconds(1));
    let mut gamma = new_session(s, "gamma-LANDING");
    gamma.external_user_id = Some("Jürgen.Öz".into());
    create_as(s, &gamma).await;
    update(s, &by_uuid(&beta), &set_active(false)).await;

    let filter = |is_active: Option<bool>, ext: Option<&str>, search: Option<&str>| SessionFilter {
        is_active,
        external_user_id: ext.map(Into::into),
        search: search.map(Into::into),
    };
    let cases = [
        (filter(Some(false), None, None), vec![beta.id]),
        (filter(Some(true), None, None), vec![gamma.id, alpha.id]),
        (filter(None, Some("User@Example.com"), None), vec![alpha.id]),
        (filter(None, Some("user@example.com"), None), vec![]),
        (
            filter(None, None, Some("landing")),
            vec![gamma.id, alpha.id],
        ),
        (filter(None, None, Some("EXAMPLE")), vec![alpha.id]),
        (filter(Some(true), None, Some("ELSE")), vec![]),
        (filter(Some(false), None, Some("ELSE")), vec![beta.id]),
        (filter(None, None, Some("%")), vec![]),
        (filter(None, None, Some("a_x")), vec![beta.id]),
        (filter(None, None, Some("a-x")), vec![]),
        (filter(None, None, Some("*")), vec![]),
        (filter(None, None, Some("jÜRGEN")), vec![gamma.id]),
        (filter(None, None, Some("n.ö")), vec![gamma.id]),
        (filter(None, None, Some("n?ö")), vec![]),
        (filter(None, None, Some("a.l")), vec![]),
        (filter(None, Some("jürgen.öz"), None), vec![]),
        (filter(None, Some("Jürgen.Öz"), None), vec![gamma.id]),
    ];
    for (f, expected) in cases {
        let got = list_sessions(s, &f).await;
        assert_eq!(
            session_ids(&got),
            expected,
            "list_sessions: 'filters follow SessionFilter::matches exactly' for {f:?}"
        );
    }
}

/// `ping` succeeds when the backend answers.
pub async fn ping_succeeds(s: &TestStore) {
    let result = s.store.ping().await;
    assert!(
        result.is_ok(),
        "ping 'succeeds when the backend answers': got {result:?}"
    );
}

/// `responder` and `handoff_requested_at` are stored like every other field: as
/// given by `create_session`, changed by `update_session` (`handoff_requested_at`:
/// `Some(None)` clears it; a patch leaving them `None` keeps them), and returned
/// by every read that returns the session (`session`, `list_sessions`, `append`,
/// `begin_turn`, `message`, `list_messages`).
pub async fn responder_and_handoff_round_trip(s: &TestStore) {
    use colloquy_core::{MessageQuery, Responder};
    let rule = "update_session stores responder and handoff_requested_at";
    let asked = now(s) - Duration::minutes(3) + Duration::microseconds(7);

    let mut taken = new_session(s, "taken-over");
    taken.responder = Responder::Human;
    taken.handoff_requested_at = Some(asked);
    create_as(s, &taken).await;
    assert_eq!(
        get(s, "taken-over").await,
        Some(taken.clone()),
        "create_session 'stores a new session as given': responder and handoff_requested_at"
    );

    let plain = create(s, "handed-off").await;
    assert_eq!(
        (plain.responder, plain.handoff_requested_at),
        (Responder::Ai, None)
    );
    let mut expected = plain.clone();
    let steps = [
        SessionPatch {
            responder: Some(Responder::Human),
            handoff_requested_at: Some(Some(asked)),
            ..SessionPatch::default()
        },
        set_active(true),
        SessionPatch {
            handoff_requested_at: Some(None),
            ..SessionPatch::default()
        },
        SessionPatch {
            handoff_requested_at: Some(Some(asked + Duration::seconds(1))),
            ..SessionPatch::default()
        },
        SessionPatch {
            responder: Some(Responder::Ai),
            ..SessionPatch::default()
        },
        SessionPatch {
            responder: Some(Responder::Human),
            handoff_requested_at: Some(Some(asked)),
            ..SessionPatch::default()
        },
    ];
    for (i, patch) in steps.iter().enumerate() {
        let (how, reference) = both_refs(&plain)[i % 2].clone();
        patch.apply_to(&mut expected);
        let returned = s
            .store
            .update_session(&reference, patch)
            .await
            .unwrap_or_else(|e| panic!("update_session {how} with {patch:?} failed: {e:?}"));
        assert_eq!(returned, expected, "{rule}: returned after {patch:?} {how}");
        assert_eq!(
            get(s, "handed-off").await,
            Some(expected.clone()),
            "{rule}: read back after {patch:?} {how}"
        );
    }
    assert_eq!(expected.responder, Responder::Human);
    assert_eq!(expected.handoff_requested_at, Some(asked));

    let listed = list_sessions(s, &SessionFilter::default()).await;
    for want in [&expected, &taken] {
        assert_eq!(
            listed.iter().find(|x| x.id == want.id),
            Some(want),
            "list_sessions returns responder and handoff_requested_at"
        );
    }
    let (session, message) = s
        .store
        .append(&by_uuid(&expected), super::draft(s, Role::User, "hello?"))
        .await
        .expect("append");
    assert_eq!(session, expected, "append returns the session as stored");
    let turn = s
        .store
        .begin_turn(
            &by_sid(&expected),
            super::draft(s, Role::User, "anyone?"),
            4,
        )
        .await
        .expect("begin_turn");
    assert_eq!(
        turn.session, expected,
        "begin_turn returns the session as stored"
    );
    let (_, of_message) = get_message(s, message.id).await.expect("message");
    assert_eq!(
        of_message, expected,
        "message returns the session as stored"
    );
    let (listed_with, _) = s
        .store
        .list_messages(&by_uuid(&expected), &MessageQuery::newest(2))
        .await
        .expect("list_messages");
    assert_eq!(
        listed_with, expected,
        "list_messages returns the session as stored"
    );

    // Cleared again: both back to the defaults.
    let back = SessionPatch {
        responder: Some(Responder::Ai),
        handoff_requested_at: Some(None),
        ..SessionPatch::default()
    };
    update(s, &by_uuid(&expected), &back).await;
    let read = get(s, "handed-off").await.expect("still there");
    assert_eq!(
        (read.responder, read.handoff_requested_at),
        (Responder::Ai, None),
        "{rule}: Some(None) clears handoff_requested_at"
    );
}
