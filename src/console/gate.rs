//! What every console request passes through, before and after its
//! handler:
//!
//! - the sealed sign-in cookie is opened and its token put in the
//!   `Authorization` header, so the façade's own extractors authenticate
//!   it (a request that already carries `Authorization: Bearer`, from an
//!   authenticating proxy, is left as it is); the idle clock moves, and a
//!   lapsed or foreign cookie is cleared;
//! - a form's `csrf_token` field is copied into `X-CSRFToken`, where the
//!   façade's CSRF check reads it;
//! - the notice an action left is read once;
//! - security headers go on every answer.

use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, Request, State};
use axum::http::header::{self, AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;

use super::frame::{Flash, NOTICE_COOKIE};
use super::session::{COOKIE, KEY_PURPOSE, Sealer, Session};
use crate::api::csrf::CSRF_HEADER;
use crate::api::extract::{Requirement, is_unsafe};
use crate::api::input::Query;
use crate::api::state::{AppState, Shared};

/// Scripts only from the console's own file, no inline script or style,
/// no framing, forms and fetches to this origin only.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// Console forms are small: ids, a token, a path.
const FORM_LIMIT: usize = 64 * 1024;

pub async fn gate(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    let now = k8s_openapi::jiff::Timestamp::now().as_second();
    let secure = is_https(request.headers());
    let (session_cookie, notice_cookie) = {
        let headers = request.headers();
        (cookie(headers, COOKIE), cookie(headers, NOTICE_COOKIE))
    };
    let mut set_session: Option<String> = None;
    if !request.headers().contains_key(AUTHORIZATION)
        && let Some(value) = session_cookie
        && let Some(sealer) = sealer(&state)
    {
        let idle = i64::try_from(state.console_idle.as_secs()).unwrap_or(i64::MAX);
        match sealer.open(&value).filter(|s| s.is_valid(now, idle)) {
            Some(session) => {
                if let Ok(bearer) = HeaderValue::from_str(&format!("Bearer {}", session.token)) {
                    request.headers_mut().insert(AUTHORIZATION, bearer);
                }
                if session.needs_refresh(now) {
                    let moved = Session { seen: now, ..session };
                    set_session = Some(session_cookie_header(&sealer.seal(&moved), moved.expires - now, secure));
                }
            }
            None => set_session = Some(clear_cookie_header(COOKIE, secure)),
        }
    }
    let had_notice = notice_cookie.is_some();
    request
        .extensions_mut()
        .insert(Flash::from_cookie(notice_cookie.as_deref()));
    let request = match csrf_from_form(request).await {
        Ok(request) => request,
        Err(response) => return with_headers(response),
    };

    let mut response = next.run(request).await;
    let sets_session = response
        .headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .any(|v| v.as_bytes().starts_with(format!("{COOKIE}=").as_bytes()));
    if let Some(value) = set_session.filter(|_| !sets_session)
        && let Ok(value) = HeaderValue::from_str(&value)
    {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    if had_notice && response.status().is_success() {
        let cleared = clear_cookie_header(NOTICE_COOKIE, secure);
        if let Ok(value) = HeaderValue::from_str(&cleared) {
            response.headers_mut().append(header::SET_COOKIE, value);
        }
    }
    with_headers(response)
}

fn sealer(state: &Shared) -> Option<Sealer> {
    let key = state.csrf().ok()?;
    Some(Sealer::new(key.derive(KEY_PURPOSE), &state.namespace))
}

/// Behind a TLS-terminating proxy or ingress, the scheme the browser used.
pub fn is_https(headers: &HeaderMap) -> bool {
    headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',')
                .next()
                .is_some_and(|p| p.trim().eq_ignore_ascii_case("https"))
        })
}

/// The value of cookie `name` in the request's `Cookie` headers.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value.to_string())
}

/// The sign-in cookie: HttpOnly (no script reads it), SameSite=Strict (no
/// other site's page sends it), only under `/console`, gone when the
/// token lapses, Secure when the browser came over TLS.
pub fn session_cookie_header(value: &str, max_age_seconds: i64, secure: bool) -> String {
    format!(
        "{COOKIE}={value}; Path=/console; Max-Age={}; HttpOnly; SameSite=Strict{}",
        max_age_seconds.max(0),
        if secure { "; Secure" } else { "" }
    )
}

pub fn clear_cookie_header(name: &str, secure: bool) -> String {
    format!(
        "{name}=; Path=/console; Max-Age=0; HttpOnly; SameSite=Strict{}",
        if secure { "; Secure" } else { "" }
    )
}

/// Copies a form's `csrf_token` into `X-CSRFToken` (a script's fetch sets
/// the header itself), leaving the body for the handler.
async fn csrf_from_form(request: Request) -> Result<Request, Response> {
    let is_form = request
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    if !is_unsafe(request.method()) || !is_form || request.headers().contains_key(CSRF_HEADER) {
        return Ok(request);
    }
    let (mut parts, body) = request.into_parts();
    let bytes = axum::body::to_bytes(body, FORM_LIMIT).await.map_err(|_| {
        Response::builder()
            .status(axum::http::StatusCode::PAYLOAD_TOO_LARGE)
            .body(Body::from("form too large"))
            .expect("a static response")
    })?;
    let token = form_urlencoded::parse(&bytes)
        .find(|(k, _)| k == "csrf_token")
        .map(|(_, v)| v.into_owned());
    if let Some(value) = token.and_then(|t| HeaderValue::from_str(&t).ok()) {
        parts.headers.insert(HeaderName::from_static(CSRF_HEADER), value);
    }
    Ok(Request::from_parts(parts, Body::from(bytes)))
}

fn with_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    for (name, value) in [
        (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "same-origin"),
        (header::X_FRAME_OPTIONS, "DENY"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    headers
        .entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    response
}

/// A form body's fields, repeated ones kept (`instance_ids=1&instance_ids=2`).
pub struct FormFields(pub Query);

impl<S: Send + Sync> FromRequest<S> for FormFields {
    type Rejection = super::error::PageError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = Bytes::from_request(request, state)
            .await
            .map_err(|e| crate::api::envelope::ApiError::field("body", e.body_text()))?;
        Ok(FormFields(Query::parse(&String::from_utf8_lossy(&bytes))))
    }
}

impl Requirement for FormFields {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_found_by_name() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; dbfleet_session=xyz; b=2"),
        );
        assert_eq!(cookie(&headers, COOKIE).as_deref(), Some("xyz"));
        assert_eq!(cookie(&headers, "dbfleet"), None);
    }

    #[test]
    fn the_cookie_is_secure_only_over_tls_and_always_strict() {
        let plain = session_cookie_header("v", 60, false);
        assert_eq!(
            plain,
            "dbfleet_session=v; Path=/console; Max-Age=60; HttpOnly; SameSite=Strict"
        );
        assert!(session_cookie_header("v", 60, true).ends_with("; Secure"));
        let mut headers = HeaderMap::new();
        assert!(!is_https(&headers));
        headers.insert("x-forwarded-proto", HeaderValue::from_static("https, http"));
        assert!(is_https(&headers));
    }

    #[tokio::test]
    async fn a_form_token_reaches_the_csrf_header_and_the_body_stays() {
        let request = Request::builder()
            .method("POST")
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from("back=%2Fconsole%2F&csrf_token=123.abc"))
            .unwrap();
        let request = csrf_from_form(request).await.unwrap();
        assert_eq!(request.headers()[CSRF_HEADER], "123.abc");
        let body = axum::body::to_bytes(request.into_body(), 1024).await.unwrap();
        assert_eq!(&body[..], b"back=%2Fconsole%2F&csrf_token=123.abc");
    }
}
