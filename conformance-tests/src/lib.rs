//! # colloquy-conformance
//!
//! The reusable contract suite for Colloquy store adapters. Every sentence of the
//! store ports' documentation ([`colloquy_core::ports`]) has a public async fn in
//! [`contracts`] that checks it; [`store_contract_tests!`] stamps each one as its
//! own `#[tokio::test]` in the adapter's test file, so a failure names the contract.
//! A model-based property test ([`model_based`]) runs random operation sequences
//! against the store and a reference model and compares every result.
//!
//! An adapter's whole conformance test file:
//!
//! ```
//! use std::sync::Arc;
//! use colloquy_conformance::{store_contract_tests, TestStore};
//! use colloquy_core::ManualClock;
//! use colloquy_memory::MemoryStore;
//!
//! async fn store() -> Option<TestStore> {
//!     let clock = Arc::new(ManualClock::new());
//!     Some(TestStore::new(Arc::new(MemoryStore::new(clock.clone())), clock))
//! }
//!
//! store_contract_tests!(store);
//! # fn main() {}
//! ```
//!
//! The factory returns a fresh, isolated store each call, built with the given clock
//! (the suite moves it forward to test expiry). A store backed by a service returns
//! [`service_missing`] when the service is not reachable: the tests then skip
//! locally and fail when `COLLOQUY_REQUIRE_SERVICES=1` (as in CI).

pub mod contracts;
mod harness;
pub mod model_based;

pub use harness::{service_missing, services_required, TestStore, REQUIRE_SERVICES_ENV};

#[doc(hidden)]
pub mod __private {
    pub use futures::FutureExt;
    pub use tokio;
}

/// Stamps every contract of [`contracts`] as a `#[tokio::test]`, plus the
/// model-based check as a `#[test]`, given the path of an
/// `async fn() -> Option<TestStore>` factory.
#[macro_export]
macro_rules! store_contract_tests {
    ($factory:path) => {
        $crate::store_contract_tests!(@contracts $factory;
            create_then_get_by_uuid_and_session_id,
            unknown_session_is_none,
            duplicate_session_id_conflicts,
            duplicate_session_uuid_conflicts,
            expired_session_id_can_be_reused,
            get_prefers_uuid_over_session_id,
            update_changes_each_field,
            update_missing_or_expired_is_not_found,
            changed_expiry_applies_to_messages,
            delete_cascades_to_messages,
            list_sessions_newest_first_with_paging,
            list_sessions_filters,
            expired_session_is_invisible_everywhere,
            session_expires_at_its_expiry_instant,
            ping_succeeds,
            append_then_get_round_trips,
            append_to_missing_session_is_not_found,
            append_to_inactive_session_is_rejected,
            duplicate_message_id_conflicts,
            messages_keep_write_order_with_equal_timestamps,
            earlier_timestamp_is_raised,
            list_messages_filters,
            list_messages_paging,
            list_messages_of_missing_session_is_not_found,
            recent_returns_newest_oldest_first,
            soft_delete_hides_but_keeps_the_row,
            concurrent_appends_lose_nothing_and_agree_on_one_order,
            delete_racing_appends_leaves_no_orphans,
            concurrent_creates_with_one_session_id_have_one_winner,
        );

        #[test]
        fn model_based_operations_agree_with_reference_model() {
            $crate::model_based::check($factory);
        }
    };
    (@contracts $factory:path; $($contract:ident),* $(,)?) => {
        $(
            #[$crate::__private::tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $contract() {
                use $crate::__private::FutureExt as _;
                let Some(store) = $factory().await else { return };
                let outcome = ::std::panic::AssertUnwindSafe($crate::contracts::$contract(&store))
                    .catch_unwind()
                    .await;
                store.teardown().await;
                if let Err(panic) = outcome {
                    ::std::panic::resume_unwind(panic);
                }
            }
        )*
    };
}
