//! What each answer cost, and the token budgets, through the `colloquy` binary on
//! every store (memory, SQLite, Redis, Redis Cluster, PostgreSQL): `metadata.usage`
//! on whole, streamed, failed and cancelled answers (the OpenAI-compatible adapter
//! against the fake server; the stats count them and price them); a per-IP token
//! quota refuses with 429 and its headers, the deployment budget with 503
//! `budget_exhausted`, neither storing the question nor asking the model; a failed
//! upstream charges nothing it did not produce; and two instances on one Redis
//! share one deployment budget.

#![allow(missing_docs)]

mod common;

use colloquy_openai::fake::{FakeServer, Reply, Step, SERVER_MODEL};
use colloquy_test_support::postgres::{self, Database};
use http::{Method, StatusCode};
use serde_json::{json, Value};

use common::{
    call_with, client, delete_prefix, must, open_stream, redis_answers, skip_missing, temp_dir,
    unique, Answer, HttpClient, Server, TempDir, DEADLINE,
};

/// Where a test's server keeps its data.
enum Place {
    Memory,
    /// The default store: `./colloquy.db` in the test's directory.
    Sqlite,
    Redis(Shared),
    Postgres(Database),
}

/// A Redis (or Redis Cluster) URL and a private key prefix, deleted at the end.
struct Shared {
    store: String,
    nodes: Vec<String>,
    prefix: String,
}

impl Drop for Shared {
    fn drop(&mut self) {
        for node in &self.nodes {
            delete_prefix(node, &self.prefix);
        }
    }
}

fn standalone() -> Option<Shared> {
    let url = "redis://127.0.0.1:6379/0";
    if let Err(e) = redis_answers(url) {
        skip_missing("Redis at 127.0.0.1:6379", &e);
        return None;
    }
    Some(Shared {
        store: url.to_owned(),
        nodes: vec![url.to_owned()],
        prefix: format!("{}:", unique("colloquy-spend")),
    })
}

fn cluster() -> Option<Shared> {
    let Ok(nodes) = std::env::var("COLLOQUY_REDIS_CLUSTER_NODES") else {
        assert!(
            !common::services_required(),
            "COLLOQUY_REDIS_CLUSTER_NODES is required (COLLOQUY_REQUIRE_SERVICES=1)"
        );
        eprintln!("SKIPPED: set COLLOQUY_REDIS_CLUSTER_NODES (scripts/test.sh starts a cluster)");
        return None;
    };
    let urls: Vec<String> = nodes
        .split(',')
        .map(|n| format!("redis://{}", n.trim()))
        .collect();
    if let Err(e) = redis_answers(&urls[0]) {
        skip_missing("Redis Cluster", &e);
        return None;
    }
    Some(Shared {
        store: format!("redis-cluster://{nodes}"),
        nodes: urls,
        prefix: format!("{}:", unique("colloquy-spend-cluster")),
    })
}

async fn database() -> Option<Database> {
    match Database::create(&postgres::url()).await {
        Ok(db) => Some(db),
        Err(e) => {
            skip_missing("PostgreSQL (COLLOQUY_POSTGRES_URL)", &e);
            None
        }
    }
}

impl Place {
    fn args(&self) -> Vec<String> {
        match self {
            Self::Memory => vec!["--store".into(), "memory".into()],
            Self::Sqlite => Vec::new(),
            Self::Redis(shared) => vec![
                "--store".into(),
                shared.store.clone(),
                "--redis-prefix".into(),
                shared.prefix.clone(),
            ],
            Self::Postgres(db) => vec!["--store".into(), db.url().to_owned()],
        }
    }
}

/// The binary on `place` with `--model openai` against `fake`, and `extra`.
fn start(dir: &TempDir, place: &Place, fake: &FakeServer, extra: &[&str]) -> Server {
    let base_url = fake.base_url();
    let mut args: Vec<String> = place.args();
    args.extend(
        [
            "--model",
            "openai",
            "--openai-base-url",
            &base_url,
            "--openai-model",
            "e2e-model",
            "--openai-max-attempts",
            "1",
            "--max-answer-tokens",
            "64",
        ]
        .map(str::to_owned),
    );
    args.extend(extra.iter().map(|s| (*s).to_owned()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut command = Server::command(dir.path(), &args);
    command
        .env_remove("COLLOQUY_OPENAI_API_KEY")
        .env("OPENAI_API_KEY", "sk-e2e-key");
    Server::spawn(command)
}

async fn new_session(client: &HttpClient, base: &str, id: &str) {
    let created = must(
        client,
        Method::POST,
        &format!("{base}/api/chats/sessions/"),
        Some(json!({ "session_id": id })),
    )
    .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
}

/// A whole chat from the client at `ip` (sent as `X-Forwarded-For`).
async fn chat_from(client: &HttpClient, base: &str, ip: &str, session: &str) -> Answer {
    tokio::time::timeout(
        DEADLINE,
        call_with(
            client,
            Method::POST,
            &format!("{base}/api/chats/messages/chat/"),
            &[("x-forwarded-for", ip)],
            Some(json!({"session_id": session, "message": "How much is it?"})),
        ),
    )
    .await
    .expect("an answer in time")
    .expect("the server answers")
}

async fn message(client: &HttpClient, base: &str, id: &str) -> Value {
    let got = must(
        client,
        Method::GET,
        &format!("{base}/api/chats/messages/{id}/"),
        None,
    )
    .await;
    assert_eq!(got.status, StatusCode::OK, "{}", got.text);
    got.body
}

async fn messages(client: &HttpClient, base: &str, session: &str) -> Vec<Value> {
    let got = must(
        client,
        Method::GET,
        &format!("{base}/api/chats/messages/?session_id={session}&limit=1000"),
        None,
    )
    .await;
    assert_eq!(got.status, StatusCode::OK, "{}", got.text);
    got.body.as_array().cloned().unwrap_or_default()
}

/// `metadata.usage` of a stored answer, checked for its shape.
fn usage(answer: &Value) -> &Value {
    let usage = &answer["metadata"]["usage"];
    for field in ["prompt_tokens", "completion_tokens", "total_tokens"] {
        assert!(usage[field].is_u64(), "usage.{field}: {answer}");
    }
    assert!(usage["estimated"].is_boolean(), "{answer}");
    assert!(usage["model"].is_string(), "{answer}");
    usage
}

fn tokens(usage: &Value) -> u64 {
    usage["prompt_tokens"].as_u64().unwrap_or(0) + usage["completion_tokens"].as_u64().unwrap_or(0)
}

/// Usage on whole, streamed, failed and cancelled answers; the requests the adapter
/// sent; the stats' token counters and cost (not on a cluster, whose stats read
/// visits all 16384 slots: over a minute in a debug build).
async fn usage_on_every_answer(place: Place) {
    let check_stats = !matches!(&place, Place::Redis(shared) if shared.nodes.len() > 1);
    let fake = FakeServer::start(vec![
        Reply::completion("Bonjour !", "stop"),
        Reply::Stream(vec![
            Step::role(),
            Step::delta("Ça "),
            Step::delta("va"),
            Step::finish("stop"),
            Step::usage(30, 4),
            Step::done(),
        ]),
        Reply::Stream(vec![
            Step::role(),
            Step::delta("Partial "),
            Step::error("boom"),
        ]),
        Reply::Stream(vec![
            Step::role(),
            Step::delta("Slow "),
            Step::pause(60_000),
            Step::delta("never"),
            Step::done(),
        ]),
    ])
    .await;
    let dir = temp_dir("spend-usage");
    let server = start(&dir, &place, &fake, &["--model-price", "1000/2000"]);
    let base = server.base.clone();
    let client = client();
    new_session(&client, &base, "spend").await;

    // Whole: the server's figures.
    let whole = chat_from(&client, &base, "127.0.0.1", "spend").await;
    assert_eq!(whole.status, StatusCode::OK, "{}", whole.text);
    let stored = message(
        &client,
        &base,
        whole.body["response_id"].as_str().expect("id"),
    )
    .await;
    let u = usage(&stored);
    assert_eq!(
        (u["prompt_tokens"].as_u64(), u["completion_tokens"].as_u64()),
        (Some(20), Some(5))
    );
    assert_eq!(u["model"], SERVER_MODEL);
    assert_eq!(u["estimated"], false);

    // Streamed: the usage chunk the adapter asked for.
    let stream_url = format!("{base}/api/chats/messages/chat/stream/");
    let ask = |text: &str| Some(json!({"session_id": "spend", "message": text}));
    let (status, mut events) =
        open_stream(&client, Method::POST, &stream_url, &[], ask("Ça va ?")).await;
    assert_eq!(status, StatusCode::OK);
    let all = events.rest().await;
    let id = all[0].json()["response_id"]
        .as_str()
        .expect("id")
        .to_owned();
    let u = usage(&message(&client, &base, &id).await).clone();
    assert_eq!(
        (u["prompt_tokens"].as_u64(), u["completion_tokens"].as_u64()),
        (Some(30), Some(4))
    );
    assert_eq!(u["estimated"], false);

    // Failed mid-stream: what was produced, estimated, named after the configured model.
    let (_, mut events) = open_stream(&client, Method::POST, &stream_url, &[], ask("Fail")).await;
    let all = events.rest().await;
    let id = all[0].json()["response_id"]
        .as_str()
        .expect("id")
        .to_owned();
    let failed = message(&client, &base, &id).await;
    assert_eq!(failed["metadata"]["finish_reason"], "error", "{failed}");
    let u = usage(&failed);
    assert_eq!(u["estimated"], true);
    assert_eq!(
        u["completion_tokens"], 2,
        "\"Partial \" is 8 characters: {u}"
    );
    assert_eq!(u["model"], "e2e-model");
    assert!(u["prompt_tokens"].as_u64() > Some(0));

    // Cancelled: what was produced before the cancel, estimated.
    let (_, mut events) = open_stream(&client, Method::POST, &stream_url, &[], ask("Slow")).await;
    let first = events.next_event().await.expect("the first chunk");
    let id = first.json()["response_id"].as_str().expect("id").to_owned();
    let cancel = must(
        &client,
        Method::POST,
        &format!("{base}/api/chats/messages/chat/stream/{id}/cancel/"),
        Some(json!({})),
    )
    .await;
    assert_eq!(cancel.status, StatusCode::ACCEPTED, "{}", cancel.text);
    let last = events.rest().await.pop().expect("a terminal event").json();
    assert_eq!(last["finish_reason"], "cancelled", "{last}");
    let cancelled = message(&client, &base, &id).await;
    let u = usage(&cancelled);
    assert_eq!(u["estimated"], true);
    assert_eq!(u["completion_tokens"], 2, "\"Slow \" is 5 characters: {u}");

    // The adapter asked for usage on streams and passed --max-answer-tokens.
    let sent = fake.requests();
    assert_eq!(sent.len(), 4);
    assert!(sent.iter().all(|r| r.body["max_tokens"] == 64));
    assert_eq!(sent[1].body["stream_options"]["include_usage"], true);

    // The stats count every answer's tokens and price them.
    if !check_stats {
        server.stop();
        return;
    }
    let answers: Vec<Value> = messages(&client, &base, "spend")
        .await
        .into_iter()
        .filter(|m| m["role"] == "assistant")
        .collect();
    assert_eq!(answers.len(), 4);
    let sum = |field: &str| -> u64 {
        answers
            .iter()
            .map(|a| a["metadata"]["usage"][field].as_u64().unwrap_or(0))
            .sum()
    };
    let stats = must(
        &client,
        Method::GET,
        &format!("{base}/api/chats/stats/"),
        None,
    )
    .await;
    assert_eq!(stats.status, StatusCode::OK, "{}", stats.text);
    let totals = &stats.body["totals"];
    assert_eq!(totals["tokens_in"].as_u64(), Some(sum("prompt_tokens")));
    assert_eq!(
        totals["tokens_out"].as_u64(),
        Some(sum("completion_tokens"))
    );
    #[allow(clippy::cast_precision_loss)]
    let expected =
        sum("prompt_tokens") as f64 * 1000.0 / 1e6 + sum("completion_tokens") as f64 * 2000.0 / 1e6;
    let cost = totals["cost"].as_f64().expect("a cost with --model-price");
    assert!((cost - expected).abs() < 1e-6, "{cost} vs {expected}");
    server.stop();
}

/// A per-IP token quota and the deployment budget: a failed upstream charges
/// nothing; past a quota, 429 naming it (or 503 `budget_exhausted`) with
/// `Retry-After`, before the question is stored or the model asked.
async fn budgets_refuse(place: Place) {
    let fake = FakeServer::start(vec![
        Reply::status(500, "down"),
        Reply::completion("One", "stop"),
        Reply::status(500, "down again"),
        Reply::completion("Two", "stop"),
        Reply::completion("Three", "stop"),
        Reply::completion("Four", "stop"),
    ])
    .await;
    let dir = temp_dir("spend-budgets");
    let server = start(
        &dir,
        &place,
        &fake,
        &[
            "--trusted-proxies",
            "127.0.0.1/32",
            "--rate-tokens-per-ip",
            "51/day",
            "--token-budget",
            "100/day",
        ],
    );
    let base = server.base.clone();
    let client = client();
    new_session(&client, &base, "budget").await;
    let visitor = "192.0.2.1";
    // Each answer costs 25 tokens (20 + 5); failures cost nothing: 50 used after
    // four chats, so the fifth is admitted (it would not be had a failure charged
    // even one token), and takes the address to 75.
    for (i, expected) in [502, 200, 502, 200, 200].into_iter().enumerate() {
        let answer = chat_from(&client, &base, visitor, "budget").await;
        assert_eq!(
            answer.status.as_u16(),
            expected,
            "chat {i}: {}",
            answer.text
        );
    }
    let before = messages(&client, &base, "budget").await.len();
    let refused = chat_from(&client, &base, visitor, "budget").await;
    assert_eq!(
        refused.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{}",
        refused.text
    );
    assert_eq!(refused.body["code"], "rate_limited");
    assert!(
        refused.body["error"]
            .as_str()
            .is_some_and(|e| e.contains("tokens-per-ip")),
        "{}",
        refused.text
    );
    let header = |a: &Answer, name: &str| {
        a.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    assert_eq!(
        header(&refused, "ratelimit-policy").as_deref(),
        Some("\"tokens-per-ip\";q=51;w=86400")
    );
    let retry: u64 = header(&refused, "retry-after")
        .and_then(|v| v.parse().ok())
        .expect("Retry-After");
    assert!((1..=86_400).contains(&retry), "{retry}");
    assert!(header(&refused, "ratelimit").is_some_and(|v| v.starts_with("\"tokens-per-ip\";r=0;")));
    assert_eq!(
        messages(&client, &base, "budget").await.len(),
        before,
        "the refused question is not stored"
    );
    assert_eq!(fake.requests().len(), 5, "the model was not asked");

    // Another address has its own quota, and takes the deployment to 100 of 100.
    let other = chat_from(&client, &base, "192.0.2.2", "budget").await;
    assert_eq!(other.status, StatusCode::OK, "{}", other.text);
    let spent = chat_from(&client, &base, "192.0.2.3", "budget").await;
    assert_eq!(
        spent.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        spent.text
    );
    assert_eq!(spent.body["code"], "budget_exhausted");
    let retry: u64 = header(&spent, "retry-after")
        .and_then(|v| v.parse().ok())
        .expect("Retry-After");
    assert!((1..=86_400).contains(&retry), "{retry}");
    assert_eq!(
        header(&spent, "ratelimit-policy").as_deref(),
        Some("\"token-budget\";q=100;w=86400")
    );
    assert_eq!(fake.requests().len(), 6, "the model was not asked");
    server.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_and_budgets_on_memory() {
    usage_on_every_answer(Place::Memory).await;
    budgets_refuse(Place::Memory).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_and_budgets_on_sqlite() {
    usage_on_every_answer(Place::Sqlite).await;
    budgets_refuse(Place::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_and_budgets_on_redis() {
    let Some(a) = standalone() else { return };
    usage_on_every_answer(Place::Redis(a)).await;
    let Some(b) = standalone() else { return };
    budgets_refuse(Place::Redis(b)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_and_budgets_on_redis_cluster() {
    let Some(a) = cluster() else { return };
    usage_on_every_answer(Place::Redis(a)).await;
    let Some(b) = cluster() else { return };
    budgets_refuse(Place::Redis(b)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_and_budgets_on_postgres() {
    let Some(a) = database().await else { return };
    usage_on_every_answer(Place::Postgres(a)).await;
    let Some(b) = database().await else { return };
    budgets_refuse(Place::Postgres(b)).await;
}

/// Chats from `workers` clients on one instance, each in a session of its own (so
/// every answer costs the same), until the deployment budget refuses; the stored
/// tokens of each admitted answer.
async fn spend_until_refused(base: String, worker: usize) -> (Vec<u64>, bool) {
    let client = client();
    let mut admitted = Vec::new();
    for i in 0..200 {
        let session = format!("w{worker}-{i}");
        new_session(&client, &base, &session).await;
        let answer = tokio::time::timeout(
            DEADLINE,
            call_with(
                &client,
                Method::POST,
                &format!("{base}/api/chats/messages/chat/"),
                &[],
                Some(json!({"session_id": session, "message": "hi"})),
            ),
        )
        .await
        .expect("in time")
        .expect("answered");
        match answer.status {
            StatusCode::OK => {
                let id = answer.body["response_id"].as_str().expect("id").to_owned();
                admitted.push(tokens(usage(&message(&client, &base, &id).await)));
            }
            StatusCode::SERVICE_UNAVAILABLE => {
                assert_eq!(answer.body["code"], "budget_exhausted", "{}", answer.text);
                assert!(answer.headers.contains_key("retry-after"));
                return (admitted, true);
            }
            other => panic!("unexpected {other}: {}", answer.text),
        }
    }
    (admitted, false)
}

/// Two instances on `shared` with one deployment budget: the tokens both admitted
/// stay within the budget plus what the answers in flight could add, and once it
/// is spent both refuse.
async fn two_instances_share_one_budget(shared: Shared) {
    const BUDGET: u64 = 300;
    const WORKERS: usize = 4;
    let dir = temp_dir("spend-shared");
    let place = Place::Redis(shared);
    let mut args = place.args();
    args.extend(["--token-budget".to_owned(), format!("{BUDGET}/day")]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let a = Server::start(dir.path(), &args);
    let b = Server::start(dir.path(), &args);
    let mut tasks = Vec::new();
    for w in 0..WORKERS * 2 {
        let base = if w % 2 == 0 { &a.base } else { &b.base }.clone();
        tasks.push(tokio::spawn(spend_until_refused(base, w)));
    }
    let mut all = Vec::new();
    for task in tasks {
        let (admitted, refused) = task.await.expect("worker");
        assert!(refused, "every worker met the budget");
        all.extend(admitted);
    }
    let sum: u64 = all.iter().sum();
    let most = all.iter().copied().max().unwrap_or(0);
    let in_flight = u64::try_from(WORKERS * 2).unwrap_or(u64::MAX);
    eprintln!(
        "two instances: {} answers admitted, {sum} tokens of a {BUDGET} budget (each ≤ {most})",
        all.len()
    );
    assert!(sum >= BUDGET, "refused only once spent: {sum}");
    assert!(
        sum <= BUDGET + in_flight * most,
        "{sum} tokens admitted: more than the budget plus the answers in flight"
    );
    // Spent for both, whoever spent it.
    let client = client();
    for (name, base) in [("late-a", &a.base), ("late-b", &b.base)] {
        new_session(&client, base, name).await;
        let refused = chat_from(&client, base, "127.0.0.1", name).await;
        assert_eq!(
            refused.status,
            StatusCode::SERVICE_UNAVAILABLE,
            "{}",
            refused.text
        );
        assert_eq!(refused.body["code"], "budget_exhausted");
    }
    a.stop();
    b.stop();
    drop(place);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_on_redis_share_one_deployment_budget() {
    let Some(shared) = standalone() else { return };
    two_instances_share_one_budget(shared).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_on_redis_cluster_share_one_deployment_budget() {
    let Some(shared) = cluster() else { return };
    two_instances_share_one_budget(shared).await;
}
