//! The adapters a [`crate::ChatService`] works through, shared with its generation
//! tasks ([`crate::chat`], [`crate::resume`]). A leaf module: it imports only ports.

use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::clock::{now_micros, Clock};
use crate::events::SessionEvents;
use crate::ports::{ChatModel, ChatStore};
use crate::streams::StreamLog;

/// The adapters a service works through, shared with its generation tasks.
pub(crate) struct Deps {
    pub(crate) store: Arc<dyn ChatStore>,
    pub(crate) model: Arc<dyn ChatModel>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) streams: Arc<dyn StreamLog>,
    /// Where changes are announced; see [`crate::announce`].
    pub(crate) events: Arc<dyn SessionEvents>,
    /// Where webhooks are enqueued, when configured; see [`crate::webhooks`].
    pub(crate) webhooks: Option<crate::webhooks::Webhooks>,
}

impl Deps {
    /// The current time, to the microsecond every store keeps.
    pub(crate) fn now(&self) -> DateTime<Utc> {
        now_micros(self.clock.as_ref())
    }
}
