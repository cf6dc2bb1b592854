//! `GET /healthz` (the process serves) and `GET /readyz` (the store answers).

use http::StatusCode;
use serde_json::json;

use crate::app::App;
use crate::error::ApiError;
use crate::json;
use crate::Response;

/// 200 `{"status":"ok"}` whenever the process serves.
pub(crate) fn healthz() -> Response {
    json::response(StatusCode::OK, &json!({"status": "ok"}))
}

/// 200 `{"status":"ready"}` when the store answers; otherwise 503 `store_unavailable`
/// with `Retry-After`, whatever the store's failure (it is logged, aggregated by
/// [`failure_log`](crate::failure_log)).
pub(crate) async fn readyz(app: &App) -> Response {
    match app.service.ready().await {
        Ok(()) => json::response(StatusCode::OK, &json!({"status": "ready"})),
        Err(e) => {
            let mut cause = e.to_string();
            let mut source = std::error::Error::source(&e);
            while let Some(s) = source {
                cause.push_str(": ");
                cause.push_str(&s.to_string());
                source = s.source();
            }
            crate::failure_log::record("readiness_check_failed", &cause);
            ApiError::store_unavailable().into_response()
        }
    }
}
