mod common;

use chrono::Duration;
use colloquy_core::ports::ChatStore;
use colloquy_core::*;
use uuid::Uuid;

fn session(clock: &ManualClock, sid: &str) -> Session {
    let now = clock.now();
    Session {
        id: Uuid::new_v4(),
        session_id: sid.into(),
        external_user_id: Some("User\0X".into()),
        created_at: now,
        expires_at: now + Duration::hours(1),
        is_active: true,
        metadata: serde_json::json!({"a": "\u{0}b", "n": 1.5}).as_object().cloned().unwrap_or_default(),
    }
}

fn draft(clock: &ManualClock, role: Role, text: &str) -> MessageDraft {
    MessageDraft { id: Uuid::new_v4(), role, message: text.into(), metadata: Metadata::new(), timestamp: clock.now() }
}

#[tokio::test]
async fn smoke() {
    let Some((store, clock, schema)) = common::manual().await else { return };
    let s = session(&clock, "abc");
    store.create_session(&s).await.expect("create");
    assert!(matches!(store.create_session(&session(&clock, "abc")).await, Err(StoreError::Conflict(Entity::Session))));
    let got = store.session(&SessionRef::parse("abc")).await.expect("get");
    assert_eq!(got.as_ref(), Some(&s));
    let got = store.session(&SessionRef::from_uuid(s.id)).await.expect("get");
    assert_eq!(got.as_ref(), Some(&s));
    let r = SessionRef::parse("abc");
    let (_, m1) = store.append(&r, draft(&clock, Role::System, "Be nice\0")).await.expect("append");
    let (_, m2) = store.append(&r, draft(&clock, Role::User, "Hello ΣΑΣ")).await.expect("append");
    let turn = store.begin_turn(&r, draft(&clock, Role::User, "again"), 10).await.expect("turn");
    assert_eq!(turn.system, vec![m1.clone()]);
    assert_eq!(turn.recent.len(), 3);
    assert_eq!(turn.recent[1], m2);
    let q = MessageQuery { filter: MessageFilter { role: None, search: Some("σας".into()) }, ..MessageQuery::default() };
    let (_, page) = store.list_messages(&r, &q).await.expect("list");
    assert_eq!(page, vec![m2.clone()]);
    let q = MessageQuery { cursor: Some(Cursor::Before(turn.message.id)), order: Order::Desc, ..MessageQuery::default() };
    let (_, page) = store.list_messages(&r, &q).await.expect("list");
    assert_eq!(page, vec![m2.clone(), m1.clone()]);
    let list = store.list_sessions(&SessionFilter { search: Some("user\0x".into()), ..Default::default() }, Page::default()).await.expect("ls");
    assert_eq!(list, vec![s.clone()]);
    assert_eq!(store.message(m2.id).await.expect("m"), Some((m2.clone(), s.clone())));
    store.delete_message(m2.id).await.expect("del");
    assert!(matches!(store.delete_message(m2.id).await, Err(StoreError::NotFound(Entity::Message))));
    clock.advance(Duration::hours(2));
    assert_eq!(store.session(&r).await.expect("get"), None);
    let s2 = session(&clock, "abc");
    store.create_session(&s2).await.expect("reuse");
    assert_eq!(store.purge_expired(clock.now()).await.expect("purge"), 1);
    assert_eq!(store.session(&r).await.expect("get"), Some(s2));
    store.close();
    schema.drop().await;
}
