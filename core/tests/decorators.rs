//! Store decorators forward every method of the port (see
//! `colloquy_conformance::decorators`), and the list of operations they forward is
//! the trait's, read from its source: a method added to `ChatStore` fails here until
//! `StoreOperation` (and so the forwarding check and every decorator) has it.

use std::collections::BTreeSet;
use std::sync::Arc;

use colloquy_conformance::decorators::{assert_forwards_every_method, NEW_MESSAGE_ID};
use colloquy_core::decorators::{CallCounter, ObservedStore, StoreObserver, StoreOperation};
use colloquy_core::StoreError;

/// The names of the methods of `trait ChatStore` in `core/src/ports.rs`.
fn chat_store_methods() -> BTreeSet<String> {
    let source = include_str!("../src/ports.rs");
    let start = source
        .find("pub trait ChatStore")
        .expect("ports.rs declares `pub trait ChatStore`");
    let body = &source[start..];
    let end = body.find("\n}\n").expect("the trait's closing brace");
    body[..end]
        .lines()
        .map(str::trim_start)
        .filter(|line| !line.starts_with("//"))
        .filter_map(|line| {
            let rest = line
                .strip_prefix("async fn ")
                .or_else(|| line.strip_prefix("fn "))?;
            let name: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            Some(name)
        })
        .collect()
}

#[test]
fn store_operations_are_exactly_the_ports_methods() {
    let methods = chat_store_methods();
    assert!(methods.len() >= 13, "parsed only {methods:?}");
    let mut covered: BTreeSet<String> = StoreOperation::ALL
        .iter()
        .map(|op| op.name().to_owned())
        .collect();
    covered.insert(NEW_MESSAGE_ID.to_owned());
    assert_eq!(
        methods, covered,
        "ChatStore's methods changed: give StoreOperation (and the SentinelStore of \
         colloquy-conformance, and every decorator) the new method"
    );
}

#[test]
fn operations_index_in_declaration_order() {
    for (i, op) in StoreOperation::ALL.iter().enumerate() {
        assert_eq!(*op as usize, i, "{op:?}");
    }
}

/// An observer that ignores everything: the forwarding must not depend on it.
struct Deaf;

impl StoreObserver for Deaf {
    fn finished(&self, _: StoreOperation, _: std::time::Duration, _: Option<&StoreError>) {}
}

#[tokio::test]
async fn the_observed_store_forwards_every_method() {
    assert_forwards_every_method(|inner| Arc::new(ObservedStore::new(inner, Deaf))).await;
    assert_forwards_every_method(|inner| {
        Arc::new(ObservedStore::new(inner, CallCounter::default()))
    })
    .await;
}

#[tokio::test]
async fn the_call_counter_counts_each_operation_and_notes_ids() {
    let sentinel = Arc::new(colloquy_conformance::decorators::SentinelStore::default());
    let store = ObservedStore::new(sentinel, CallCounter::default());
    for (n, op) in StoreOperation::ALL.iter().enumerate() {
        for _ in 0..=n {
            colloquy_conformance::decorators::call(&store, *op).await;
        }
    }
    for (n, op) in StoreOperation::ALL.iter().enumerate() {
        assert_eq!(store.observer().count(*op), n + 1, "{op:?}");
    }
    let all = StoreOperation::ALL.len();
    assert_eq!(store.observer().total(), all * (all + 1) / 2);
    let reference = colloquy_core::SessionRef::parse("s-1");
    let id = colloquy_core::ports::ChatStore::new_message_id(&store, &reference);
    assert_eq!(store.observer().message_ids(), vec![(reference, id)]);
}
