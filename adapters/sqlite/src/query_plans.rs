//! Every statement the store runs is served by an index: no full table scan and no
//! temporary sort, checked with `EXPLAIN QUERY PLAN` on the real schema.

use colloquy_core::{MessageFilter, Page, Role, SessionFilter};
use rusqlite::Connection;
use uuid::Uuid;

use crate::{messages, schema, sessions};

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
        let full_scan = step.starts_with("SCAN") && !step.contains("INDEX");
        assert!(!full_scan, "{what}: full table scan `{step}` in {steps:?}");
        assert!(
            !step.contains("TEMP B-TREE"),
            "{what}: sorts in a temporary b-tree `{step}` in {steps:?}"
        );
    }
    steps
}

#[test]
fn every_statement_uses_an_index() {
    let conn = schema::open_memory().expect("schema");
    let fixed = [
        (
            "delete expired holder",
            sessions::sql::DELETE_EXPIRED_HOLDER,
        ),
        ("session by id", sessions::sql::GET_BY_ID),
        ("session by session_id", sessions::sql::GET_BY_SESSION_ID),
        ("update session", sessions::sql::UPDATE),
        ("delete session", sessions::sql::DELETE_LIVE),
        ("purge", sessions::sql::PURGE_EXPIRED),
        ("session is live", messages::sql::SESSION_IS_LIVE),
        ("session is active", messages::sql::SESSION_IS_ACTIVE),
        ("message id taken", messages::sql::ID_TAKEN),
        ("last message", messages::sql::LAST),
        ("message by id", messages::sql::GET_STORED),
        ("recent messages", messages::sql::RECENT),
        ("soft delete", messages::sql::SOFT_DELETE),
        // The cascade from sessions looks messages up by session.
        ("cascade", "DELETE FROM messages WHERE session = ?1"),
    ];
    for (what, sql) in fixed {
        assert_indexed(&conn, what, sql);
    }
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
    for role in [None, Some(Role::User)] {
        for search in [None, Some("x".to_owned())] {
            let filter = MessageFilter { role, search };
            let (sql, _) = messages::list_statement(Uuid::nil(), &filter, page);
            let steps = assert_indexed(&conn, &format!("list messages {filter:?}"), &sql);
            assert!(
                steps
                    .iter()
                    .any(|s| s.contains("messages_live_by_position")),
                "lists skip their offset in the index that holds is_deleted: {steps:?}"
            );
        }
    }
    let steps = assert_indexed(&conn, "recent", messages::sql::RECENT);
    assert!(
        steps
            .iter()
            .any(|s| s.contains("messages_live_by_position")),
        "{steps:?}"
    );
}
