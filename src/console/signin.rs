//! Signing in and out. A person pastes a bearer token; it is checked with
//! the façade's TokenReview (`Authenticator::authenticate`, with its
//! failed-review limit per client address) and kept sealed in the
//! sign-in cookie (`session.rs`). Sign-in and sign-out carry no CSRF token
//! (there is no caller yet, or none left), so they refuse a post another
//! site's page made (`Origin`, `Sec-Fetch-Site`).

use std::net::SocketAddr;

use askama::Template;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Redirect, Response};

use super::error::{PageError, html, is_console_path};
use super::frame::{Flash, Frame, Notice, redirect_with};
use super::gate::{FormFields, clear_cookie_header, is_https, session_cookie_header};
use super::session::{KEY_PURPOSE, MAX_COOKIE_VALUE, Sealer, Session};
use crate::api::envelope::{ApiError, Code};
use crate::api::extract::Requirement;
use crate::api::input::Query;
use crate::api::state::AppState;

#[derive(Template)]
#[template(path = "sign_in.html")]
pub struct SignInPage {
    pub frame: Frame,
    pub next: String,
    pub namespace: String,
}

/// `/` and `/console`: the overview.
pub async fn to_console() -> Redirect {
    Redirect::to("/console/")
}

pub async fn form(State(state): State<AppState>, flash: Flash, query: Query) -> Response {
    let mut frame = Frame::anonymous();
    frame.notice = flash.0;
    let next = query
        .get("next")
        .filter(|n| is_console_path(n))
        .unwrap_or("/console/")
        .to_string();
    html(&SignInPage {
        frame,
        next,
        namespace: state.namespace.clone(),
    })
}

/// The headers a cross-site form post carries: refused before anything is
/// read or set.
fn from_this_site(headers: &HeaderMap) -> Result<(), PageError> {
    let cross_site = headers
        .get("sec-fetch-site")
        .is_some_and(|v| v.as_bytes() == b"cross-site");
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    let origin_elsewhere = match (headers.get(header::ORIGIN).and_then(|o| o.to_str().ok()), host) {
        (Some("null"), _) => true,
        (Some(origin), Some(host)) => origin.split_once("://").map(|(_, rest)| rest) != Some(host),
        _ => false,
    };
    if cross_site || origin_elsewhere {
        return Err(PageError::Refused(ApiError::new(
            Code::CsrfFailed,
            "this form was sent from another site",
        )));
    }
    Ok(())
}

pub async fn sign_in(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    FormFields(form): FormFields,
) -> Result<Response, PageError> {
    from_this_site(&headers)?;
    let next = form.get("next").filter(|n| is_console_path(n)).map(str::to_owned);
    let token = form.get("token").unwrap_or_default();
    let token = token.strip_prefix("Bearer ").unwrap_or(token).trim().to_string();
    let again = |message: &str| Ok(redirect_with(Some("/console/sign-in"), Notice::error(message)));
    if token.is_empty() {
        return again("Paste a bearer token to sign in.");
    }
    let authorization = format!("Bearer {token}");
    let caller = match state.auth.authenticate(Some(&authorization), Some(peer.ip())).await {
        Ok(caller) => caller,
        Err(e) if e.code == Code::Unauthenticated => {
            return again("The API server did not accept that token (TokenReview).");
        }
        Err(e) => return Err(e.into()),
    };
    let key = state.csrf()?;
    let now = k8s_openapi::jiff::Timestamp::now().as_second();
    let session = Session::new(token, now);
    if session.expires <= now {
        return again("That token has expired.");
    }
    let sealed = Sealer::new(key.derive(KEY_PURPOSE), &state.namespace).seal(&session);
    if sealed.len() > MAX_COOKIE_VALUE {
        return again(
            "That token is too long to keep in a cookie; use an authenticating proxy instead (docs/console.md).",
        );
    }
    tracing::info!(user = %caller.username, "signed in to the console");
    let mut response = redirect_with(
        next.as_deref(),
        Notice::ok(format!("Signed in as {}.", caller.username)),
    );
    let cookie = session_cookie_header(&sealed, session.expires - now, is_https(&headers));
    response.headers_mut().append(
        header::SET_COOKIE,
        HeaderValue::from_str(&cookie).map_err(|e| ApiError::new(Code::ValidationError, e.to_string()))?,
    );
    Ok(response)
}

pub async fn sign_out(headers: HeaderMap) -> Result<Response, PageError> {
    from_this_site(&headers)?;
    let mut response = redirect_with(Some("/console/sign-in"), Notice::ok("Signed out."));
    let cleared = clear_cookie_header(super::session::COOKIE, is_https(&headers));
    if let Ok(value) = HeaderValue::from_str(&cleared) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    Ok(response.into_response())
}

impl Requirement for HeaderMap {}
impl<T> Requirement for ConnectInfo<T> {}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.insert(*k, HeaderValue::from_static(v));
        }
        map
    }

    #[test]
    fn posts_from_another_site_are_refused() {
        assert!(from_this_site(&headers(&[("host", "dbfleet:8000")])).is_ok());
        assert!(from_this_site(&headers(&[("host", "dbfleet:8000"), ("origin", "http://dbfleet:8000")])).is_ok());
        for bad in [
            headers(&[("host", "dbfleet:8000"), ("origin", "https://evil.example")]),
            headers(&[("host", "dbfleet:8000"), ("origin", "null")]),
            headers(&[("host", "dbfleet:8000"), ("sec-fetch-site", "cross-site")]),
        ] {
            assert!(matches!(from_this_site(&bad), Err(PageError::Refused(_))));
        }
    }
}
