//! The [`KnowledgeBase`] and [`KnowledgeIngest`] ports' contract, one `pub async fn`
//! per rule, runnable against any adapter that implements both.
//!
//! [`knowledge_contract_tests!`](crate::knowledge_contract_tests) stamps them as
//! tests in the adapter's own test file, each under the contract deadline
//! ([`contract_timeout`](crate::contract_timeout)):
//!
//! ```text
//! async fn fresh() -> SqliteKnowledge { SqliteKnowledge::open_in_memory(None).expect("opens") }
//! colloquy_conformance::knowledge_contract_tests!(bm25, fresh);
//! ```
//!
//! Each check starts from an empty knowledge base.

use colloquy_core::{KnowledgeBase, KnowledgeIngest, NewDocument, NewPassage, Passage};

fn doc(id: &str, title: &str, passages: &[&str]) -> NewDocument {
    NewDocument {
        id: id.to_owned(),
        title: title.to_owned(),
        uri: format!("https://docs.example/{id}"),
        hash: format!("hash-of-{id}-{}", passages.join("|").len()),
        passages: passages
            .iter()
            .map(|t| NewPassage {
                heading: None,
                text: (*t).to_owned(),
            })
            .collect(),
    }
}

async fn search<K: KnowledgeBase>(kb: &K, query: &str, k: usize) -> Vec<Passage> {
    kb.search(query, k)
        .await
        .unwrap_or_else(|e| panic!("search {query:?} failed: {e}"))
}

async fn put<K: KnowledgeIngest>(kb: &K, d: &NewDocument) {
    kb.upsert_document(d)
        .await
        .unwrap_or_else(|e| panic!("upsert {} failed: {e}", d.id));
}

fn library() -> Vec<NewDocument> {
    vec![
        doc(
            "shipping.md",
            "Shipping",
            &[
                "Orders ship from our warehouse within two business days.",
                "International orders may pay customs duties on delivery.",
            ],
        ),
        doc(
            "security.md",
            "Security",
            &[
                "All data is encrypted at rest and in transit.",
                "Single sign-on works with any SAML identity provider such as Okta.",
            ],
        ),
        doc(
            "billing.md",
            "Billing",
            &[
                "Invoices are sent monthly by email.",
                "We accept credit cards and bank transfers for yearly plans.",
            ],
        ),
    ]
}

/// A passage holding the query's one rare word ranks first, with the passage's
/// document, title, URI and text as stored, and scores descending.
pub async fn exact_term_hit_ranks_first<K: KnowledgeBase + KnowledgeIngest>(kb: &K) {
    for d in library() {
        put(kb, &d).await;
    }
    let hits = search(kb, "Okta", 3).await;
    let first = hits.first().expect("a hit for an exact term");
    assert_eq!(first.document, "security.md");
    assert!(first.text.contains("Okta"), "{first:?}");
    assert_eq!(first.uri, "https://docs.example/security.md");
    assert!(first.title.contains("Security"), "{first:?}");
    assert!(!first.id.is_empty());
    for pair in hits.windows(2) {
        assert!(pair[0].score >= pair[1].score, "scores descend: {hits:?}");
    }
    let hits = search(kb, "which warehouse do orders ship from?", 3).await;
    assert_eq!(hits[0].document, "shipping.md", "{hits:?}");
    assert!(hits[0].text.contains("warehouse"));
}

/// Storing a document again replaces all its passages: old text is never found again.
pub async fn reingest_replaces_passages<K: KnowledgeBase + KnowledgeIngest>(kb: &K) {
    for d in library() {
        put(kb, &d).await;
    }
    let mut changed = doc(
        "billing.md",
        "Billing",
        &["Payment is due upon receipt by wire transfer or cryptocurrency."],
    );
    changed.hash = "hash-2".into();
    put(kb, &changed).await;
    let hits = search(kb, "invoices monthly email credit cards", 10).await;
    assert!(
        hits.iter()
            .all(|p| !p.text.contains("Invoices") && !p.text.contains("credit cards")),
        "old passages are gone: {hits:?}"
    );
    let hits = search(kb, "cryptocurrency", 3).await;
    assert_eq!(hits[0].document, "billing.md");
    let docs = kb.documents().await.expect("documents");
    let billing = docs.iter().find(|d| d.id == "billing.md").expect("listed");
    assert_eq!(billing.hash, "hash-2");
    assert_eq!(billing.passages, 1);
    assert_eq!(docs.len(), 3);
}

/// A deleted document's passages are never found; deleting it again says so.
pub async fn delete_removes<K: KnowledgeBase + KnowledgeIngest>(kb: &K) {
    for d in library() {
        put(kb, &d).await;
    }
    assert!(kb.delete_document("security.md").await.expect("delete"));
    let hits = search(kb, "Okta single sign-on SAML encrypted", 10).await;
    assert!(hits.iter().all(|p| p.document != "security.md"), "{hits:?}");
    assert!(!kb
        .delete_document("security.md")
        .await
        .expect("second delete"));
    let ids: Vec<String> = kb
        .documents()
        .await
        .expect("documents")
        .into_iter()
        .map(|d| d.id)
        .collect();
    assert_eq!(ids, ["billing.md", "shipping.md"]);
}

/// A search returns at most `k` passages; `k = 0` returns none.
pub async fn k_is_respected<K: KnowledgeBase + KnowledgeIngest>(kb: &K) {
    let texts: Vec<String> = (0..12)
        .map(|i| format!("Lighthouse keeper note number {i} about the lighthouse lamp."))
        .collect();
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    put(kb, &doc("notes.txt", "Notes", &refs)).await;
    assert_eq!(search(kb, "lighthouse lamp", 5).await.len(), 5);
    assert_eq!(search(kb, "lighthouse lamp", 1).await.len(), 1);
    assert_eq!(search(kb, "lighthouse lamp", 50).await.len(), 12);
    assert!(search(kb, "lighthouse lamp", 0).await.is_empty());
    let ids: std::collections::HashSet<String> = search(kb, "lighthouse", 12)
        .await
        .into_iter()
        .map(|p| p.id)
        .collect();
    assert_eq!(ids.len(), 12, "passage ids are unique");
}

/// Case and diacritics do not matter, in the query or in the text; non-Latin
/// scripts are searchable.
pub async fn case_and_diacritics_do_not_matter<K: KnowledgeBase + KnowledgeIngest>(kb: &K) {
    for d in library() {
        put(kb, &d).await;
    }
    put(
        kb,
        &doc(
            "menu.md",
            "Menü",
            &[
                "Our café in Zürich serves crème brûlée every Friday.",
                "Доставка по Москве бесплатная.",
            ],
        ),
    )
    .await;
    for query in ["creme brulee", "CRÈME BRÛLÉE", "zurich cafe", "ZÜRICH"] {
        let hits = search(kb, query, 3).await;
        assert!(
            hits.first()
                .is_some_and(|p| p.text.contains("crème brûlée")),
            "{query}: {hits:?}"
        );
    }
    let hits = search(kb, "москве доставка", 3).await;
    assert!(
        hits.first().is_some_and(|p| p.text.contains("Москве")),
        "{hits:?}"
    );
}

/// Query syntax of any backend is searched as plain words, never an error.
pub async fn operators_are_plain_words<K: KnowledgeBase + KnowledgeIngest>(kb: &K) {
    for d in library() {
        put(kb, &d).await;
    }
    for query in [
        "\"unbalanced",
        "NEAR(customs duties)",
        "customs AND OR NOT *",
        "title:customs^2 -duties",
        "'; DROP TABLE kb_passages; --",
        "?!",
        "   ",
    ] {
        let hits = kb
            .search(query, 3)
            .await
            .unwrap_or_else(|e| panic!("{query:?} failed: {e}"));
        if query.contains("customs") {
            assert_eq!(
                hits.first().map(|p| p.document.as_str()),
                Some("shipping.md"),
                "{query}"
            );
        }
    }
    assert_eq!(kb.documents().await.expect("documents").len(), 3);
}

/// Documents are listed by id with their title, URI, hash and passage count.
pub async fn documents_are_listed_by_id<K: KnowledgeBase + KnowledgeIngest>(kb: &K) {
    assert!(kb.documents().await.expect("documents").is_empty());
    for d in library() {
        put(kb, &d).await;
    }
    let docs = kb.documents().await.expect("documents");
    let ids: Vec<&str> = docs.iter().map(|d| d.id.as_str()).collect();
    assert_eq!(ids, ["billing.md", "security.md", "shipping.md"]);
    let security = &docs[1];
    assert_eq!(security.title, "Security");
    assert_eq!(security.uri, "https://docs.example/security.md");
    assert_eq!(security.passages, 2);
    assert_eq!(security.hash, library()[1].hash);
}
