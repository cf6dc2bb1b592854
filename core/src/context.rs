//! Context assembly: which earlier messages the model sees.

use crate::message::{ChatMessage, Role};
use crate::model::ContextMessage;

/// How much history the model is given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ContextBudget {
    /// At most this many of the newest messages (the new user message included).
    pub max_messages: usize,
    /// At most this many characters of text over all messages kept. The system
    /// messages and the newest message are always kept, even over budget.
    pub max_chars: usize,
}

impl Default for ContextBudget {
    fn default() -> Self {
        Self {
            max_messages: 50,
            max_chars: 32_000,
        }
    }
}

/// Builds the model's context from the session's system messages and its newest
/// messages (`recent`, oldest first, ending with the new user message).
///
/// Every system message is kept, in write order, ahead of the rest; of the other
/// messages the newest are kept while they fit the budget.
#[must_use]
pub fn assemble(
    system: &[ChatMessage],
    recent: &[ChatMessage],
    budget: ContextBudget,
) -> Vec<ContextMessage> {
    let chars = |m: &ChatMessage| m.message.chars().count();
    let mut used: usize = system.iter().map(chars).sum();
    let conversation: Vec<&ChatMessage> =
        recent.iter().filter(|m| m.role != Role::System).collect();
    let mut kept = Vec::new();
    for m in conversation.iter().rev() {
        let newest = kept.is_empty();
        let full = system.len() + kept.len() >= budget.max_messages;
        if !newest && (full || used + chars(m) > budget.max_chars) {
            break;
        }
        used += chars(m);
        kept.push(*m);
    }
    kept.reverse();
    system
        .iter()
        .chain(kept)
        .map(|m| ContextMessage {
            role: m.role,
            content: m.message.clone(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;
    use proptest::prelude::*;
    use uuid::Uuid;

    fn msg(role: Role, text: &str) -> ChatMessage {
        ChatMessage {
            id: Uuid::new_v4(),
            session: Uuid::nil(),
            message: text.into(),
            role,
            metadata: crate::Metadata::new(),
            timestamp: Utc::now(),
            is_deleted: false,
        }
    }

    #[test]
    fn keeps_system_and_newest_within_budget() {
        let system = vec![msg(Role::System, "be brief")];
        let recent = vec![
            msg(Role::User, "one"),
            msg(Role::Assistant, "two"),
            msg(Role::User, "three"),
        ];
        let budget = ContextBudget {
            max_messages: 3,
            max_chars: 1000,
        };
        let ctx = assemble(&system, &recent, budget);
        let texts: Vec<&str> = ctx.iter().map(|m| m.content.as_str()).collect();
        assert_eq!(texts, ["be brief", "two", "three"]);
    }

    #[test]
    fn newest_message_survives_a_tiny_budget() {
        let recent = vec![
            msg(Role::User, "older"),
            msg(Role::User, "a long new question"),
        ];
        let ctx = assemble(
            &[],
            &recent,
            ContextBudget {
                max_messages: 1,
                max_chars: 3,
            },
        );
        assert_eq!(ctx.len(), 1);
        assert_eq!(ctx[0].content, "a long new question");
    }

    proptest! {
        #[test]
        fn context_is_a_suffix_within_budget(
            lens in proptest::collection::vec(1usize..50, 1..40),
            max_messages in 1usize..20,
            max_chars in 1usize..400,
        ) {
            let recent: Vec<ChatMessage> = lens.iter().map(|n| msg(Role::User, &"x".repeat(*n))).collect();
            let ctx = assemble(&[], &recent, ContextBudget { max_messages, max_chars });
            prop_assert!(!ctx.is_empty());
            prop_assert!(ctx.len() <= max_messages.max(1));
            let total: usize = ctx.iter().map(|m| m.content.len()).sum();
            prop_assert!(ctx.len() == 1 || total <= max_chars);
            let tail: Vec<&str> = recent[recent.len() - ctx.len()..].iter().map(|m| m.message.as_str()).collect();
            let got: Vec<&str> = ctx.iter().map(|m| m.content.as_str()).collect();
            prop_assert_eq!(got, tail);
        }
    }
}
