//! Case-insensitive search agrees with `MessageFilter::matches` and
//! `SessionFilter::matches` (Rust's `to_lowercase` + `contains`), checked against the
//! real server's ICU lowercasing for every code point and through the store.

mod common;

use chrono::Duration;
use colloquy_core::ports::ChatStore;
use colloquy_core::{
    ChatMessage, Clock, MessageDraft, MessageFilter, MessageQuery, Metadata, Page, Role, Session,
    SessionFilter, SessionRef,
};
use uuid::Uuid;

/// Code points whose lowercase mapping is newer than Unicode 15 (ICU 72, which
/// Debian 12's PostgreSQL 15 uses): Rust lowercases them, an older ICU does not. The
/// crate docs list this gap; a server with a newer ICU simply has fewer.
fn newer_than_unicode_15(c: u32) -> bool {
    matches!(
        c,
        0x1C89 | 0xA7CB | 0xA7CC | 0xA7CE | 0xA7D2 | 0xA7D4 | 0xA7DA | 0xA7DC
            | 0x10D50..=0x10D65
            | 0x16EA0..=0x16EB8
    )
}

#[tokio::test]
async fn every_code_point_lowercases_as_in_rust_but_the_documented_gap() {
    let Some((store, _clock, schema)) = common::manual().await else {
        return;
    };
    let client = common::raw_client().await;
    // Only the code points ICU changes come back; all others it leaves alone.
    let rows = client
        .query(
            "SELECT i, lower(chr(i) COLLATE \"und-x-icu\") FROM generate_series(1, 1114111) i
             WHERE (i < 55296 OR i > 57343) AND lower(chr(i) COLLATE \"und-x-icu\") <> chr(i)",
            &[],
        )
        .await
        .expect("lowercase every code point");
    let icu: std::collections::HashMap<u32, String> = rows
        .iter()
        .map(|r| {
            let i: i32 = r.get(0);
            (u32::try_from(i).expect("positive"), r.get::<_, String>(1))
        })
        .collect();
    assert!(icu.len() > 1400, "ICU lowercases {} code points", icu.len());
    let mut differ = Vec::new();
    for i in 1..=0x10_FFFF_u32 {
        let Some(c) = char::from_u32(i) else { continue };
        let rust: String = c.to_lowercase().collect();
        let server = icu.get(&i).cloned().unwrap_or_else(|| c.to_string());
        if rust != server && !newer_than_unicode_15(i) {
            differ.push(format!("U+{i:04X} rust={rust:?} server={server:?}"));
        }
    }
    assert!(differ.is_empty(), "lowercasing differs: {differ:?}");

    // Context-dependent mappings: final sigma, dotted capital I, titlecase digraphs.
    for s in [
        "ΣΑΣ",
        "ὈΔΥΣΣΕΎΣ",
        "AΣ.b",
        "Σ",
        "aΣ\u{10FFFF}",
        "İstanbul",
        "ǅemal",
        "ẞtraße",
        "ΌΣΟΣ ΜΕΣΑ",
    ] {
        let server: String = client
            .query_one("SELECT lower($1::text COLLATE \"und-x-icu\")", &[&s])
            .await
            .expect("lower")
            .get(0);
        assert_eq!(server, s.to_lowercase(), "{s:?}");
    }
    store.close();
    schema.drop().await;
}

const TEXTS: &[&str] = &[
    "Hello World",
    "ÄRGER im Büro",
    "ΟΔΥΣΣΕΥΣ",
    "50% off_now",
    "5000 offer",
    "İstanbul",
    "straße",
    "null\0byte",
    "tab\there",
    "emoji 🎉 Party",
    "\u{10FFFE} marker",
];

const NEEDLES: &[&str] = &[
    "",
    "hello",
    "WORLD",
    "ärger",
    "odysseus",
    "οδυσσευσ",
    "οδυσσευς",
    "50%",
    "%",
    "_",
    "f_n",
    "0 o",
    "i̇stanbul",
    "istanbul",
    "STRASSE",
    "straße",
    "\0",
    "l\0b",
    "\t",
    "🎉 party",
    "marker",
];

fn message(session: Uuid, text: &str) -> ChatMessage {
    ChatMessage {
        id: Uuid::new_v4(),
        session,
        message: text.into(),
        role: Role::User,
        metadata: Metadata::new(),
        timestamp: chrono::Utc::now(),
        is_deleted: false,
    }
}

#[tokio::test]
async fn message_search_agrees_with_the_filter_definition() {
    let Some((store, clock, schema)) = common::manual().await else {
        return;
    };
    let now = clock.now();
    let session = Session {
        id: Uuid::new_v4(),
        session_id: "search".into(),
        external_user_id: None,
        created_at: now,
        expires_at: now + Duration::hours(1),
        is_active: true,
        responder: colloquy_core::Responder::Ai,
        handoff_requested_at: None,
        metadata: Metadata::new(),
    };
    store.create_session(&session).await.expect("create");
    let reference = SessionRef::from_uuid(session.id);
    let mut stored = Vec::new();
    for text in TEXTS {
        let m = message(session.id, text);
        let draft = MessageDraft {
            id: m.id,
            role: m.role,
            message: m.message.clone(),
            metadata: Metadata::new(),
            timestamp: now,
        };
        let (_, m) = store.append(&reference, draft).await.expect("append");
        stored.push(m);
    }
    for needle in NEEDLES {
        let filter = MessageFilter {
            role: None,
            search: Some((*needle).to_owned()),
        };
        let expected: Vec<&str> = stored
            .iter()
            .filter(|m| filter.matches(m))
            .map(|m| m.message.as_str())
            .collect();
        let query = MessageQuery {
            filter,
            page: Page {
                limit: 100,
                offset: 0,
            },
            ..MessageQuery::default()
        };
        let (_, page) = store.list_messages(&reference, &query).await.expect("list");
        let found: Vec<&str> = page.iter().map(|m| m.message.as_str()).collect();
        assert_eq!(found, expected, "needle {needle:?}");
    }
    store.close();
    schema.drop().await;
}

#[tokio::test]
async fn session_search_agrees_with_the_filter_definition() {
    let Some((store, clock, schema)) = common::manual().await else {
        return;
    };
    let now = clock.now();
    let mut sessions = Vec::new();
    for (i, text) in TEXTS.iter().enumerate() {
        let session = Session {
            id: Uuid::new_v4(),
            session_id: format!("Sess-{i}_X"),
            external_user_id: (i % 3 != 0).then(|| (*text).to_owned()),
            created_at: now + Duration::seconds(i64::try_from(i).expect("small")),
            expires_at: now + Duration::hours(1),
            is_active: true,
            responder: colloquy_core::Responder::Ai,
            handoff_requested_at: None,
            metadata: Metadata::new(),
        };
        store.create_session(&session).await.expect("create");
        sessions.push(session);
    }
    sessions.reverse(); // newest first, the list order
    for needle in NEEDLES.iter().chain(&["sess-1", "_x", "S"]) {
        let filter = SessionFilter {
            search: Some((*needle).to_owned()),
            ..SessionFilter::default()
        };
        let expected: Vec<&str> = sessions
            .iter()
            .filter(|s| filter.matches(s))
            .map(|s| s.session_id.as_str())
            .collect();
        let found = store
            .list_sessions(&filter, Page::default())
            .await
            .expect("list");
        let found: Vec<&str> = found.iter().map(|s| s.session_id.as_str()).collect();
        assert_eq!(found, expected, "needle {needle:?}");
    }
    store.close();
    schema.drop().await;
}
