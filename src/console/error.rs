//! What a page answers when it cannot be shown: a page too, never a blank
//! one or the JSON envelope. A missing or rejected sign-in goes to the
//! sign-in page; a permission refused (or a form without its CSRF token:
//! a forged post) is 403; anything else shows the façade's message with
//! its status (an API server out of reach is 503 and says so).

use askama::Template;
use axum::http::{StatusCode, Uri, header};
use axum::response::{IntoResponse, Redirect, Response};

use super::frame::Frame;
use crate::api::envelope::{ApiError, Code};

#[derive(Debug)]
pub enum PageError {
    /// Not signed in (or the sign-in lapsed): to the sign-in page, then
    /// back to `next`.
    SignIn { next: String },
    /// Refused by RBAC, or a state-changing form without a valid CSRF
    /// token.
    Refused(ApiError),
    /// Anything else the façade answered.
    Failed(ApiError),
}

impl PageError {
    /// A rejection of the request to `uri`.
    pub fn refused(error: ApiError, uri: &Uri) -> PageError {
        match error.code {
            Code::Unauthenticated => PageError::SignIn {
                next: uri
                    .path_and_query()
                    .map(|p| p.as_str().to_string())
                    .filter(|p| is_console_path(p))
                    .unwrap_or_else(|| "/console/".into()),
            },
            _ => PageError::from(error),
        }
    }
}

impl From<ApiError> for PageError {
    fn from(error: ApiError) -> PageError {
        match error.code {
            Code::Unauthenticated => PageError::SignIn {
                next: "/console/".into(),
            },
            Code::PermissionDenied | Code::CsrfFailed => PageError::Refused(error),
            _ => PageError::Failed(error),
        }
    }
}

/// Whether `path` is a page of the console (where `next` and `back` may
/// send a browser): no other host, no other part of the façade.
pub fn is_console_path(path: &str) -> bool {
    path.starts_with("/console/") && !path.contains("//") && !path.contains('\\')
}

#[derive(Template)]
#[template(path = "error.html")]
pub struct ErrorPage {
    pub frame: Frame,
    pub status: u16,
    pub title: &'static str,
    pub message: String,
    pub code: &'static str,
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let (status, title, error) = match self {
            PageError::SignIn { next } => {
                let query = form_urlencoded::Serializer::new(String::new())
                    .append_pair("next", &next)
                    .finish();
                return Redirect::to(&format!("/console/sign-in?{query}")).into_response();
            }
            PageError::Refused(error) => (StatusCode::FORBIDDEN, "Not allowed", error),
            PageError::Failed(error) => {
                let status = error.code.status();
                let title = match status {
                    StatusCode::NOT_FOUND => "Not found",
                    StatusCode::SERVICE_UNAVAILABLE => "The façade or the Kubernetes API is not available",
                    StatusCode::TOO_MANY_REQUESTS => "Too many requests",
                    _ => "The request failed",
                };
                (status, title, error)
            }
        };
        let page = ErrorPage {
            frame: Frame::anonymous(),
            status: status.as_u16(),
            title,
            message: error.message,
            code: error.code.as_str(),
        };
        (status, html(&page)).into_response()
    }
}

/// A rendered page; a template that cannot render (a bug) is a 500 that
/// says so, not a panic.
pub fn html(page: &impl Template) -> Response {
    match page.render() {
        Ok(body) => ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], body).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "a console template failed to render");
            (StatusCode::INTERNAL_SERVER_ERROR, "the page could not be rendered").into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_console_paths_are_followed() {
        assert!(is_console_path("/console/instances?page=2"));
        for bad in [
            "/api/v1/instances",
            "//evil.example/console/",
            "/console//evil",
            "https://x/console/",
            "/console\\x",
        ] {
            assert!(!is_console_path(bad), "{bad}");
        }
    }

    #[test]
    fn refusals_become_the_right_page() {
        let uri: Uri = "/console/instances?page=2".parse().unwrap();
        let signin = PageError::refused(ApiError::new(Code::Unauthenticated, "no token"), &uri).into_response();
        assert_eq!(signin.status(), StatusCode::SEE_OTHER);
        assert_eq!(
            signin.headers()[header::LOCATION],
            "/console/sign-in?next=%2Fconsole%2Finstances%3Fpage%3D2"
        );
        for code in [Code::PermissionDenied, Code::CsrfFailed] {
            let page = PageError::refused(ApiError::new(code, "no"), &uri).into_response();
            assert_eq!(page.status(), StatusCode::FORBIDDEN, "{code:?}");
        }
        let gone = PageError::from(ApiError::new(Code::UpstreamUnavailable, "API server down")).into_response();
        assert_eq!(gone.status(), StatusCode::SERVICE_UNAVAILABLE);
    }

    #[tokio::test]
    async fn an_api_server_error_is_a_page_with_its_message() {
        let error = ApiError::new(Code::UpstreamUnavailable, "the Kubernetes API did not answer <in time>");
        let page = PageError::from(error).into_response();
        assert_eq!(page.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(page.headers()[header::CONTENT_TYPE], "text/html; charset=utf-8");
        let body = axum::body::to_bytes(page.into_body(), 1 << 20).await.unwrap();
        let body = String::from_utf8(body.to_vec()).unwrap();
        assert!(
            body.contains("The façade or the Kubernetes API is not available"),
            "{body}"
        );
        assert!(
            body.contains("the Kubernetes API did not answer &#60;in time&#62;"),
            "{body}"
        );
        assert!(body.contains("UPSTREAM_UNAVAILABLE"), "{body}");
    }
}
