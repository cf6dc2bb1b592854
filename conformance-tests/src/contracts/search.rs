//! Search: `search_messages(query, page)` finds messages by the words of their text
//! across every live session (see `colloquy_core::search`).

use chrono::Duration;
use colloquy_core::{ChatMessage, Page, Role, Session};
use uuid::Uuid;

use super::{by_uuid, create, delete_message, draft_at, now};
use crate::TestStore;

async fn search(s: &TestStore, query: &str, page: Page) -> Vec<(ChatMessage, Session)> {
    match s.store.search_messages(query, page).await {
        Ok(found) => found,
        Err(e) => panic!("search_messages({query:?}, {page:?}) failed: {e:?}"),
    }
}

fn ids(found: &[(ChatMessage, Session)]) -> Vec<Uuid> {
    found.iter().map(|(m, _)| m.id).collect()
}

async fn said(
    s: &TestStore,
    session: &Session,
    role: Role,
    text: &str,
    minutes: i64,
) -> ChatMessage {
    let at = now(s) + Duration::minutes(minutes);
    match s
        .store
        .append(&by_uuid(session), draft_at(role, text, at))
        .await
    {
        Ok((_, m)) => m,
        Err(e) => panic!("setup step append({text:?}) failed: {e:?}"),
    }
}

/// `search_messages` returns the non-deleted messages of live sessions whose every
/// query word begins a word of the text, case-insensitively, in any session and of
/// any role, each with its session, newest first, paged; a query without words
/// finds nothing.
pub async fn search_finds_messages_by_word_prefixes_across_sessions(s: &TestStore) {
    let rule = "search_messages 'returns the non-deleted messages of live sessions whose text \
                matches the query, ... newest timestamp first'";
    let a = create(s, "search-a").await;
    let b = create(s, "search-b").await;
    let gone = create(s, "search-expired").await;
    let q1 = said(s, &a, Role::User, "What are your PRICES for delivery?", 1).await;
    let r1 = said(s, &a, Role::Assistant, "Delivery price: 5 euros.", 2).await;
    let q2 = said(s, &b, Role::User, "Is delivery free on Sundays?", 3).await;
    let hidden = said(s, &b, Role::User, "delivery prices again", 4).await;
    delete_message(s, hidden.id).await;
    said(s, &b, Role::User, "caprice undelivered", 5).await;
    let doomed = colloquy_core::SessionPatch {
        expires_at: Some(now(s) + Duration::minutes(30)),
        ..colloquy_core::SessionPatch::default()
    };
    super::update(s, &by_uuid(&gone), &doomed).await;
    said(s, &gone, Role::User, "delivery price (expired)", 6).await;
    s.clock.advance(Duration::minutes(31));

    let page = Page {
        limit: 10,
        offset: 0,
    };
    let found = search(s, "deliv PRIC", page).await;
    assert_eq!(
        ids(&found),
        [r1.id, q1.id],
        "{rule}: every word must begin a word of the text; soft-deleted messages and \
         expired sessions are left out; newest first"
    );
    assert_eq!(found[0].1, a, "each message comes with its session");
    let found = search(s, "delivery", page).await;
    assert_eq!(
        ids(&found),
        [q2.id, r1.id, q1.id],
        "{rule}: across sessions"
    );
    let second = search(
        s,
        "delivery",
        Page {
            limit: 1,
            offset: 1,
        },
    )
    .await;
    assert_eq!(
        ids(&second),
        [r1.id],
        "search_messages pages like lists: offset, then limit"
    );
    assert!(
        search(s, " ?! ", page).await.is_empty(),
        "search_messages: 'a query without words finds nothing'"
    );
    assert!(
        search(s, "livery", page).await.is_empty(),
        "search_messages: a word inside another word is no match"
    );
}
