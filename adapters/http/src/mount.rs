//! Where the API sits in an embedder's URL space: the base path of its endpoints
//! (`/api/chats` by default) and whether the service endpoints (`/healthz`,
//! `/readyz`, `/openapi.json`, the widget's files) are served. The router knows only
//! the canonical paths; [`Mount::route`] maps a request's path onto them, parsing it
//! once. Handlers keep the request's real URI, so the links they write
//! (`Link: <...>; rel="next"`) name the mounted path. The OpenAPI document is
//! rendered for the mount ([`crate::openapi::document`]): its paths are the mounted
//! ones, and it is served at `<base>/openapi.json` whether or not the service
//! endpoints are.

use bytes::Bytes;

use crate::error::ApiError;
use crate::router::Route;

/// The base path the router's routes are written under.
pub(crate) const CANONICAL_BASE: &str = "/api/chats";

/// The API's place in the URL space.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Mount {
    /// The base path, without a trailing slash (empty: the API at the root).
    base: String,
    /// Whether `/healthz`, `/readyz`, `/openapi.json` and the widget's paths are
    /// served at the root.
    service_endpoints: bool,
    /// The OpenAPI document of this mount.
    openapi: Bytes,
}

impl Default for Mount {
    fn default() -> Self {
        Self {
            base: CANONICAL_BASE.to_owned(),
            service_endpoints: true,
            openapi: crate::openapi::document(CANONICAL_BASE, true),
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
        self.openapi = crate::openapi::document(&self.base, self.service_endpoints);
        self
    }

    /// This mount with the service endpoints served (`true`) or not.
    pub(crate) fn with_service_endpoints(mut self, on: bool) -> Self {
        self.service_endpoints = on;
        self.openapi = crate::openapi::document(&self.base, self.service_endpoints);
        self
    }

    /// The base path in use (`""` for the root).
    pub(crate) fn base(&self) -> &str {
        &self.base
    }

    /// The OpenAPI document of this mount (JSON).
    pub(crate) fn openapi(&self) -> &Bytes {
        &self.openapi
    }

    /// The part of `path` after the base path, when `path` is the base or under it
    /// (`base/...`); compared as the path arrives (not percent-decoded).
    fn under_base<'a>(&self, path: &'a str) -> Option<&'a str> {
        let rest = path.strip_prefix(self.base.as_str())?;
        (rest.is_empty() || rest.starts_with('/')).then_some(rest)
    }

    /// The route (as the router knows it) of a request for `path`: `Ok(None)` when
    /// the path is outside the mount or names no route (404), 400 `invalid_field` for
    /// a path under the base that is not UTF-8 once percent-decoded. Service
    /// endpoints come first; then a path equal to the base or under it. Under the
    /// default base the path is parsed once.
    pub(crate) fn route(&self, path: &str) -> Result<Option<Route>, ApiError> {
        if self.base == CANONICAL_BASE {
            // The request's path is the canonical one: one parse decides both.
            return match Route::parse_decoded(path) {
                Ok(Some(route)) if route.is_service() => {
                    Ok(self.service_endpoints.then_some(route))
                }
                parsed => match self.under_base(path) {
                    Some(_) => parsed,
                    None => Ok(None),
                },
            };
        }
        if self.service_endpoints {
            if let Some(route) = Route::parse(path).filter(Route::is_service) {
                return Ok(Some(route));
            }
        }
        match self.under_base(path) {
            Some(rest) => Route::parse_decoded(&format!("{CANONICAL_BASE}{rest}")),
            None => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::static_files::Asset;

    fn route(m: &Mount, path: &str) -> Option<Route> {
        m.route(path).expect("decodes")
    }

    #[test]
    fn the_default_mount_changes_nothing() {
        let m = Mount::default();
        assert_eq!(route(&m, "/api/chats/sessions/"), Some(Route::Sessions));
        assert_eq!(
            route(&m, "/api/chats/openapi.json"),
            Some(Route::MountedOpenApi)
        );
        assert_eq!(route(&m, "/healthz"), Some(Route::Healthz));
        assert_eq!(route(&m, "/openapi.json"), Some(Route::OpenApi));
        assert_eq!(route(&m, "/"), Some(Route::Asset(Asset::Demo)));
        assert_eq!(route(&m, "/widget.js"), Some(Route::Asset(Asset::WidgetJs)));
        assert_eq!(route(&m, "/elsewhere"), None);
        assert_eq!(route(&m, "/api/chatsx/sessions"), None);
        // Decoded, a path outside the base names an API route: still outside.
        assert_eq!(route(&m, "/api/chat%73/sessions/"), None);
        assert_eq!(route(&m, "/%68ealthz"), Some(Route::Healthz));
        // Not UTF-8: 400 under the base, 404 outside it.
        assert!(m.route("/api/chats/sessions/%FF").is_err());
        assert_eq!(route(&m, "/elsewhere/%FF"), None);
    }

    #[test]
    fn a_base_path_maps_onto_the_canonical_routes() {
        let m = Mount::default().with_base("support/api/chats/");
        assert_eq!(m.base(), "/support/api/chats");
        assert_eq!(
            route(&m, "/support/api/chats/sessions/x/"),
            Some(Route::Session("x".into()))
        );
        assert_eq!(route(&m, "/support/api/chats"), None, "the base alone");
        assert_eq!(
            route(&m, "/support/api/chats/openapi.json"),
            Some(Route::MountedOpenApi)
        );
        assert_eq!(route(&m, "/api/chats/sessions/"), None);
        assert_eq!(route(&m, "/support/api/chatsx"), None);
        assert_eq!(route(&m, "/healthz"), Some(Route::Healthz));
        assert!(m.route("/support/api/chats/sessions/%FF").is_err());
        let root = Mount::default().with_base("/");
        assert_eq!(root.base(), "");
        assert_eq!(route(&root, "/sessions/"), Some(Route::Sessions));
        assert_eq!(
            route(&root, "/healthz"),
            Some(Route::Healthz),
            "service first"
        );
        assert_eq!(route(&root, "/api/chats/sessions/"), None);
    }

    #[test]
    fn service_endpoints_can_be_left_out() {
        for m in [
            Mount::default().with_service_endpoints(false),
            Mount::default()
                .with_base("/support")
                .with_service_endpoints(false),
        ] {
            for path in [
                "/healthz",
                "/readyz/",
                "/openapi.json",
                "/",
                "/widget.js",
                "/widget/demo",
            ] {
                assert_eq!(route(&m, path), None, "{path}");
            }
            let base = m.base().to_owned();
            assert_eq!(
                route(&m, &format!("{base}/sessions/")),
                Some(Route::Sessions)
            );
            assert_eq!(
                route(&m, &format!("{base}/openapi.json")),
                Some(Route::MountedOpenApi),
                "the document stays, under the base"
            );
        }
    }

    #[test]
    fn the_document_follows_the_mount() {
        let doc =
            |m: &Mount| -> serde_json::Value { serde_json::from_slice(m.openapi()).expect("json") };
        let default = Mount::default();
        assert_eq!(
            default.openapi().as_ref(),
            crate::openapi::OPENAPI_JSON.as_bytes()
        );
        let m = Mount::default().with_base("/support");
        let paths = doc(&m)["paths"].clone();
        assert!(paths.get("/support/sessions/").is_some());
        assert!(paths.get("/support/openapi.json").is_some());
        assert!(paths.get("/api/chats/sessions/").is_none());
        assert!(paths.get("/healthz").is_some());
        let off = m.with_service_endpoints(false);
        let paths = doc(&off)["paths"].clone();
        assert!(paths.get("/healthz").is_none());
        assert!(paths.get("/openapi.json").is_none());
        assert!(paths.get("/support/openapi.json").is_some());
    }
}
