//! # colloquy-conformance
//!
//! The reusable contract suite for Colloquy store adapters. Every sentence of the
//! [`ChatStore`](colloquy_core::ports::ChatStore) documentation has a public async
//! fn in [`contracts`] that checks it; [`store_contract_tests!`] stamps each one as
//! its own test in the adapter's test file, so a failure names the contract, and
//! runs it under a deadline ([`contract_timeout`]), so a hanging store fails instead
//! of hanging the run. A model-based property test ([`model_based`]) runs random
//! operation sequences against the store and a reference model and compares every
//! result.
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
//! locally and fail when `COLLOQUY_REQUIRE_SERVICES=1` (as in CI). A store whose
//! backend removes expired data by itself declares it with
//! [`TestStore::expires_physically`].
//!
//! The knowledge ports ([`KnowledgeBase`](colloquy_core::KnowledgeBase) and
//! [`KnowledgeIngest`](colloquy_core::KnowledgeIngest)) have their contract in
//! [`contracts::knowledge`], stamped by [`knowledge_contract_tests!`].

pub mod contracts;
pub use contracts::TestEvents;
pub mod decorators;
mod harness;
pub mod model_based;

pub use harness::{
    contract_timeout, run_contract, service_missing, services_required, Subject, TestIdempotency,
    TestStore, TestStreamLog, DEFAULT_TIMEOUT_SECS, EXPIRY_SLACK, REQUIRE_SERVICES_ENV,
    TIMEOUT_ENV,
};

pub use contracts::TestRateLimiter;

#[doc(hidden)]
pub mod __private {
    pub use futures::future::FutureExt;
    pub use tokio::time::timeout;
}

/// Stamps every contract of [`contracts`] as a `#[test]` running under the contract
/// deadline, plus the model-based check, given the path of an
/// `async fn() -> Option<TestStore>` factory.
#[macro_export]
macro_rules! store_contract_tests {
    ($factory:path) => {
        $crate::store_contract_tests!(@contracts $factory;
            // sessions
            create_then_get_by_uuid_and_session_id,
            unknown_session_is_none,
            reference_resolves_uuid_first_then_session_id,
            duplicate_session_id_conflicts,
            duplicate_session_uuid_conflicts,
            expired_session_id_can_be_reused,
            update_changes_each_field,
            responder_and_handoff_round_trip,
            update_missing_or_expired_is_not_found,
            changed_expiry_applies_to_messages,
            delete_cascades_to_messages,
            list_sessions_newest_first_with_paging,
            failed_creates_leave_the_session_list_alone,
            list_sessions_filters,
            ping_succeeds,
            // expiry
            expired_session_is_invisible_everywhere,
            expiry_is_inclusive_on_every_path,
            // messages
            append_then_get_round_trips,
            reads_return_the_current_session,
            append_to_missing_session_is_not_found,
            append_to_inactive_session_is_rejected,
            duplicate_message_id_conflicts,
            messages_keep_write_order_with_equal_timestamps,
            earlier_timestamp_is_raised,
            list_messages_filters,
            list_messages_paging_in_both_orders,
            list_messages_of_missing_session_is_not_found,
            soft_delete_hides_but_keeps_the_row,
            message_reads_follow_the_session_uuid_never_a_look_alike,
            errors_name_their_entity,
            // cursors
            cursors_before_and_after_in_both_orders,
            cursor_offset_applies_after_the_cursor_in_order,
            soft_deleted_cursor_message_still_works,
            cursor_of_another_session_or_unknown_is_message_not_found,
            // begin_turn
            begin_turn_stores_the_message_and_returns_the_session,
            begin_turn_returns_the_context_windows,
            begin_turn_fails_like_append,
            // purge and retention
            purge_removes_expired_sessions_and_returns_the_count,
            purge_keeps_data_until_the_cutoff_reaches_expiry,
            purge_boundary_is_inclusive,
            purge_leaves_a_new_session_with_the_reused_session_id_alone,
            purge_follows_a_changed_expiry,
            purge_removes_every_expired_session_however_many,
            // concurrency
            concurrent_appends_lose_nothing_and_agree_on_one_order,
            delete_racing_appends_leaves_no_orphans,
            concurrent_creates_with_one_session_id_have_one_winner,
            cursor_paging_while_appending_has_no_gap_and_no_duplicate,
        );

        #[test]
        fn model_based_operations_agree_with_reference_model() {
            $crate::model_based::check($factory);
        }
    };
    (@contracts $factory:path; $($contract:ident),* $(,)?) => {
        $crate::__contract_tests!(($) $factory; []; $($contract),*);
    };
}

/// Stamps the contracts of the console's provided [`ChatStore`] methods
/// (`set_feedback`, `erase_user`, `hourly_stats`, `add_stats`) as `#[test]`s under
/// the contract deadline, given the same factory as [`store_contract_tests!`]. Every
/// store of this workspace runs them; a third-party store that leaves those methods
/// out (they answer `NotSupported`) runs only [`store_contract_tests!`].
///
/// ```
/// use std::sync::Arc;
/// use colloquy_conformance::{console_contract_tests, TestStore};
/// use colloquy_core::ManualClock;
/// use colloquy_memory::MemoryStore;
///
/// async fn store() -> Option<TestStore> {
///     let clock = Arc::new(ManualClock::new());
///     Some(TestStore::new(Arc::new(MemoryStore::new(clock.clone())), clock))
/// }
///
/// console_contract_tests!(store);
/// # fn main() {}
/// ```
///
/// [`ChatStore`]: colloquy_core::ports::ChatStore
#[macro_export]
macro_rules! console_contract_tests {
    ($factory:path) => {
        $crate::__contract_tests!(($) $factory; [];
            // feedback
            feedback_is_stored_with_the_message_and_the_last_one_wins,
            feedback_on_a_missing_deleted_or_expired_message_is_not_found,
            // privacy
            erase_user_hard_deletes_every_session_of_that_visitor_only,
            // stats
            stats_count_what_happened_in_each_hour,
            stats_keep_a_bounded_list_of_questions_per_hour,
        );
    };
}

/// Stamps the contracts of the provided `inbox` method as `#[test]`s, given the
/// same factory as [`store_contract_tests!`]: every store of this workspace runs
/// them (memory, SQLite, Redis standalone and Cluster, PostgreSQL).
#[macro_export]
macro_rules! inbox_contract_tests {
    ($factory:path) => {
        $crate::__contract_tests!(($) $factory; [];
            inbox_lists_live_sessions_by_latest_activity,
            inbox_rows_follow_deletes_feedback_and_patches,
        );
    };
}

/// Stamps the contract of the provided `search_messages` method as a `#[test]`,
/// given the same factory as [`store_contract_tests!`]: for the stores that search
/// (memory, SQLite, PostgreSQL; Redis answers `NotSupported`).
#[macro_export]
macro_rules! search_contract_tests {
    ($factory:path) => {
        $crate::__contract_tests!(($) $factory; [];
            search_finds_messages_by_word_prefixes_across_sessions,
        );
    };
}

/// Stamps every [`StreamLog`](colloquy_core::streams::StreamLog) contract of
/// [`contracts`] as a `#[test]` running under the contract deadline, given the path
/// of an `async fn() -> Option<TestStreamLog>` factory.
///
/// ```
/// use std::sync::Arc;
/// use std::time::Duration;
/// use colloquy_conformance::{stream_log_contract_tests, TestStreamLog};
/// use colloquy_core::local::LocalStreamLog;
///
/// async fn log() -> Option<TestStreamLog> {
///     let log = Arc::new(LocalStreamLog::new(Duration::from_secs(60), Duration::from_secs(60)));
///     let retention = Duration::from_millis(300);
///     let hasty = Arc::new(LocalStreamLog::new(retention, Duration::from_millis(200)));
///     Some(TestStreamLog::new(log.clone(), log, hasty, retention))
/// }
///
/// stream_log_contract_tests!(log);
/// # fn main() {}
/// ```
///
/// A contract the adapter is known to break (a recorded bug) is stamped
/// `#[ignore = "..."]` with `stream_log_contract_tests!(log; ignore { contract =
/// "why" })`.
#[macro_export]
macro_rules! stream_log_contract_tests {
    ($factory:path $(; ignore { $($ignored:ident = $reason:literal),* $(,)? })?) => {
        $crate::__contract_tests!(($) $factory; [$($($ignored = $reason),*)?];
            unknown_response_is_absent,
            replay_returns_the_events_in_order_from_any_seq,
            a_follower_sees_every_event_to_the_end,
            changed_returns_within_its_bound_then_read_sees_new_events,
            a_terminal_event_completes_the_log_and_clears_the_active_response,
            the_newest_start_wins_the_active_pointer,
            a_cancel_is_visible_from_another_handle,
            an_expired_lease_abandons_the_log,
            an_expired_lease_clears_the_active_response,
            a_completed_log_expires_after_its_retention,
        );
    };
}

/// Stamps every [`IdempotencyStore`](colloquy_core::idempotency::IdempotencyStore)
/// contract of [`contracts`] as a `#[test]` running under the contract deadline,
/// given the path of an `async fn() -> Option<TestIdempotency>` factory.
///
/// ```
/// use std::sync::Arc;
/// use std::time::Duration;
/// use colloquy_conformance::{idempotency_contract_tests, TestIdempotency};
/// use colloquy_core::local::LocalIdempotency;
///
/// async fn store() -> Option<TestIdempotency> {
///     let (claim, result) = (Duration::from_millis(200), Duration::from_millis(300));
///     let hasty = Arc::new(LocalIdempotency::with_ttls(claim, result));
///     Some(TestIdempotency::new(Arc::new(LocalIdempotency::new()), hasty, claim, result))
/// }
///
/// idempotency_contract_tests!(store);
/// # fn main() {}
/// ```
///
/// `idempotency_contract_tests!(store; ignore { contract = "why" })` stamps the named
/// contracts `#[ignore = "why"]`.
#[macro_export]
macro_rules! idempotency_contract_tests {
    ($factory:path $(; ignore { $($ignored:ident = $reason:literal),* $(,)? })?) => {
        $crate::__contract_tests!(($) $factory; [$($($ignored = $reason),*)?];
            the_first_claim_wins_and_later_ones_see_it_in_progress,
            a_completed_key_returns_the_recorded_result,
            a_released_key_can_be_claimed_again,
            concurrent_claims_of_one_key_have_exactly_one_winner,
            an_abandoned_claim_expires,
            a_result_expires,
        );
    };
}

/// Stamps every [`SessionEvents`](colloquy_core::SessionEvents) contract of
/// [`contracts`] as a `#[test]` running under the contract deadline, given the path
/// of an `async fn() -> Option<TestEvents>` factory.
///
/// ```
/// use std::sync::Arc;
/// use colloquy_conformance::{events_contract_tests, TestEvents};
/// use colloquy_core::LocalSessionEvents;
///
/// async fn events() -> Option<TestEvents> {
///     let events = Arc::new(LocalSessionEvents::with_capacity(8));
///     Some(TestEvents::new(events.clone(), events, 8))
/// }
///
/// events_contract_tests!(events);
/// # fn main() {}
/// ```
///
/// `events_contract_tests!(events; ignore { contract = "why" })` stamps the named
/// contracts `#[ignore = "why"]`.
#[macro_export]
macro_rules! events_contract_tests {
    ($factory:path $(; ignore { $($ignored:ident = $reason:literal),* $(,)? })?) => {
        $crate::__contract_tests!(($) $factory; [$($($ignored = $reason),*)?];
            an_event_published_after_subscribe_is_delivered,
            one_publishers_events_arrive_in_order,
            no_event_crosses_to_another_session,
            every_subscriber_of_a_session_gets_every_event,
            a_dropped_subscription_can_subscribe_again,
            another_instance_sees_the_events,
            a_subscriber_that_does_not_read_lags_and_ends,
            a_severed_channel_interrupts_then_recovers,
        );
    };
}

/// Stamps every [`RateLimiter`](colloquy_core::ratelimit::RateLimiter) contract of
/// [`contracts`] as a `#[test]` running under the contract deadline, given the path
/// of an `async fn() -> Option<TestRateLimiter>` factory.
///
/// ```
/// use std::sync::Arc;
/// use colloquy_conformance::{rate_limiter_contract_tests, TestRateLimiter};
/// use colloquy_core::local::LocalRateLimiter;
///
/// async fn limiter() -> Option<TestRateLimiter> {
///     let limiter = Arc::new(LocalRateLimiter::new());
///     Some(TestRateLimiter::new(limiter.clone(), limiter))
/// }
///
/// rate_limiter_contract_tests!(limiter);
/// # fn main() {}
/// ```
///
/// `rate_limiter_contract_tests!(limiter; ignore { contract = "why" })` stamps the
/// named contracts `#[ignore = "why"]`.
#[macro_export]
macro_rules! rate_limiter_contract_tests {
    ($factory:path $(; ignore { $($ignored:ident = $reason:literal),* $(,)? })?) => {
        $crate::__contract_tests!(($) $factory; [$($($ignored = $reason),*)?];
            a_fresh_key_admits_its_burst_then_refuses,
            a_refusal_spends_nothing_and_a_cost_spends_several_units,
            after_the_burst_one_unit_per_interval,
            retry_after_is_when_the_cost_is_available,
            keys_are_independent,
            two_clients_share_one_counter,
            check_in_order_stops_at_the_first_refusal,
            check_in_order_decides_each_check_like_check,
        );
    };
}

/// Stamps every knowledge-port contract of [`contracts::knowledge`] as a
/// `#[tokio::test]` in a module `$name`, each under the contract deadline
/// ([`contract_timeout`]); `$make` is an async fn returning a fresh, empty knowledge
/// base (any type implementing both
/// [`KnowledgeBase`](colloquy_core::KnowledgeBase) and
/// [`KnowledgeIngest`](colloquy_core::KnowledgeIngest)). The adapter's tests need
/// `tokio` with the `macros` feature.
#[macro_export]
macro_rules! knowledge_contract_tests {
    ($name:ident, $make:ident) => {
        mod $name {
            $crate::knowledge_contract_tests!(@each $make;
                exact_term_hit_ranks_first,
                reingest_replaces_passages,
                delete_removes,
                k_is_respected,
                case_and_diacritics_do_not_matter,
                operators_are_plain_words,
                documents_are_listed_by_id,
            );
        }
    };
    (@each $make:ident; $($contract:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $contract() {
                let kb = super::$make().await;
                let deadline = $crate::contract_timeout();
                if $crate::__private::timeout(deadline, $crate::contracts::knowledge::$contract(&kb))
                    .await
                    .is_err()
                {
                    panic!(
                        "{} did not finish within {:?}",
                        ::core::stringify!($contract),
                        deadline
                    );
                }
            }
        )*
    };
}

/// One `#[test]` per named contract, `#[ignore = reason]` for those in the ignore
/// list; the macros above call it (passing `$`, for the helper macro it defines).
#[doc(hidden)]
#[macro_export]
macro_rules! __contract_tests {
    (($d:tt) $factory:path; [$($ignored:ident = $reason:literal),*]; $($contract:ident),* $(,)?) => {
        macro_rules! __colloquy_contract_test {
            $(
                ($ignored) => {
                    #[test]
                    #[ignore = $reason]
                    fn $ignored() {
                        $crate::__contract_test_body!($factory, $ignored);
                    }
                };
            )*
            ($d contract:ident) => {
                #[test]
                fn $d contract() {
                    $crate::__contract_test_body!($factory, $d contract);
                }
            };
        }
        $( __colloquy_contract_test!($contract); )*
    };
}

/// The body of one contract's test.
#[doc(hidden)]
#[macro_export]
macro_rules! __contract_test_body {
    ($factory:path, $contract:ident) => {{
        use $crate::__private::FutureExt as _;
        $crate::run_contract(::core::stringify!($contract), $factory, |subject| {
            $crate::contracts::$contract(subject).boxed()
        });
    }};
}
