//! Every statement the store runs is served by an index: no full table scan and no
//! temporary sort, checked with `EXPLAIN QUERY PLAN` on the real schema. Message
//! pages and a chat turn's context are also checked to start at their place in the
//! index (a cursor is a range bound, not a filter), so they cost O(page) however
//! long the session.

use colloquy_core::{Cursor, MessageFilter, MessageQuery, Order, Page, Role, SessionFilter};
use rusqlite::Connection;
use uuid::Uuid;

use crate::messages::{self, Bound};
use crate::{idempotency, schema, sessions};

fn plan(conn: &Connection, sql: &str) -> Vec<String> {
    let mut stmt = conn
        .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
        .expect("statement prepares against the schema");
    let nulls = vec![rusqlite::types::Null; stmt.parameter_count()];
    stmt.query_map(rusqlite::params_from_iter(nulls), |row| {
        row.get::<_, String>(3)
    })
    .expect("explain runs")
    .collect::<Result<_, _>>()
    .expect("plan rows")
}

/// Fails unless every step of the plan uses an index (a `SCAN` in index order is
/// fine: with `LIMIT` it stops after the page) and nothing is sorted afterwards.
fn assert_indexed(conn: &Connection, what: &str, sql: &str) -> Vec<String> {
    let steps = plan(conn, sql);
    for step in &steps {
        // `SCAN CONSTANT ROW` is the one row of a `SELECT` without `FROM`.
        let full_scan =
            step.starts_with("SCAN") && !step.contains("INDEX") && step != "SCAN CONSTANT ROW";
        assert!(!full_scan, "{what}: full table scan `{step}` in {steps:?}");
        assert!(
            !step.contains("TEMP B-TREE"),
            "{what}: sorts in a temporary b-tree `{step}` in {steps:?}"
        );
    }
    steps
}

/// Fails unless some step is a `SEARCH` of `index` whose key includes `key` (e.g.
/// `position<?`): the statement starts at its place in the index.
fn assert_searches(what: &str, steps: &[String], index: &str, key: &str) {
    assert!(
        steps
            .iter()
            .any(|s| s.starts_with("SEARCH") && s.contains(index) && s.contains(key)),
        "{what}: expected a SEARCH of {index} on ({key}), got {steps:?}"
    );
}

#[test]
fn every_fixed_statement_uses_an_index() {
    let conn = schema::open_memory().expect("schema");
    let fixed = [
        ("session_id taken", sessions::sql::SESSION_ID_TAKEN),
        ("idempotency claim", idempotency::sql::CLAIM),
        ("idempotency held", idempotency::sql::HELD),
        ("idempotency complete", idempotency::sql::COMPLETE),
        ("idempotency release", idempotency::sql::RELEASE),
        ("idempotency purge", idempotency::sql::PURGE),
        ("session by id", sessions::sql::GET_BY_ID),
        ("session by session_id", sessions::sql::GET_BY_SESSION_ID),
        ("update session", sessions::sql::UPDATE),
        ("delete session", sessions::sql::DELETE),
        ("purge", sessions::sql::PURGE_EXPIRED),
        ("last message", messages::sql::LAST),
        ("message with its session", messages::sql::GET_WITH_SESSION),
        ("cursor position", messages::sql::CURSOR_POSITION),
        ("soft delete", messages::sql::SOFT_DELETE),
        ("set metadata", crate::console::sql::SET_METADATA),
        (
            "count a visitor's messages",
            crate::console::sql::COUNT_USER_MESSAGES,
        ),
        (
            "delete a visitor's sessions",
            crate::console::sql::DELETE_USER_SESSIONS,
        ),
        ("count", crate::console::sql::COUNT),
        ("message text", crate::console::sql::MESSAGE_TEXT),
        ("count a question", crate::console::sql::COUNT_QUESTION),
        ("stats hours", crate::console::sql::HOURS),
        ("stats questions", crate::console::sql::QUESTIONS),
        // The cascade from sessions looks messages up by session.
        ("cascade", "DELETE FROM messages WHERE session = ?1"),
    ];
    for (what, sql) in fixed {
        assert_indexed(&conn, what, sql);
    }
    // The live holder of a session_id is found by its key and expiry together.
    for (what, sql) in [
        ("session_id taken", sessions::sql::SESSION_ID_TAKEN),
        ("session by session_id", sessions::sql::GET_BY_SESSION_ID),
    ] {
        let steps = plan(&conn, sql);
        assert_searches(
            what,
            &steps,
            "sessions_live_by_session_id",
            "session_id=? AND expires_at>?",
        );
    }
    let steps = plan(&conn, sessions::sql::PURGE_EXPIRED);
    assert_searches("purge", &steps, "sessions_by_expiry", "expires_at<?");
    let steps = plan(&conn, idempotency::sql::PURGE);
    assert_searches(
        "idempotency purge",
        &steps,
        "idempotency_by_expiry",
        "expires_at<?",
    );
}

#[test]
fn every_session_list_uses_an_index() {
    let conn = schema::open_memory().expect("schema");
    let page = Page::default();
    for is_active in [None, Some(true)] {
        for external_user_id in [None, Some("u".to_owned())] {
            for search in [None, Some("x".to_owned())] {
                let filter = SessionFilter {
                    is_active,
                    external_user_id: external_user_id.clone(),
                    search: search.clone(),
                };
                let (sql, _) = sessions::list_statement(0, &filter, page);
                let steps = assert_indexed(&conn, &format!("list sessions {filter:?}"), &sql);
                if external_user_id.is_some() {
                    assert!(
                        steps
                            .iter()
                            .any(|s| s.contains("sessions_by_external_user")),
                        "the external_user_id filter uses its index: {steps:?}"
                    );
                }
            }
        }
    }
}

#[test]
fn every_message_page_starts_at_its_place_in_an_index() {
    let conn = schema::open_memory().expect("schema");
    let mut checked = 0;
    for role in [None, Some(Role::User)] {
        for search in [None, Some("x".to_owned())] {
            for order in [Order::Asc, Order::Desc] {
                for bound in [None, Some(Bound::Before(7)), Some(Bound::After(7))] {
                    let query = MessageQuery {
                        filter: MessageFilter {
                            role,
                            search: search.clone(),
                        },
                        order,
                        // The statement takes the cursor as `bound`, its position.
                        cursor: bound.map(|b| match b {
                            Bound::Before(_) => Cursor::Before(Uuid::nil()),
                            Bound::After(_) => Cursor::After(Uuid::nil()),
                        }),
                        page: Page::default(),
                    };
                    let what = format!("list messages {query:?} {bound:?}");
                    let (sql, _) = messages::list_statement(Uuid::nil(), &query, bound);
                    let steps = assert_indexed(&conn, &what, &sql);
                    // A role filter pages in the role index; the rest in the one that
                    // holds is_deleted, so soft-deleted rows are skipped in the index.
                    let (index, key) = match role {
                        Some(_) => (
                            "messages_live_by_role",
                            "session=? AND role=? AND is_deleted=?",
                        ),
                        None => ("messages_live_by_position", "session=? AND is_deleted=?"),
                    };
                    assert_searches(&what, &steps, index, key);
                    // A cursor is a range bound on the index, not a filter over it.
                    match bound {
                        Some(Bound::Before(_)) => {
                            assert_searches(&what, &steps, index, "position<?");
                        }
                        Some(Bound::After(_)) => {
                            assert_searches(&what, &steps, index, "position>?");
                        }
                        None => {}
                    }
                    checked += 1;
                }
            }
        }
    }
    assert_eq!(checked, 24, "every statement text the store can build");
}

#[test]
fn a_turns_context_reads_come_from_indexes() {
    let conn = schema::open_memory().expect("schema");
    let system = MessageQuery::oldest_of_role(Role::System, 20);
    let (sql, _) = messages::list_statement(Uuid::nil(), &system, None);
    let steps = assert_indexed(&conn, "turn: system messages", &sql);
    assert_searches(
        "turn: system messages",
        &steps,
        "messages_live_by_role",
        "session=? AND role=? AND is_deleted=?",
    );
    let (sql, _) = messages::list_statement(Uuid::nil(), &MessageQuery::newest(20), None);
    let steps = assert_indexed(&conn, "turn: recent messages", &sql);
    assert_searches(
        "turn: recent messages",
        &steps,
        "messages_live_by_position",
        "session=? AND is_deleted=?",
    );
}

#[test]
fn every_inbox_statement_uses_an_index_in_its_order() {
    use colloquy_core::inbox::{InboxCursor, InboxFilter, InboxQuery, InboxState};
    let conn = schema::open_memory().expect("schema");
    for (what, sql) in [
        ("inbox: appended", crate::inbox::sql::APPENDED),
        ("inbox: deleted", crate::inbox::sql::DELETED),
        ("inbox: rated", crate::inbox::sql::RATED),
        ("inbox: first question", crate::inbox::sql::FIRST_QUESTION),
        ("inbox: last message", crate::inbox::sql::LAST_MESSAGE),
    ] {
        assert_indexed(&conn, what, sql);
    }
    let at = chrono::Utc::now();
    for state in [None, Some(InboxState::Waiting)] {
        for rated_down in [false, true] {
            for external in [None, Some("u".to_owned())] {
                for range in [false, true] {
                    for after in [
                        None,
                        Some(InboxCursor {
                            last_activity_at: at,
                            id: Uuid::nil(),
                        }),
                    ] {
                        let query = InboxQuery {
                            filter: InboxFilter {
                                state,
                                rated_down,
                                external_user_id: external.clone(),
                                from: range.then_some(at),
                                to: range.then_some(at),
                            },
                            after,
                            limit: 50,
                        };
                        let (sql, _) = crate::inbox::page_statement(0, &query);
                        let steps = assert_indexed(&conn, &format!("inbox {query:?}"), &sql);
                        assert!(
                            steps.iter().any(|s| s.contains("sessions_inbox")),
                            "the inbox walks one of its indexes: {steps:?}"
                        );
                    }
                }
            }
        }
    }
}
