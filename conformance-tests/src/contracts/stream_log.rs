//! The [`StreamLog`] contracts: replay, follow-to-end, the active response, cancel
//! across handles, lease and log expiry. Each takes a fresh [`TestStreamLog`] and
//! uses only the port.
//!
//! [`StreamLog`]: colloquy_core::streams::StreamLog

use std::future::Future;
use std::time::Duration;

use colloquy_core::streams::{CancelOutcome, LogRead, LogState, StreamLog, StreamMeta};
use colloquy_core::{ChatEvent, ErrorCode, FinishReason, Metadata, Session};
use tokio::sync::oneshot;
use tokio::time::Instant;
use uuid::Uuid;

use crate::{TestStreamLog, EXPIRY_SLACK};

/// A fresh response of a fresh session.
fn meta() -> StreamMeta {
    meta_of(Uuid::new_v4())
}

/// The `session_id` of the session `session` in these contracts.
fn session_id_of(session: Uuid) -> String {
    format!("conformance-{}", session.simple())
}

/// A fresh response of the session `session`.
fn meta_of(session: Uuid) -> StreamMeta {
    StreamMeta {
        response_id: Uuid::new_v4(),
        message_id: Uuid::new_v4(),
        session,
        session_id: session_id_of(session),
    }
}

fn chunk(seq: u64) -> ChatEvent {
    ChatEvent::Chunk {
        seq,
        text: format!("piece {seq} · ✓ "),
    }
}

fn done(seq: u64) -> ChatEvent {
    ChatEvent::Done {
        seq,
        finish_reason: FinishReason::Stop,
        sources: None,
    }
}

/// `n` chunks, then `done`.
fn answer(n: u64) -> Vec<ChatEvent> {
    (0..n).map(chunk).chain([done(n)]).collect()
}

async fn append_all(log: &dyn StreamLog, response: Uuid, events: &[ChatEvent]) {
    for event in events {
        log.append(response, event)
            .await
            .unwrap_or_else(|e| panic!("append of seq {} failed: {e}", event.seq()));
    }
}

async fn read(log: &dyn StreamLog, response: Uuid, from: u64) -> Option<LogRead> {
    log.read(response, from)
        .await
        .unwrap_or_else(|e| panic!("read({response}, {from}) failed: {e}"))
}

/// The read of a log that must be kept.
async fn kept(log: &dyn StreamLog, response: Uuid, from: u64, rule: &str) -> LogRead {
    read(log, response, from)
        .await
        .unwrap_or_else(|| panic!("{rule}\n  expected: the log of {response}\n  got:      None"))
}

async fn active(log: &dyn StreamLog, session: Uuid) -> Option<Uuid> {
    let now = chrono::Utc::now();
    let session_record = Session {
        id: session,
        session_id: session_id_of(session),
        external_user_id: None,
        created_at: now,
        expires_at: now + chrono::Duration::hours(1),
        is_active: true,
        responder: colloquy_core::Responder::Ai,
        handoff_requested_at: None,
        metadata: Metadata::new(),
    };
    log.active(&session_record)
        .await
        .unwrap_or_else(|e| panic!("active({session}) failed: {e}"))
}

async fn start(log: &dyn StreamLog, meta: &StreamMeta) {
    log.start(meta)
        .await
        .unwrap_or_else(|e| panic!("start of {} failed: {e}", meta.response_id));
}

/// Polls `check` until it returns `Some`, at most `within`: for expiry, which no
/// event announces. Panics with `what` when the time is up.
async fn eventually<T, F, Fut>(what: &str, within: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + within;
    loop {
        if let Some(found) = check().await {
            return found;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: not within {within:?} (the TTL plus EXPIRY_SLACK)"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// "`read`: `None` when no log of this response is kept"; a cancel of it finds
/// nothing, and no session has it active.
pub async fn unknown_response_is_absent(s: &TestStreamLog) {
    let unknown = Uuid::new_v4();
    assert_eq!(
        read(&*s.log, unknown, 0).await,
        None,
        "read of a response never started must be None"
    );
    let cancel = s.log.request_cancel(unknown).await.expect("request_cancel");
    assert_eq!(
        cancel,
        CancelOutcome::Unknown,
        "request_cancel of a response never started must be Unknown"
    );
    assert!(
        !s.log
            .cancel_requested(unknown)
            .await
            .expect("cancel_requested"),
        "cancel_requested of a response never started must be false"
    );
    assert_eq!(
        active(&*s.log, Uuid::new_v4()).await,
        None,
        "a session that started nothing has no active response"
    );
}

/// "`read`: the response's events with `seq >= from`, in order, and its state" — on
/// the handle that appended them and on another instance's.
pub async fn replay_returns_the_events_in_order_from_any_seq(s: &TestStreamLog) {
    let m = meta();
    start(&*s.log, &m).await;
    let started = kept(&*s.log, m.response_id, 0, "a started log is kept").await;
    assert_eq!(
        started.meta, m,
        "read returns the meta the log was started with"
    );
    assert_eq!(started.events, Vec::new(), "a started log is empty");
    assert_eq!(started.state, LogState::Running, "a started log is running");

    let events = answer(5);
    append_all(&*s.log, m.response_id, &events[..3]).await;
    for (name, log) in [
        ("the appending handle", &s.log),
        ("another handle", &s.other),
    ] {
        let running = kept(&**log, m.response_id, 0, "a running log is kept").await;
        assert_eq!(
            running.events,
            events[..3],
            "{name}: replay from 0, in order"
        );
        assert_eq!(running.state, LogState::Running, "{name}: still running");
        assert_eq!(running.meta, m, "{name}: the meta");
    }
    append_all(&*s.log, m.response_id, &events[3..]).await;
    for (name, log) in [
        ("the appending handle", &s.log),
        ("another handle", &s.other),
    ] {
        for from in 0..=6u64 {
            let got = kept(&**log, m.response_id, from, "a completed log is kept").await;
            let expected: Vec<ChatEvent> =
                events.iter().filter(|e| e.seq() >= from).cloned().collect();
            assert_eq!(
                got.events, expected,
                "{name}: read from seq {from} returns the events with seq >= {from}, in order"
            );
            assert_eq!(got.state, LogState::Complete, "{name}: complete after done");
        }
    }
}

async fn page(log: &dyn StreamLog, response: Uuid, from: u64, max: usize) -> Option<LogRead> {
    log.read_page(response, from, max)
        .await
        .unwrap_or_else(|e| panic!("read_page({response}, {from}, {max}) failed: {e}"))
}

/// "`read_page`: `read` of at most `max` events (at least one, when there is one)":
/// the first `max` of what `read` returns, with the same meta and state, on either
/// handle; `None` where `read` is.
pub async fn a_page_is_the_first_events_of_a_read(s: &TestStreamLog) {
    let unknown = Uuid::new_v4();
    assert_eq!(
        page(&*s.log, unknown, 0, 3).await,
        None,
        "read_page of a response never started is None"
    );
    let m = meta();
    start(&*s.log, &m).await;
    let empty = page(&*s.log, m.response_id, 0, 3).await;
    assert_eq!(
        empty.map(|r| (r.events, r.state)),
        Some((Vec::new(), LogState::Running)),
        "read_page of a started, empty log: no events, running"
    );
    let events = answer(6);
    append_all(&*s.log, m.response_id, &events[..4]).await;
    let running = page(&*s.log, m.response_id, 1, 2)
        .await
        .expect("a running log is kept");
    assert_eq!(
        (running.events, running.state, running.meta),
        (events[1..3].to_vec(), LogState::Running, m.clone()),
        "read_page from 1, at most 2, of a running log"
    );
    append_all(&*s.log, m.response_id, &events[4..]).await;
    for (name, log) in [
        ("the appending handle", &s.log),
        ("another handle", &s.other),
    ] {
        for from in 0..=7_u64 {
            for max in [0, 1, 2, 3, 100] {
                let whole = kept(&**log, m.response_id, from, "a completed log is kept").await;
                let got = page(&**log, m.response_id, from, max)
                    .await
                    .expect("a completed log is kept");
                let expected: Vec<ChatEvent> =
                    whole.events.iter().take(max.max(1)).cloned().collect();
                assert_eq!(
                    (got.events, got.state, got.meta),
                    (expected, whole.state, whole.meta),
                    "{name}: read_page from {from}, at most {max} (0 reads one), is the first \
                     events of read from {from}"
                );
            }
        }
    }
}

/// A follower that reads, then waits with `changed` and reads again, sees every
/// event exactly once, in order, up to the terminal one, while another handle
/// appends them.
pub async fn a_follower_sees_every_event_to_the_end(s: &TestStreamLog) {
    let m = meta();
    start(&*s.log, &m).await;
    let events = answer(20);
    append_all(&*s.log, m.response_id, &events[..2]).await;
    let (first_read, read_once) = oneshot::channel::<()>();
    let follower = tokio::spawn({
        let log = std::sync::Arc::clone(&s.other);
        let response = m.response_id;
        async move {
            let mut seen: Vec<ChatEvent> = Vec::new();
            let mut first_read = Some(first_read);
            loop {
                let from = seen.last().map_or(0, |e| e.seq() + 1);
                let got = read(&*log, response, from)
                    .await
                    .expect("a followed log is kept while it runs and after it completes");
                seen.extend(got.events);
                if let Some(signal) = first_read.take() {
                    let _ = signal.send(());
                }
                if got.state == LogState::Complete {
                    return seen;
                }
                assert_eq!(
                    got.state,
                    LogState::Running,
                    "a renewed-free log within its lease"
                );
                let after = seen.last().map_or(0, ChatEvent::seq);
                log.changed(response, after, Duration::from_millis(500))
                    .await;
            }
        }
    });
    read_once.await.expect("the follower read once");
    append_all(&*s.log, m.response_id, &events[2..]).await;
    let seen = follower.await.expect("the follower finished");
    assert_eq!(
        seen, events,
        "a follower gets every event once, in order, up to the terminal event"
    );
}

/// "`changed`: waits until events after `after` may have been appended, or at most
/// `within`": with nothing appended it returns (by its bound), and `read` then sees
/// what was appended meanwhile.
pub async fn changed_returns_within_its_bound_then_read_sees_new_events(s: &TestStreamLog) {
    let m = meta();
    start(&*s.log, &m).await;
    s.log
        .append(m.response_id, &chunk(0))
        .await
        .expect("append");
    let within = Duration::from_millis(200);
    let returned = tokio::time::timeout(
        within + EXPIRY_SLACK,
        s.other.changed(m.response_id, 0, within),
    )
    .await;
    assert!(
        returned.is_ok(),
        "changed with nothing new must return by its bound ({within:?}), it hung"
    );
    let waiter = tokio::spawn({
        let log = std::sync::Arc::clone(&s.other);
        let response = m.response_id;
        async move { log.changed(response, 0, Duration::from_secs(2)).await }
    });
    s.log
        .append(m.response_id, &chunk(1))
        .await
        .expect("append");
    tokio::time::timeout(Duration::from_secs(2) + EXPIRY_SLACK, waiter)
        .await
        .expect("changed must return by its bound")
        .expect("the waiting task");
    let got = kept(&*s.other, m.response_id, 1, "a running log is kept").await;
    assert_eq!(
        got.events,
        vec![chunk(1)],
        "after changed returns, read sees the event appended meanwhile"
    );
}

/// "A terminal event completes the log ... and the session's active response is
/// cleared if it still names this one" — for `done` and for `failed`; the terminal
/// event is the log's last.
pub async fn a_terminal_event_completes_the_log_and_clears_the_active_response(s: &TestStreamLog) {
    let failed = ChatEvent::Failed {
        seq: 1,
        code: ErrorCode::LlmUnavailable,
    };
    for terminal in [done(1), failed] {
        let m = meta();
        start(&*s.log, &m).await;
        assert_eq!(
            active(&*s.other, m.session).await,
            Some(m.response_id),
            "start makes the response its session's active response"
        );
        append_all(&*s.log, m.response_id, &[chunk(0), terminal.clone()]).await;
        let got = kept(
            &*s.other,
            m.response_id,
            0,
            "a completed log is kept a while",
        )
        .await;
        assert_eq!(
            got.state,
            LogState::Complete,
            "{terminal:?} completes the log"
        );
        assert_eq!(
            got.events,
            vec![chunk(0), terminal.clone()],
            "with its events"
        );
        assert_eq!(
            active(&*s.other, m.session).await,
            None,
            "{terminal:?} clears the session's active response naming it"
        );
        let cancel = s.other.request_cancel(m.response_id).await.expect("cancel");
        assert_eq!(
            cancel,
            CancelOutcome::AlreadyComplete,
            "cancelling a completed response is AlreadyComplete"
        );
    }
}

/// "makes it its session's active response (the newest started wins)"; an older
/// response completing leaves the newer one active; sessions are separate.
pub async fn the_newest_start_wins_the_active_pointer(s: &TestStreamLog) {
    let session = Uuid::new_v4();
    let older = meta_of(session);
    let newer = meta_of(session);
    let elsewhere = meta();
    start(&*s.log, &older).await;
    start(&*s.other, &elsewhere).await;
    start(&*s.other, &newer).await;
    assert_eq!(
        active(&*s.log, session).await,
        Some(newer.response_id),
        "the newest started response is the session's active one"
    );
    assert_eq!(
        active(&*s.log, elsewhere.session).await,
        Some(elsewhere.response_id),
        "another session's active response is its own"
    );
    append_all(&*s.log, older.response_id, &answer(1)).await;
    assert_eq!(
        active(&*s.log, session).await,
        Some(newer.response_id),
        "an older response completing does not clear the pointer naming a newer one"
    );
    s.log
        .renew(&older)
        .await
        .expect("renew of a completed response");
    assert_eq!(
        active(&*s.log, session).await,
        Some(newer.response_id),
        "renewing an older response does not take the pointer back"
    );
    append_all(&*s.other, newer.response_id, &answer(2)).await;
    assert_eq!(
        active(&*s.log, session).await,
        None,
        "the newest completing clears it"
    );
    assert_eq!(
        active(&*s.log, elsewhere.session).await,
        Some(elsewhere.response_id),
        "other sessions are untouched"
    );
}

/// "Asks the generation of `response` to stop, wherever it runs": a cancel through
/// one handle is seen through the other; only that response is cancelled.
pub async fn a_cancel_is_visible_from_another_handle(s: &TestStreamLog) {
    let m = meta();
    let bystander = meta_of(m.session);
    start(&*s.log, &bystander).await;
    start(&*s.log, &m).await;
    s.log
        .append(m.response_id, &chunk(0))
        .await
        .expect("append");
    assert!(
        !s.log
            .cancel_requested(m.response_id)
            .await
            .expect("cancel_requested"),
        "no cancel was requested yet"
    );
    let outcome = s.other.request_cancel(m.response_id).await.expect("cancel");
    assert_eq!(
        outcome,
        CancelOutcome::Requested,
        "cancelling a running response"
    );
    assert!(
        s.log
            .cancel_requested(m.response_id)
            .await
            .expect("cancel_requested"),
        "a cancel requested on another handle is seen by the generating one"
    );
    assert!(
        !s.log
            .cancel_requested(bystander.response_id)
            .await
            .expect("cancel_requested"),
        "only the cancelled response is cancelled"
    );
    let again = s.other.request_cancel(m.response_id).await.expect("cancel");
    assert_eq!(
        again,
        CancelOutcome::Requested,
        "cancelling a running response twice still asks it to stop"
    );
    let cancelled = ChatEvent::Done {
        seq: 1,
        finish_reason: FinishReason::Cancelled,
        sources: None,
    };
    s.log
        .append(m.response_id, &cancelled)
        .await
        .expect("append");
    assert_eq!(
        s.other.request_cancel(m.response_id).await.expect("cancel"),
        CancelOutcome::AlreadyComplete,
        "once its terminal event is in, the response is complete"
    );
    let got = kept(&*s.other, m.response_id, 0, "a completed log is kept").await;
    assert_eq!(
        got.events,
        vec![chunk(0), cancelled],
        "the cancelled log's events"
    );
}

/// Starts a response on the hasty log and waits until its lease has run out (its
/// log reads other than `Running`); returns it and that read.
async fn abandoned(s: &TestStreamLog) -> (StreamMeta, Option<LogRead>) {
    let log = &*s.hasty;
    let m = meta();
    start(log, &m).await;
    log.append(m.response_id, &chunk(0)).await.expect("append");
    let within = log.lease() + EXPIRY_SLACK;
    let read = eventually("the lease runs out", within, || async {
        match read(log, m.response_id, 0).await {
            Some(got) if got.state == LogState::Running => None,
            other => Some(other),
        }
    })
    .await;
    (m, read)
}

/// "A log whose lease ran out before it completed was abandoned": its state is
/// `Abandoned`, its events kept.
pub async fn an_expired_lease_abandons_the_log(s: &TestStreamLog) {
    let (_, read) = abandoned(s).await;
    let got = read.unwrap_or_else(|| {
        panic!(
            "an abandoned log must stay readable for its retention ({:?}), it was gone",
            s.hasty_retention
        )
    });
    assert_eq!(
        got.state,
        LogState::Abandoned,
        "a log past its lease, not complete"
    );
    assert_eq!(
        got.events,
        vec![chunk(0)],
        "an abandoned log keeps its events"
    );
}

/// "`active`: the newest started whose log is running and whose lease is live;
/// `None` otherwise": once the log reads abandoned, the session has no active
/// response.
pub async fn an_expired_lease_clears_the_active_response(s: &TestStreamLog) {
    let (m, _) = abandoned(s).await;
    assert_eq!(
        active(&*s.hasty, m.session).await,
        None,
        "a session whose response's lease ran out has no active response"
    );
}

/// "The log is complete with its terminal event; it is kept for a short while after
/// that": after the retention `read` is `None`.
pub async fn a_completed_log_expires_after_its_retention(s: &TestStreamLog) {
    let log = &*s.hasty;
    let m = meta();
    start(log, &m).await;
    append_all(log, m.response_id, &answer(2)).await;
    let within = s.hasty_retention + EXPIRY_SLACK;
    eventually("a completed log expires", within, || async {
        read(log, m.response_id, 0).await.is_none().then_some(())
    })
    .await;
    assert_eq!(
        log.request_cancel(m.response_id).await.expect("cancel"),
        CancelOutcome::Unknown,
        "an expired log is unknown to cancel"
    );
}
