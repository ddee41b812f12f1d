//! What every page's frame shows (`templates/base.html`): who is signed
//! in, the CSRF token its forms carry, what the caller may do, and the
//! notice an action left for the page it returns to.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};

use super::access::Can;
use super::error::{PageError, is_console_path};
use crate::api::auth::Caller;
use crate::api::extract::Requirement;
use crate::api::state::Shared;

/// The cookie that carries an action's outcome to the page after the
/// redirect (post, redirect, get), read once.
pub const NOTICE_COOKIE: &str = "dbfleet_notice";

/// Which part of the console a page belongs to (the highlighted link).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Section {
    None,
    Overview,
    Instances,
    Search,
    Findings,
    Tags,
    Sessions,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Notice {
    pub ok: bool,
    pub text: String,
}

impl Notice {
    pub fn ok(text: impl Into<String>) -> Notice {
        Notice {
            ok: true,
            text: text.into(),
        }
    }

    pub fn error(text: impl Into<String>) -> Notice {
        Notice {
            ok: false,
            text: text.into(),
        }
    }

    fn encode(&self) -> String {
        form_urlencoded::Serializer::new(String::new())
            .append_pair(if self.ok { "ok" } else { "error" }, &self.text)
            .finish()
    }

    fn decode(value: &str) -> Option<Notice> {
        let (kind, text) = form_urlencoded::parse(value.as_bytes()).next()?;
        // Bounded: it is shown on a page, as text.
        let text: String = text.chars().take(2000).collect();
        match kind.as_ref() {
            "ok" => Some(Notice::ok(text)),
            "error" => Some(Notice::error(text)),
            _ => None,
        }
    }
}

/// The notice the request's cookie carried, if any (the gate reads it).
#[derive(Clone, Debug, Default)]
pub struct Flash(pub Option<Notice>);

impl Flash {
    pub fn from_cookie(value: Option<&str>) -> Flash {
        Flash(value.and_then(Notice::decode))
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Flash {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(parts.extensions.get::<Flash>().cloned().unwrap_or_default())
    }
}

impl Requirement for Flash {}

pub struct Frame {
    /// Empty when nobody is signed in (the sign-in and error pages).
    pub user: String,
    pub csrf: String,
    pub section: Section,
    pub notice: Option<Notice>,
    pub can: Can,
}

impl Frame {
    /// The frame of a page shown to `caller`.
    pub async fn of(state: &Shared, caller: &Caller, section: Section, flash: Flash) -> Result<Frame, PageError> {
        let now = k8s_openapi::jiff::Timestamp::now().as_second();
        Ok(Frame {
            user: caller.username.clone(),
            csrf: state.csrf()?.issue(caller, now).0,
            section,
            notice: flash.0,
            can: Can::ask(state, caller).await?,
        })
    }

    /// A frame without a caller.
    pub fn anonymous() -> Frame {
        Frame {
            user: String::new(),
            csrf: String::new(),
            section: Section::None,
            notice: None,
            can: Can::default(),
        }
    }

    /// Whether the page belongs to the section `name` (the templates ask).
    pub fn at(&self, name: &str) -> bool {
        let current = match self.section {
            Section::None => "",
            Section::Overview => "overview",
            Section::Instances => "instances",
            Section::Search => "search",
            Section::Findings => "findings",
            Section::Tags => "tags",
            Section::Sessions => "sessions",
        };
        current == name
    }
}

/// Back to `back` (a console page, else the overview) with `notice` shown
/// there once.
pub fn redirect_with(back: Option<&str>, notice: Notice) -> Response {
    let back = back.filter(|b| is_console_path(b)).unwrap_or("/console/");
    let mut response = Redirect::to(back).into_response();
    let cookie = format!(
        "{NOTICE_COOKIE}={}; Path=/console; Max-Age=60; HttpOnly; SameSite=Strict",
        notice.encode().replace(';', "%3B")
    );
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    debug_assert_eq!(response.status(), StatusCode::SEE_OTHER);
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_notice_survives_its_cookie() {
        for notice in [
            Notice::ok("instance db-1: connected in 3 ms"),
            Notice::error("a; b=c <script>"),
        ] {
            let encoded = notice.encode();
            assert!(!encoded.contains(';') && !encoded.contains(' '), "{encoded}");
            assert_eq!(Notice::decode(&encoded), Some(notice));
        }
        assert_eq!(Notice::decode("other=x"), None);
    }

    #[test]
    fn a_redirect_goes_only_to_the_console() {
        let away = redirect_with(Some("https://evil.example/"), Notice::ok("x"));
        assert_eq!(away.headers()[header::LOCATION], "/console/");
        let back = redirect_with(Some("/console/instances?page=2"), Notice::ok("x"));
        assert_eq!(back.headers()[header::LOCATION], "/console/instances?page=2");
        assert!(
            back.headers()[header::SET_COOKIE]
                .to_str()
                .unwrap()
                .starts_with("dbfleet_notice=ok=")
        );
    }
}
