//! Where the API sits in an embedder's URL space: the base path of its endpoints
//! (`/api/chats` by default) and whether the service endpoints (`/healthz`,
//! `/readyz`, the widget's files) are served. The router knows only the canonical
//! paths; [`Mount::canonical`] maps a request's path onto them. Handlers keep the
//! request's real URI, so the links they write (`Link: <...>; rel="next"`) name the
//! mounted path.

use std::borrow::Cow;

use crate::router::Route;

/// The base path the router's routes are written under.
pub(crate) const CANONICAL_BASE: &str = "/api/chats";

/// The API's place in the URL space.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Mount {
    /// The base path, without a trailing slash (empty: the API at the root).
    base: String,
    /// Whether `/healthz`, `/readyz` and the widget's paths are served.
    service_endpoints: bool,
}

impl Default for Mount {
    fn default() -> Self {
        Self {
            base: CANONICAL_BASE.to_owned(),
            service_endpoints: true,
        }
    }
}

/// `path` with one leading slash and no trailing one (`"/"` and `""` become `""`).
fn normalize(path: &str) -> String {
    let trimmed = path.trim().trim_end_matches('/');
    if trimmed.is_empty() || trimmed.starts_with('/') {
        trimmed.to_owned()
    } else {
        format!("/{trimmed}")
    }
}

impl Mount {
    /// This mount with the API's endpoints under `base`.
    pub(crate) fn with_base(mut self, base: &str) -> Self {
        self.base = normalize(base);
        self
    }

    /// This mount with the service endpoints served (`true`) or not.
    pub(crate) fn with_service_endpoints(mut self, on: bool) -> Self {
        self.service_endpoints = on;
        self
    }

    /// The base path in use (`""` for the root).
    pub(crate) fn base(&self) -> &str {
        &self.base
    }

    /// The canonical path (as the router knows it) of a request for `path`, or
    /// `None` when the path is outside the mount (404). Service endpoints come
    /// first; then a path equal to the base or under it (`base/...`).
    pub(crate) fn canonical<'a>(&self, path: &'a str) -> Option<Cow<'a, str>> {
        if self.service_endpoints
            && matches!(
                Route::parse(path),
                Some(Route::Healthz | Route::Readyz | Route::OpenApi | Route::Asset(_))
            )
        {
            return Some(Cow::Borrowed(path));
        }
        let rest = path.strip_prefix(self.base.as_str())?;
        if !rest.is_empty() && !rest.starts_with('/') {
            return None;
        }
        if self.base == CANONICAL_BASE {
            return Some(Cow::Borrowed(path));
        }
        Some(Cow::Owned(format!("{CANONICAL_BASE}{rest}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_mount_changes_nothing() {
        let m = Mount::default();
        for path in ["/api/chats/sessions/", "/healthz", "/", "/widget.js"] {
            assert_eq!(m.canonical(path).as_deref(), Some(path));
        }
        assert_eq!(m.canonical("/elsewhere"), None);
        assert_eq!(m.canonical("/api/chatsx/sessions"), None);
    }

    #[test]
    fn a_base_path_maps_onto_the_canonical_routes() {
        let m = Mount::default().with_base("support/api/chats/");
        assert_eq!(m.base(), "/support/api/chats");
        assert_eq!(
            m.canonical("/support/api/chats/sessions/x/").as_deref(),
            Some("/api/chats/sessions/x/")
        );
        assert_eq!(
            m.canonical("/support/api/chats").as_deref(),
            Some("/api/chats")
        );
        assert_eq!(m.canonical("/api/chats/sessions/"), None);
        assert_eq!(m.canonical("/support/api/chatsx"), None);
        assert_eq!(m.canonical("/healthz").as_deref(), Some("/healthz"));
        let root = Mount::default().with_base("/");
        assert_eq!(root.base(), "");
        assert_eq!(
            root.canonical("/sessions/").as_deref(),
            Some("/api/chats/sessions/")
        );
    }

    #[test]
    fn service_endpoints_can_be_left_out() {
        let m = Mount::default().with_service_endpoints(false);
        for path in ["/healthz", "/readyz/", "/", "/widget.js", "/widget/demo"] {
            assert_eq!(m.canonical(path), None, "{path}");
        }
        assert!(m.canonical("/api/chats/sessions/").is_some());
    }
}
