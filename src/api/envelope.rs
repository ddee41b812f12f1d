//! The response envelope every JSON answer shares (SPEC §3.1), the error
//! codes, and the `X-Request-ID` echo.

use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use k8s_openapi::jiff;
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

pub const REQUEST_ID_HEADER: &str = "x-request-id";

tokio::task_local! {
    /// The current request's id, so any response built while handling it
    /// (including rejections) carries it in the envelope.
    static REQUEST_ID: String;
}

/// Machine-readable outcome codes of the contract.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Code {
    Ok,
    PartialSuccess,
    ValidationError,
    CsrfFailed,
    BatchTooLarge,
    Unauthenticated,
    PermissionDenied,
    NotFound,
    MethodNotAllowed,
    NameConflict,
    TagInUse,
    DatabaseConnectionError,
    SyncDataError,
    Conflict,
    PayloadTooLarge,
    UpstreamUnavailable,
    ProbesBusy,
    TooManyRequests,
}

impl Code {
    /// Every code, in the order the contract's table lists them.
    pub const ALL: [Code; 18] = [
        Code::Ok,
        Code::PartialSuccess,
        Code::ValidationError,
        Code::CsrfFailed,
        Code::BatchTooLarge,
        Code::Unauthenticated,
        Code::PermissionDenied,
        Code::NotFound,
        Code::MethodNotAllowed,
        Code::NameConflict,
        Code::TagInUse,
        Code::DatabaseConnectionError,
        Code::SyncDataError,
        Code::Conflict,
        Code::PayloadTooLarge,
        Code::UpstreamUnavailable,
        Code::ProbesBusy,
        Code::TooManyRequests,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Code::Ok => "OK",
            Code::PartialSuccess => "PARTIAL_SUCCESS",
            Code::ValidationError => "VALIDATION_ERROR",
            Code::CsrfFailed => "CSRF_FAILED",
            Code::BatchTooLarge => "BATCH_TOO_LARGE",
            Code::Unauthenticated => "UNAUTHENTICATED",
            Code::PermissionDenied => "PERMISSION_DENIED",
            Code::NotFound => "NOT_FOUND",
            Code::MethodNotAllowed => "METHOD_NOT_ALLOWED",
            Code::NameConflict => "NAME_CONFLICT",
            Code::TagInUse => "TAG_IN_USE",
            Code::DatabaseConnectionError => "DATABASE_CONNECTION_ERROR",
            Code::SyncDataError => "SYNC_DATA_ERROR",
            Code::Conflict => "CONFLICT",
            Code::PayloadTooLarge => "PAYLOAD_TOO_LARGE",
            Code::UpstreamUnavailable => "UPSTREAM_UNAVAILABLE",
            Code::ProbesBusy => "PROBES_BUSY",
            Code::TooManyRequests => "TOO_MANY_REQUESTS",
        }
    }

    pub fn status(self) -> StatusCode {
        match self {
            Code::Ok => StatusCode::OK,
            Code::PartialSuccess => StatusCode::MULTI_STATUS,
            Code::ValidationError | Code::CsrfFailed | Code::BatchTooLarge => StatusCode::BAD_REQUEST,
            Code::Unauthenticated => StatusCode::UNAUTHORIZED,
            Code::PermissionDenied => StatusCode::FORBIDDEN,
            Code::NotFound => StatusCode::NOT_FOUND,
            Code::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Code::NameConflict
            | Code::TagInUse
            | Code::DatabaseConnectionError
            | Code::SyncDataError
            | Code::Conflict => StatusCode::CONFLICT,
            Code::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Code::UpstreamUnavailable | Code::ProbesBusy => StatusCode::SERVICE_UNAVAILABLE,
            Code::TooManyRequests => StatusCode::TOO_MANY_REQUESTS,
        }
    }
}

/// The envelope as documented in the OpenAPI document; `data` depends on
/// the endpoint.
#[derive(Serialize, ToSchema)]
pub struct Envelope<T> {
    pub success: bool,
    /// `OK`, `PARTIAL_SUCCESS`, or an error code.
    pub code: &'static str,
    pub message: String,
    pub data: T,
    pub request_id: String,
    /// RFC 3339, UTC.
    pub timestamp: String,
}

/// One invalid input field.
#[derive(Serialize, Clone, Debug, PartialEq, ToSchema)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        FieldError {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// A successful answer.
pub struct Reply<T> {
    code: Code,
    message: String,
    data: T,
}

impl<T: Serialize> Reply<T> {
    pub fn ok(data: T) -> Self {
        Reply {
            code: Code::Ok,
            message: "OK".into(),
            data,
        }
    }

    /// 201 for a created resource.
    pub fn created(data: T) -> Response {
        let mut response = Reply {
            code: Code::Ok,
            message: "created".into(),
            data,
        }
        .into_response();
        *response.status_mut() = StatusCode::CREATED;
        response
    }

    /// 200 when every item succeeded, 207 otherwise.
    pub fn batch(data: T, failed: usize, total: usize) -> Self {
        if failed == 0 {
            Reply {
                code: Code::Ok,
                message: format!("{total} of {total} succeeded"),
                data,
            }
        } else {
            Reply {
                code: Code::PartialSuccess,
                message: format!("{failed} of {total} failed"),
                data,
            }
        }
    }

    pub fn message(mut self, message: impl Into<String>) -> Self {
        self.message = message.into();
        self
    }

    /// The message and the data, for a caller in the same process (the
    /// console shows what a REST handler answered).
    pub fn into_parts(self) -> (String, T) {
        (self.message, self.data)
    }
}

impl<T: Serialize> IntoResponse for Reply<T> {
    fn into_response(self) -> Response {
        envelope_response(self.code, self.message, self.data)
    }
}

/// Every failure a handler can answer with.
#[derive(Debug)]
pub struct ApiError {
    pub code: Code,
    pub message: String,
    pub data: Value,
}

pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        ApiError {
            code,
            message: message.into(),
            data: Value::Null,
        }
    }

    pub fn with_data(mut self, data: Value) -> Self {
        self.data = data;
        self
    }

    /// 400 naming one field.
    pub fn field(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::fields(vec![FieldError::new(field, message)])
    }

    /// 400 naming every bad field; the message is the first one's.
    pub fn fields(errors: Vec<FieldError>) -> Self {
        let message = match errors.first() {
            Some(first) => first.message.clone(),
            None => "invalid input".into(),
        };
        ApiError::new(Code::ValidationError, message).with_data(serde_json::json!({ "errors": errors }))
    }

    pub fn not_found(what: impl Into<String>) -> Self {
        ApiError::new(Code::NotFound, format!("{} not found", what.into()))
    }

    /// Fails only with errors from talking to the Kubernetes API; the
    /// status code says what the API server thought of the request.
    pub fn kube(error: kube::Error) -> Self {
        match error {
            kube::Error::Api(status) => match status.code {
                404 => ApiError::new(Code::NotFound, status.message),
                409 => ApiError::new(
                    Code::Conflict,
                    "the resource was changed by someone else; reload and retry",
                ),
                400 | 422 => {
                    let field = status
                        .details
                        .as_ref()
                        .and_then(|d| d.causes.first())
                        .map(|c| c.field.clone())
                        .filter(|f| !f.is_empty())
                        .unwrap_or_else(|| "body".into());
                    ApiError::field(field, status.message)
                }
                code => {
                    tracing::warn!(code, reason = %status.reason, message = %status.message, "kubernetes API refused a request");
                    ApiError::new(
                        Code::UpstreamUnavailable,
                        format!("kubernetes API answered {code}: {}", status.reason),
                    )
                }
            },
            other => {
                tracing::warn!(error = %other, "kubernetes API unreachable");
                ApiError::new(Code::UpstreamUnavailable, "the Kubernetes API cannot be reached")
            }
        }
    }
}

impl From<kube::Error> for ApiError {
    fn from(error: kube::Error) -> Self {
        ApiError::kube(error)
    }
}

/// Allocating an id failed: the API server's answer, or 503 when the
/// counter could not be advanced.
impl From<crate::ids::IdError> for ApiError {
    fn from(error: crate::ids::IdError) -> Self {
        match error {
            crate::ids::IdError::Kube(e) => ApiError::kube(e),
            other => ApiError::new(Code::UpstreamUnavailable, other.to_string()),
        }
    }
}

/// Every slot of the probe budget stayed busy while the request waited:
/// the probe did not run, and trying again shortly may find a free slot.
impl From<crate::observe::ProbesBusy> for ApiError {
    fn from(busy: crate::observe::ProbesBusy) -> Self {
        ApiError::new(Code::ProbesBusy, busy.to_string()).with_data(serde_json::json!({
            "max_concurrent_probes": busy.size,
            "waited_ms": u64::try_from(busy.waited.as_millis()).unwrap_or(u64::MAX),
        }))
    }
}

/// Seconds a client is asked to wait before retrying after `PROBES_BUSY`.
const PROBES_BUSY_RETRY_AFTER: &str = "5";

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let retry_after = match self.code {
            Code::ProbesBusy => Some(HeaderValue::from_static(PROBES_BUSY_RETRY_AFTER)),
            // The seconds the error computed (`auth::too_many_failed_reviews`).
            Code::TooManyRequests => self.data["retry_after_seconds"].as_u64().map(HeaderValue::from),
            _ => None,
        };
        let mut response = envelope_response(self.code, self.message, self.data);
        if let Some(seconds) = retry_after {
            response.headers_mut().insert(axum::http::header::RETRY_AFTER, seconds);
        }
        response
    }
}

fn envelope_response<T: Serialize>(code: Code, message: String, data: T) -> Response {
    let envelope = Envelope {
        success: matches!(code, Code::Ok),
        code: code.as_str(),
        message,
        data,
        request_id: current_request_id(),
        timestamp: now_rfc3339(),
    };
    match serde_json::to_vec(&envelope) {
        Ok(body) => (
            code.status(),
            [(axum::http::header::CONTENT_TYPE, "application/json")],
            body,
        )
            .into_response(),
        // Only a non-string map key could fail here, and no response has one.
        Err(e) => {
            tracing::error!(error = %e, "response did not serialize");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

/// The id of the request being handled ("" outside of one).
pub fn current_request_id() -> String {
    REQUEST_ID.try_with(Clone::clone).unwrap_or_default()
}

pub fn now_rfc3339() -> String {
    format_time(jiff::Timestamp::now())
}

/// RFC 3339 in UTC with whole seconds, as the contract's examples show.
pub fn format_time(t: jiff::Timestamp) -> String {
    t.round(jiff::Unit::Second)
        .unwrap_or(t)
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// Middleware: takes the caller's `X-Request-ID` (when it is a sane token)
/// or makes one, answers with it, and exposes it to the envelope.
pub async fn request_id(request: Request, next: Next) -> Response {
    let id = request
        .headers()
        .get(REQUEST_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| is_sane_request_id(v))
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string());
    let mut response = REQUEST_ID.scope(id.clone(), next.run(request)).await;
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(REQUEST_ID_HEADER, value);
    }
    response
}

fn is_sane_request_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 128 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
}

pub async fn not_found_fallback() -> ApiError {
    ApiError::new(Code::NotFound, "no such endpoint")
}

pub async fn method_not_allowed_fallback() -> ApiError {
    ApiError::new(Code::MethodNotAllowed, "method not allowed on this endpoint")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_error_code_maps_to_its_documented_status() {
        assert_eq!(Code::NameConflict.status(), StatusCode::CONFLICT);
        assert_eq!(Code::CsrfFailed.status(), StatusCode::BAD_REQUEST);
        assert_eq!(Code::BatchTooLarge.status(), StatusCode::BAD_REQUEST);
        assert_eq!(Code::PayloadTooLarge.status(), StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(Code::UpstreamUnavailable.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(Code::PartialSuccess.status(), StatusCode::MULTI_STATUS);
        assert_eq!(Code::ProbesBusy.status(), StatusCode::SERVICE_UNAVAILABLE);
    }

    #[test]
    fn all_lists_every_code_once() {
        // Exhaustive: a new code does not compile until it is placed here,
        // and so in `Code::ALL` (which the OpenAPI document reads).
        let position = |code: Code| match code {
            Code::Ok => 0,
            Code::PartialSuccess => 1,
            Code::ValidationError => 2,
            Code::CsrfFailed => 3,
            Code::BatchTooLarge => 4,
            Code::Unauthenticated => 5,
            Code::PermissionDenied => 6,
            Code::NotFound => 7,
            Code::MethodNotAllowed => 8,
            Code::NameConflict => 9,
            Code::TagInUse => 10,
            Code::DatabaseConnectionError => 11,
            Code::SyncDataError => 12,
            Code::Conflict => 13,
            Code::PayloadTooLarge => 14,
            Code::UpstreamUnavailable => 15,
            Code::ProbesBusy => 16,
            Code::TooManyRequests => 17,
        };
        for (i, code) in Code::ALL.iter().enumerate() {
            assert_eq!(position(*code), i, "{}", code.as_str());
        }
    }

    #[test]
    fn busy_probes_are_a_503_that_says_when_to_retry() {
        let busy = crate::observe::ProbesBusy {
            size: 4,
            waited: std::time::Duration::from_millis(1500),
        };
        let e = ApiError::from(busy);
        assert_eq!((e.code, e.data["waited_ms"].as_u64()), (Code::ProbesBusy, Some(1500)));
        let response = e.into_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers()[axum::http::header::RETRY_AFTER], "5");
    }

    #[test]
    fn only_tame_request_ids_are_echoed() {
        assert!(is_sane_request_id("abc-123_x.y:z"));
        assert!(!is_sane_request_id(""));
        assert!(!is_sane_request_id("a b"));
        assert!(!is_sane_request_id(&"x".repeat(129)));
    }

    #[test]
    fn field_errors_carry_the_first_message() {
        let e = ApiError::fields(vec![
            FieldError::new("port", "bad port"),
            FieldError::new("host", "bad host"),
        ]);
        assert_eq!(e.code, Code::ValidationError);
        assert_eq!(e.message, "bad port");
        assert_eq!(e.data["errors"][1]["field"], "host");
    }

    #[test]
    fn kubernetes_validation_errors_name_the_field() {
        let status = kube::core::Status::failure("spec.port: Invalid value", "Invalid").with_code(422);
        let e = ApiError::kube(kube::Error::Api(status.boxed()));
        assert_eq!(e.code, Code::ValidationError);
    }

    #[test]
    fn timestamps_are_whole_second_utc() {
        let t: jiff::Timestamp = "2026-01-08T10:00:00.6Z".parse().unwrap();
        assert_eq!(format_time(t), "2026-01-08T10:00:01Z");
    }
}
