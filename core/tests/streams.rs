//! Resume, cancel and the active response, over the in-process stream log: what a
//! client that lost its connection (or reloaded the page) gets back.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use colloquy_core::local::LocalStreamLog;
use colloquy_core::ports::{ChatModel, ChatStore, ModelStream};
use colloquy_core::streams::{StreamLog, StreamMeta};
use colloquy_core::{
    validate, ChatEvent, ChatService, Completion, ErrorCode, FinishInfo, FinishReason, ManualClock,
    ModelError, ModelEvent, ModelRequest, Resume, ResumePoint, SessionRef,
};
use colloquy_memory::MemoryStore;
use futures::{Stream, StreamExt};
use serde_json::json;
use tokio::sync::Semaphore;
use uuid::Uuid;

const WORDS: [&str; 4] = ["one ", "two ", "three ", "four"];

/// Streams `WORDS`; every word after the first waits for a permit.
struct GatedModel(Arc<Semaphore>);

#[async_trait]
impl ChatModel for GatedModel {
    async fn complete(&self, _: &ModelRequest) -> Result<Completion, ModelError> {
        Ok(Completion {
            text: WORDS.concat(),
            info: FinishInfo::default(),
        })
    }
    async fn stream(&self, _: &ModelRequest) -> Result<ModelStream, ModelError> {
        let gate = Arc::clone(&self.0);
        Ok(futures::stream::iter(WORDS.iter().enumerate())
            .then(move |(i, word)| {
                let gate = Arc::clone(&gate);
                async move {
                    if i > 0 {
                        if let Ok(permit) = gate.acquire().await {
                            permit.forget();
                        }
                    }
                    Ok(ModelEvent::Delta((*word).to_owned()))
                }
            })
            .boxed())
    }
}

struct Harness {
    service: ChatService,
    store: Arc<MemoryStore>,
    log: Arc<LocalStreamLog>,
    gate: Arc<Semaphore>,
    session_id: String,
}

async fn harness(log: LocalStreamLog) -> Harness {
    let clock = Arc::new(ManualClock::new());
    let store = Arc::new(MemoryStore::new(clock.clone()));
    let gate = Arc::new(Semaphore::new(0));
    let log = Arc::new(log);
    let service = ChatService::builder(store.clone(), clock)
        .model(Arc::new(GatedModel(Arc::clone(&gate))))
        .stream_log(log.clone())
        .build();
    let session_id = service
        .create_session(validate::new_session(&json!({}), service.limits()).expect("valid"))
        .await
        .expect("session")
        .session_id;
    Harness {
        service,
        store,
        log,
        gate,
        session_id,
    }
}

fn ask(h: &Harness, text: &str) -> colloquy_core::NewMessage {
    validate::chat_request(
        &json!({"session_id": h.session_id, "message": text}),
        h.service.limits(),
    )
    .expect("valid")
}

/// The next event, within a deadline.
async fn next<S: Stream<Item = ChatEvent> + Unpin>(events: &mut S) -> ChatEvent {
    tokio::time::timeout(Duration::from_secs(10), events.next())
        .await
        .expect("an event within 10 s")
        .expect("the stream has not ended")
}

/// Every event to the end, within a deadline.
async fn rest<S: Stream<Item = ChatEvent> + Unpin>(events: &mut S) -> Vec<ChatEvent> {
    tokio::time::timeout(Duration::from_secs(10), events.collect::<Vec<_>>())
        .await
        .expect("the stream ends within 10 s")
}

fn text(events: &[ChatEvent]) -> String {
    events
        .iter()
        .filter_map(|e| match e {
            ChatEvent::Chunk { text, .. } => Some(text.as_str()),
            _ => None,
        })
        .collect()
}

fn stream_of(resume: Resume) -> colloquy_core::ChatStream {
    match resume {
        Resume::Stream(stream) => stream,
        Resume::Finished => panic!("expected events to resume"),
    }
}

#[tokio::test]
async fn a_live_resume_gets_exactly_the_missed_and_the_following_events() {
    let h = harness(LocalStreamLog::default()).await;
    let mut original = h.service.chat_stream(ask(&h, "hi")).await.expect("stream");
    let first = next(&mut original.events).await;
    assert_eq!(
        first,
        ChatEvent::Chunk {
            seq: 0,
            text: "one ".into()
        }
    );
    h.gate.add_permits(1);
    let second = next(&mut original.events).await;
    assert_eq!(second.seq(), 1);
    drop(original.events); // the connection drops after two events

    let after = ResumePoint::parse(&ResumePoint::format(original.response_id, 0, 4));
    let mut resumed = stream_of(
        h.service
            .resume(original.response_id, after)
            .await
            .expect("resume"),
    );
    assert_eq!(resumed.offset, 4, "the client holds the first chunk");
    assert_eq!(
        next(&mut resumed.events).await,
        second,
        "the missed event first"
    );
    h.gate.add_permits(2);
    let tail = rest(&mut resumed.events).await;
    let seqs: Vec<u64> = tail.iter().map(ChatEvent::seq).collect();
    assert_eq!(seqs, [2, 3, 4], "no gap, no duplicate");
    assert_eq!(
        tail.last(),
        Some(&ChatEvent::Done {
            seq: 4,
            finish_reason: FinishReason::Stop,
            sources: None,
        })
    );
    assert_eq!(format!("one {}{}", "two ", text(&tail)), WORDS.concat());
}

#[tokio::test(start_paused = true)]
async fn after_completion_the_log_then_the_store_replay_what_is_missing() {
    // Completed logs are kept for a second (the paused clock moves only when told).
    let retention = Duration::from_secs(1);
    let h = harness(LocalStreamLog::new(retention, Duration::from_secs(6))).await;
    h.gate.add_permits(10);
    let mut s = h.service.chat_stream(ask(&h, "hi")).await.expect("stream");
    let all = rest(&mut s.events).await;
    let response = s.response_id;
    let after_two = ResumePoint::parse(&ResumePoint::format(response, 1, 8));
    // From the log (still held: nothing swept it yet).
    let mut from_log = stream_of(h.service.resume(response, after_two).await.expect("resume"));
    assert_eq!(rest(&mut from_log.events).await, all[2..].to_vec());
    // Nothing after the last event: the client has everything (EventSource gets 204).
    let at_end = ResumePoint::parse(&ResumePoint::format(response, 4, 18));
    assert!(matches!(
        h.service.resume(response, at_end).await,
        Ok(Resume::Finished)
    ));
    // Past its retention, a new generation sweeps the completed log: resumes come
    // from the store now.
    tokio::time::advance(retention).await;
    h.service.chat(ask(&h, "again")).await.expect("chat");
    assert_eq!(h.log.held(), 1, "only the newest log is held");
    let mut from_store = stream_of(h.service.resume(response, after_two).await.expect("resume"));
    assert_eq!(
        from_store.message_id, s.message_id,
        "the question's id survives"
    );
    let replay = rest(&mut from_store.events).await;
    assert_eq!(text(&replay), "three four", "exactly the text after byte 8");
    assert!(matches!(
        replay.last(),
        Some(ChatEvent::Done {
            finish_reason: FinishReason::Stop,
            ..
        })
    ));
    let whole = stream_of(
        h.service
            .resume(response, None)
            .await
            .expect("from the start"),
    );
    let mut whole_events = whole.events;
    assert_eq!(text(&rest(&mut whole_events).await), WORDS.concat());
    let unknown = h
        .service
        .resume(Uuid::now_v7(), None)
        .await
        .expect_err("unknown");
    assert_eq!(unknown.code(), ErrorCode::MessageNotFound);
}

#[tokio::test]
async fn cancel_stops_the_generation_for_every_follower_and_keeps_the_text() {
    let h = harness(LocalStreamLog::default()).await;
    let mut original = h.service.chat_stream(ask(&h, "hi")).await.expect("stream");
    next(&mut original.events).await;
    let mut follower = stream_of(
        h.service
            .resume(original.response_id, None)
            .await
            .expect("attach"),
    );
    h.service
        .cancel(original.response_id)
        .await
        .expect("cancel");
    for events in [
        rest(&mut original.events).await,
        rest(&mut follower.events).await,
    ] {
        assert!(
            matches!(
                events.last(),
                Some(ChatEvent::Done {
                    finish_reason: FinishReason::Cancelled,
                    ..
                })
            ),
            "{events:?}"
        );
    }
    let (stored, _) = h
        .store
        .message(original.response_id)
        .await
        .expect("store")
        .expect("the partial answer is stored");
    assert_eq!(stored.message, "one ");
    assert_eq!(stored.metadata["finish_reason"], "cancelled");
    let again = h
        .service
        .cancel(original.response_id)
        .await
        .expect_err("finished");
    assert_eq!(again.code(), ErrorCode::ResponseComplete);
    let unknown = h.service.cancel(Uuid::now_v7()).await.expect_err("unknown");
    assert_eq!(unknown.code(), ErrorCode::MessageNotFound);
}

#[tokio::test]
async fn the_session_names_its_running_answer_until_it_ends() {
    let h = harness(LocalStreamLog::default()).await;
    let reference = SessionRef::parse(&h.session_id);
    let idle = h.service.session_view(&reference).await.expect("view");
    assert_eq!(idle.active_response_id, None);
    let mut s = h.service.chat_stream(ask(&h, "hi")).await.expect("stream");
    let running = h.service.session_view(&reference).await.expect("view");
    assert_eq!(running.active_response_id, Some(s.response_id));
    // A reloaded page attaches from the first event.
    let mut reloaded = stream_of(h.service.attach(&reference, None).await.expect("attach"));
    h.gate.add_permits(10);
    let original = rest(&mut s.events).await;
    assert_eq!(
        rest(&mut reloaded.events).await,
        original,
        "every event once"
    );
    let done = h.service.session_view(&reference).await.expect("view");
    assert_eq!(
        done.active_response_id, None,
        "cleared when the answer ends"
    );
    assert!(matches!(
        h.service.attach(&reference, None).await,
        Ok(Resume::Finished)
    ));
}

#[tokio::test]
async fn an_answer_whose_instance_died_ends_for_its_followers_within_the_lease() {
    let lease = Duration::from_millis(300);
    let h = harness(LocalStreamLog::new(Duration::from_secs(60), lease)).await;
    let session = h
        .service
        .get_session(&SessionRef::parse(&h.session_id))
        .await
        .expect("session");
    // Another instance started an answer, then died: no renewals, no events.
    let meta = StreamMeta {
        response_id: Uuid::now_v7(),
        message_id: Uuid::now_v7(),
        session: session.id,
        session_id: session.session_id.clone(),
    };
    h.log.start(&meta).await.expect("start");
    h.log
        .append(
            meta.response_id,
            &ChatEvent::Chunk {
                seq: 0,
                text: "par".into(),
            },
        )
        .await
        .expect("append");
    let reference = SessionRef::parse(&h.session_id);
    let mut follower = stream_of(h.service.attach(&reference, None).await.expect("attach"));
    let events = rest(&mut follower.events).await;
    assert_eq!(
        events,
        [
            ChatEvent::Chunk {
                seq: 0,
                text: "par".into()
            },
            ChatEvent::Failed {
                seq: 1,
                code: ErrorCode::GenerationLost
            }
        ],
        "a terminal event, never a hang"
    );
    let view = h.service.session_view(&reference).await.expect("view");
    assert_eq!(
        view.active_response_id, None,
        "the pointer does not outlive the lease"
    );
}
