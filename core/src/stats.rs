//! Usage counters for the operator's dashboard, kept per hour as things happen.
//!
//! A store adds to the counters of the hour an event happened in, in the same call
//! that stores the event (see [`ChatStore::hourly_stats`]), so reading the counters
//! of a range costs O(hours in the range) however many messages there are. What
//! counts is decided here, once, for every store:
//!
//! - a created session: `sessions`, in the hour of its `created_at`;
//! - an appended message ([`StatCounts::of_message`]), in the hour of its timestamp:
//!   a `user` message is a visitor message; an `assistant` message is an answer, adds
//!   its `metadata.usage` tokens, and is *ungrounded* when a knowledge base was
//!   searched and found nothing ([`is_ungrounded`]); its question (the message it
//!   answers, `metadata.in_reply_to`) is then counted in the hour's bounded list of
//!   ungrounded questions ([`question_key`], at most [`MAX_QUESTIONS_PER_HOUR`]);
//! - feedback ([`StatCounts::of_feedback`]): `feedback_up` or `feedback_down` in the
//!   hour it was given, and the previous feedback on the same message, if any, taken
//!   back from its own hour (so the counters always count current ratings);
//! - anything else (handoffs) through [`ChatStore::add_stats`].
//!
//! [`ChatStore::hourly_stats`]: crate::ports::ChatStore::hourly_stats
//! [`ChatStore::add_stats`]: crate::ports::ChatStore::add_stats

use std::collections::HashMap;

use chrono::{DateTime, Duration, DurationRound, TimeZone, Utc};
use serde::Serialize;
use uuid::Uuid;

use crate::clock::serde_time;
use crate::feedback::{Feedback, Rating};
use crate::message::Role;
use crate::session::Metadata;

/// How many distinct ungrounded questions a store keeps per hour; once an hour has
/// this many, a question not among them is not listed (it is still counted in
/// `ungrounded`).
pub const MAX_QUESTIONS_PER_HOUR: usize = 100;

/// The longest question key kept, in characters.
pub const QUESTION_KEY_CHARS: usize = 200;

/// The counters of one hour (or of any span, summed). Signed, because taking back
/// a replaced feedback subtracts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct StatCounts {
    /// Sessions created.
    pub sessions: i64,
    /// Messages written by visitors (`user`).
    pub visitor_messages: i64,
    /// Answers written by the model (`assistant`).
    pub answers: i64,
    /// Conversations handed to a person.
    pub handoffs: i64,
    /// Prompt tokens the answers used.
    pub tokens_in: i64,
    /// Completion tokens the answers used.
    pub tokens_out: i64,
    /// Current thumbs up.
    pub feedback_up: i64,
    /// Current thumbs down.
    pub feedback_down: i64,
    /// Answers the knowledge base could not ground.
    pub ungrounded: i64,
}

impl StatCounts {
    /// The counter names, as stores name their columns or hash fields, in the order
    /// of [`StatCounts::values`].
    pub const NAMES: [&'static str; 9] = [
        "sessions",
        "visitor_messages",
        "answers",
        "handoffs",
        "tokens_in",
        "tokens_out",
        "feedback_up",
        "feedback_down",
        "ungrounded",
    ];

    /// The counters in the order of [`StatCounts::NAMES`].
    #[must_use]
    pub const fn values(&self) -> [i64; 9] {
        [
            self.sessions,
            self.visitor_messages,
            self.answers,
            self.handoffs,
            self.tokens_in,
            self.tokens_out,
            self.feedback_up,
            self.feedback_down,
            self.ungrounded,
        ]
    }

    /// The counters from values in the order of [`StatCounts::NAMES`].
    #[must_use]
    pub const fn from_values(v: [i64; 9]) -> Self {
        Self {
            sessions: v[0],
            visitor_messages: v[1],
            answers: v[2],
            handoffs: v[3],
            tokens_in: v[4],
            tokens_out: v[5],
            feedback_up: v[6],
            feedback_down: v[7],
            ungrounded: v[8],
        }
    }

    /// Sets the counter called `name` (one of [`StatCounts::NAMES`]); false for an
    /// unknown name.
    pub fn set(&mut self, name: &str, value: i64) -> bool {
        let mut v = self.values();
        match Self::NAMES.iter().position(|n| *n == name) {
            Some(i) => {
                v[i] = value;
                *self = Self::from_values(v);
                true
            }
            None => false,
        }
    }

    /// Adds `other` to these counters (saturating).
    pub fn add(&mut self, other: &Self) {
        let (mut a, b) = (self.values(), other.values());
        for (x, y) in a.iter_mut().zip(b) {
            *x = x.saturating_add(y);
        }
        *self = Self::from_values(a);
    }

    /// Whether every counter is zero.
    #[must_use]
    pub fn is_zero(&self) -> bool {
        self.values().iter().all(|v| *v == 0)
    }

    /// What creating a session adds.
    #[must_use]
    pub const fn of_session() -> Self {
        Self::from_values([1, 0, 0, 0, 0, 0, 0, 0, 0])
    }

    /// What appending a message with this role and metadata adds.
    #[must_use]
    pub fn of_message(role: Role, metadata: &Metadata) -> Self {
        let mut c = Self::default();
        match role {
            Role::User => c.visitor_messages = 1,
            Role::Assistant => {
                c.answers = 1;
                let usage = metadata.get("usage");
                let tokens = |name: &str| {
                    usage
                        .and_then(|u| u.get(name))
                        .and_then(serde_json::Value::as_u64)
                        .map_or(0, |n| i64::try_from(n).unwrap_or(i64::MAX))
                };
                c.tokens_in = tokens("prompt_tokens");
                c.tokens_out = tokens("completion_tokens");
                c.ungrounded = i64::from(is_ungrounded(metadata));
            }
            Role::System => {}
        }
        c
    }

    /// What giving `feedback` adds to its own hour: one up or one down.
    #[must_use]
    pub fn of_feedback(rating: Rating) -> Self {
        let mut c = Self::default();
        match rating {
            Rating::Up => c.feedback_up = 1,
            Rating::Down => c.feedback_down = 1,
        }
        c
    }

    /// These counters with every sign flipped: taking an event back.
    #[must_use]
    pub fn negated(&self) -> Self {
        let mut v = self.values();
        for x in &mut v {
            *x = x.saturating_neg();
        }
        Self::from_values(v)
    }
}

/// The counter changes one feedback causes, each with the hour it belongs to: the
/// new rating in the hour of `new.at`, and the previous one (if any) taken back from
/// the hour of its own `at`.
#[must_use]
pub fn feedback_changes(
    previous: Option<&Feedback>,
    new: &Feedback,
) -> Vec<(DateTime<Utc>, StatCounts)> {
    let mut out = vec![(hour_of(new.at), StatCounts::of_feedback(new.rating))];
    if let Some(old) = previous {
        out.push((
            hour_of(old.at),
            StatCounts::of_feedback(old.rating).negated(),
        ));
    }
    out
}

/// Whether an answer is *ungrounded*: a knowledge base was searched (the answer has
/// `metadata.sources`), the search worked (no `sources_error`) and found nothing.
#[must_use]
pub fn is_ungrounded(metadata: &Metadata) -> bool {
    metadata
        .get("sources")
        .and_then(serde_json::Value::as_array)
        .is_some_and(Vec::is_empty)
        && !metadata.contains_key("sources_error")
}

/// The message an answer replies to (`metadata.in_reply_to`), if it names one.
#[must_use]
pub fn in_reply_to(metadata: &Metadata) -> Option<Uuid> {
    metadata
        .get("in_reply_to")
        .and_then(serde_json::Value::as_str)
        .and_then(|s| Uuid::try_parse(s).ok())
}

/// The key a question is counted under: lowercased, whitespace collapsed to single
/// spaces, trimmed, trailing `?`, `!` and `.` removed, at most
/// [`QUESTION_KEY_CHARS`] characters. Stores may keep a raw prefix instead;
/// [`Stats::from_hours`] applies this again (it is idempotent) before merging.
#[must_use]
pub fn question_key(text: &str) -> String {
    let words: Vec<&str> = text.split_whitespace().collect();
    let joined = words.join(" ").to_lowercase();
    let trimmed = joined.trim_end_matches(['?', '!', '.', ' ']);
    trimmed
        .chars()
        .take(QUESTION_KEY_CHARS)
        .collect::<String>()
        .trim_end_matches(['?', '!', '.', ' '])
        .to_owned()
}

/// The start of the hour `t` is in (UTC has no leap seconds in chrono's count, so
/// it is the timestamp floored to a multiple of 3600 s). On every append, so
/// arithmetic on the timestamp rather than `duration_trunc`'s nanosecond round trip.
#[must_use]
pub fn hour_of(t: DateTime<Utc>) -> DateTime<Utc> {
    let secs = t.timestamp();
    DateTime::from_timestamp(secs - secs.rem_euclid(3600), 0).unwrap_or(t)
}

/// The counters of one hour as a store keeps them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HourStats {
    /// The start of the hour.
    pub hour: DateTime<Utc>,
    /// Its counters.
    pub counts: StatCounts,
    /// Its ungrounded questions with how often each was asked (at most
    /// [`MAX_QUESTIONS_PER_HOUR`], any order).
    pub questions: Vec<(String, u64)>,
}

/// The size of a dashboard bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bucket {
    /// One hour.
    Hour,
    /// One UTC day (24 hours).
    Day,
}

impl Bucket {
    /// Reads `hour` or `day`.
    #[must_use]
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "hour" => Some(Self::Hour),
            "day" => Some(Self::Day),
            _ => None,
        }
    }

    /// How long a bucket is.
    #[must_use]
    pub fn length(self) -> Duration {
        match self {
            Self::Hour => Duration::hours(1),
            Self::Day => Duration::days(1),
        }
    }

    /// The start of the bucket `t` is in.
    #[must_use]
    pub fn start_of(self, t: DateTime<Utc>) -> DateTime<Utc> {
        t.duration_trunc(self.length()).unwrap_or(t)
    }
}

/// What `GET /stats/` asks for, before the service fills in the defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatsQuery {
    /// The start of the range (default: the start of the day six days before `to`'s).
    pub from: Option<DateTime<Utc>>,
    /// Its end, exclusive (default: now).
    pub to: Option<DateTime<Utc>>,
    /// The size of a bucket.
    pub bucket: Bucket,
}

/// What the model costs: a price per million prompt (input) tokens and per million
/// completion (output) tokens, in the operator's currency (`--model-price IN/OUT`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ModelPrice {
    /// Price of a million prompt tokens.
    pub input_per_million: f64,
    /// Price of a million completion tokens.
    pub output_per_million: f64,
}

/// Why a `--model-price` did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid model price {0:?}: use IN/OUT, prices per million input and output tokens, e.g. 0.15/0.60")]
pub struct ModelPriceError(String);

impl std::str::FromStr for ModelPrice {
    type Err = ModelPriceError;

    /// Reads `IN/OUT`: two finite, non-negative decimal numbers.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let error = || ModelPriceError(s.to_owned());
        let (input, output) = s.trim().split_once('/').ok_or_else(error)?;
        let price = |text: &str| {
            text.trim()
                .parse::<f64>()
                .ok()
                .filter(|p| p.is_finite() && *p >= 0.0)
                .ok_or_else(error)
        };
        Ok(Self {
            input_per_million: price(input)?,
            output_per_million: price(output)?,
        })
    }
}

impl ModelPrice {
    /// What `counts`' tokens cost, rounded to a millionth (of the currency unit).
    #[must_use]
    #[allow(clippy::cast_precision_loss)]
    pub fn cost(&self, counts: &StatCounts) -> f64 {
        let tokens = |n: i64| n.max(0) as f64;
        let cost = tokens(counts.tokens_in) * self.input_per_million / 1e6
            + tokens(counts.tokens_out) * self.output_per_million / 1e6;
        (cost * 1e6).round() / 1e6
    }
}

/// One bucket of a [`Stats`] report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StatsBucket {
    /// Its start.
    #[serde(with = "serde_time")]
    pub start: DateTime<Utc>,
    /// Its counters.
    #[serde(flatten)]
    pub counts: StatCounts,
    /// What its tokens cost at `--model-price`; `None` (JSON null) when no price is
    /// set: unknown, not free.
    pub cost: Option<f64>,
}

/// An ungrounded question and how often it was asked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct QuestionCount {
    /// The question, as [`question_key`] keeps it.
    pub text: String,
    /// How often.
    pub count: u64,
}

/// The dashboard's figures over a range. In JSON, `totals` also carries `cost`.
#[derive(Debug, Clone, PartialEq)]
pub struct Stats {
    /// Every bucket from the one `from` is in up to `to` (exclusive), empty ones too,
    /// oldest first.
    pub buckets: Vec<StatsBucket>,
    /// The sums over all buckets.
    pub totals: StatCounts,
    /// What the totals' tokens cost (see [`StatsBucket::cost`]).
    pub cost: Option<f64>,
    /// The most frequent ungrounded questions, most frequent first (ties: text).
    pub ungrounded_questions: Vec<QuestionCount>,
}

impl Serialize for Stats {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Totals<'a> {
            #[serde(flatten)]
            counts: &'a StatCounts,
            cost: Option<f64>,
        }
        #[derive(Serialize)]
        struct Out<'a> {
            buckets: &'a [StatsBucket],
            totals: Totals<'a>,
            ungrounded_questions: &'a [QuestionCount],
        }
        Out {
            buckets: &self.buckets,
            totals: Totals {
                counts: &self.totals,
                cost: self.cost,
            },
            ungrounded_questions: &self.ungrounded_questions,
        }
        .serialize(serializer)
    }
}

impl Stats {
    /// Fills in every `cost` at `price` (`None`: they stay null).
    #[must_use]
    pub fn priced(mut self, price: Option<ModelPrice>) -> Self {
        if let Some(price) = price {
            for b in &mut self.buckets {
                b.cost = Some(price.cost(&b.counts));
            }
            self.cost = Some(price.cost(&self.totals));
        }
        self
    }

    /// The most buckets a report has (a range longer than that is cut at its end).
    pub const MAX_BUCKETS: usize = 24 * 400;

    /// Sums the hours a store returned into buckets of `bucket` covering
    /// `[from, to)`, and lists the `top` most frequent ungrounded questions.
    #[must_use]
    pub fn from_hours(
        hours: &[HourStats],
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        bucket: Bucket,
        top: usize,
    ) -> Self {
        let first = bucket.start_of(from);
        let mut buckets = Vec::new();
        let mut start = first;
        while start < to && buckets.len() < Self::MAX_BUCKETS {
            buckets.push(StatsBucket {
                start,
                counts: StatCounts::default(),
                cost: None,
            });
            start += bucket.length();
        }
        let mut totals = StatCounts::default();
        let mut questions: HashMap<String, u64> = HashMap::new();
        for h in hours {
            let Some(last) = buckets.last() else { break };
            if h.hour < first || h.hour >= last.start + bucket.length() || h.hour >= to {
                continue;
            }
            let i = usize::try_from((h.hour - first).num_seconds() / bucket.length().num_seconds())
                .unwrap_or(usize::MAX);
            if let Some(b) = buckets.get_mut(i) {
                b.counts.add(&h.counts);
                totals.add(&h.counts);
                for (text, count) in &h.questions {
                    let n = questions.entry(question_key(text)).or_default();
                    *n = n.saturating_add(*count);
                }
            }
        }
        let mut ungrounded_questions: Vec<QuestionCount> = questions
            .into_iter()
            .filter(|(text, _)| !text.is_empty())
            .map(|(text, count)| QuestionCount { text, count })
            .collect();
        ungrounded_questions.sort_by(|a, b| b.count.cmp(&a.count).then(a.text.cmp(&b.text)));
        ungrounded_questions.truncate(top);
        Self {
            buckets,
            totals,
            cost: None,
            ungrounded_questions,
        }
    }
}

/// The hour starting at `micros` microseconds since the epoch (how SQL stores keep
/// it); `None` when out of range.
#[must_use]
pub fn hour_from_micros(micros: i64) -> Option<DateTime<Utc>> {
    Utc.timestamp_micros(micros).single()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn hour_of_is_the_hour_duration_trunc_gives() {
        let base = Utc
            .with_ymd_and_hms(2026, 12, 8, 0, 0, 0)
            .single()
            .expect("time");
        for offset_ms in [
            0_i64,
            1,
            999,
            3_599_999,
            3_600_000,
            3_600_001,
            -1,
            -3_600_000,
            -3_600_001,
            86_399_999,
            -(56 * 365 * 86_400_000),
            -(57 * 365 * 86_400_000), // before 1970
        ] {
            let t = base + Duration::milliseconds(offset_ms) + Duration::nanoseconds(123);
            assert_eq!(
                hour_of(t),
                t.duration_trunc(Duration::hours(1)).expect("in range"),
                "{t}"
            );
        }
    }

    fn meta(v: serde_json::Value) -> Metadata {
        v.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn messages_count_by_role_usage_and_grounding() {
        let user = StatCounts::of_message(Role::User, &Metadata::new());
        assert_eq!(user.visitor_messages, 1);
        assert_eq!(user.answers, 0);
        let answer = StatCounts::of_message(
            Role::Assistant,
            &meta(json!({"usage": {"prompt_tokens": 12, "completion_tokens": 5}, "sources": []})),
        );
        assert_eq!(
            (
                answer.answers,
                answer.tokens_in,
                answer.tokens_out,
                answer.ungrounded
            ),
            (1, 12, 5, 1)
        );
        let grounded =
            StatCounts::of_message(Role::Assistant, &meta(json!({"sources": [{"id": "a"}]})));
        assert_eq!(grounded.ungrounded, 0);
        let failed = StatCounts::of_message(
            Role::Assistant,
            &meta(json!({"sources": [], "sources_error": "knowledge_unavailable"})),
        );
        assert_eq!(
            failed.ungrounded, 0,
            "a failed search is not 'found nothing'"
        );
        let no_kb = StatCounts::of_message(Role::Assistant, &Metadata::new());
        assert_eq!(
            no_kb.ungrounded, 0,
            "without a knowledge base nothing is ungrounded"
        );
        assert!(StatCounts::of_message(Role::System, &Metadata::new()).is_zero());
    }

    #[test]
    fn a_replaced_feedback_is_taken_back_from_its_own_hour() {
        let at = crate::parse_time("2024-05-01T10:59:00Z").expect("time");
        let old = Feedback {
            rating: Rating::Up,
            comment: None,
            at,
        };
        let new = Feedback {
            rating: Rating::Down,
            comment: None,
            at: at + Duration::minutes(2),
        };
        let changes = feedback_changes(Some(&old), &new);
        assert_eq!(changes.len(), 2);
        assert_eq!(
            changes[0].0,
            crate::parse_time("2024-05-01T11:00:00Z").expect("time")
        );
        assert_eq!(changes[0].1.feedback_down, 1);
        assert_eq!(
            changes[1].0,
            crate::parse_time("2024-05-01T10:00:00Z").expect("time")
        );
        assert_eq!(changes[1].1.feedback_up, -1);
    }

    #[test]
    fn question_keys_fold_case_space_and_final_punctuation() {
        assert_eq!(question_key("  How   much\tIS it?? "), "how much is it");
        assert_eq!(
            question_key(&question_key("Où ÊTES-vous ?")),
            "où êtes-vous"
        );
        assert_eq!(
            question_key(&"x".repeat(500)).chars().count(),
            QUESTION_KEY_CHARS
        );
    }

    #[test]
    fn hours_sum_into_day_buckets_with_empty_days_and_top_questions() {
        let day = |d: u32, h: u32| {
            Utc.with_ymd_and_hms(2024, 5, d, h, 0, 0)
                .single()
                .expect("time")
        };
        let counts = |answers| StatCounts {
            answers,
            ..StatCounts::default()
        };
        let hours = vec![
            HourStats {
                hour: day(1, 3),
                counts: counts(2),
                questions: vec![("Opening hours?".into(), 2), ("parking".into(), 1)],
            },
            HourStats {
                hour: day(1, 20),
                counts: counts(3),
                questions: vec![("opening   HOURS".into(), 1)],
            },
            HourStats {
                hour: day(3, 0),
                counts: counts(4),
                questions: vec![],
            },
            HourStats {
                hour: day(5, 0),
                counts: counts(100),
                questions: vec![("outside".into(), 9)],
            },
        ];
        let stats = Stats::from_hours(&hours, day(1, 12), day(4, 0), Bucket::Day, 1);
        let answers: Vec<i64> = stats.buckets.iter().map(|b| b.counts.answers).collect();
        assert_eq!(answers, [5, 0, 4]);
        assert_eq!(stats.buckets[1].start, day(2, 0));
        assert_eq!(stats.totals.answers, 9);
        assert_eq!(
            stats.ungrounded_questions,
            [QuestionCount {
                text: "opening hours".into(),
                count: 3
            }]
        );
        let hourly = Stats::from_hours(&hours, day(1, 3), day(1, 5), Bucket::Hour, 10);
        assert_eq!(hourly.buckets.len(), 2);
        assert_eq!(hourly.totals.answers, 2);
        let json = serde_json::to_value(&stats).expect("serializes");
        assert_eq!(json["buckets"][0]["start"], "2024-05-01T00:00:00.000000Z");
        assert_eq!(json["buckets"][0]["answers"], 5);
        assert_eq!(json["totals"]["feedback_down"], 0);
    }
}
