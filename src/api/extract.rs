//! Typed extractors: what a handler needs is in its signature, and every
//! rejection is the envelope (SPEC §3.1, §3.3).
//!
//! - [`Caller`]: an authenticated caller; for unsafe methods also a valid
//!   CSRF token bound to it.
//! - [`Authorized<P, R>`]: a caller whom RBAC allows permission `P` on
//!   resource `R` (`Authorized<View, Instances>`), else 403.
//! - [`Conditionally<P, R>`]: a permission the handler asks for only when
//!   the request calls for it; nothing is asked while extracting.
//! - [`Id<R>`]: the `{id}` path segment as a positive integer, else 404
//!   naming the resource; [`Name<R>`]: a path segment that is a name.
//! - [`JsonBody<T>`], [`JsonOrForm<T>`]: the body parsed into `T`, else 400
//!   naming the field (413 when too large).
//!
//! Each extractor also says what it asks of the caller ([`Requirement`]),
//! so the route table (`routes.rs`) reads every endpoint's permission from
//! its handler's type.

use std::fmt;
use std::marker::PhantomData;
use std::net::SocketAddr;

use axum::body::Bytes;
use axum::extract::multipart::Multipart;
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Path, Request, State};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method};
use serde::de::DeserializeOwned;

use super::auth::{Caller, Guarded, Permission};
use super::csrf::CSRF_HEADER;
use super::envelope::{ApiError, Code};
use super::input::{Query, parse_json, parse_json_or_form, path_id};
use super::state::{AppState, Shared};

// ---------------------------------------------------------------- markers

/// A permission as a type, for [`Authorized`] and [`Conditionally`].
pub trait PermissionType: Send + Sync + 'static {
    const PERMISSION: Permission;
}

/// A guarded resource as a type, for [`Authorized`] and [`Conditionally`].
pub trait ResourceType: Send + Sync + 'static {
    const GUARDED: Guarded;
}

/// What a path segment names, for [`Id`] and [`Name`].
pub trait Noun: Send + Sync + 'static {
    /// How a message names one of them (`instance 7 not found`).
    const NOUN: &'static str;
}

/// `view`: `list` in RBAC.
pub struct View;
/// `get`.
pub struct Get;
/// `create`.
pub struct Create;
/// `update`.
pub struct Update;
/// `delete`.
pub struct Delete;

impl PermissionType for View {
    const PERMISSION: Permission = Permission::View;
}
impl PermissionType for Get {
    const PERMISSION: Permission = Permission::Get;
}
impl PermissionType for Create {
    const PERMISSION: Permission = Permission::Create;
}
impl PermissionType for Update {
    const PERMISSION: Permission = Permission::Update;
}
impl PermissionType for Delete {
    const PERMISSION: Permission = Permission::Delete;
}

/// `dbinstances`.
pub struct Instances;
/// `dbtags`.
pub struct Tags;
/// `dbinventories`: an instance's databases and accounts.
pub struct Inventories;
/// Sync sessions (named, guarded as instances).
pub struct Sessions;
/// Database accounts of an instance (named, guarded as instances).
pub struct Accounts;

impl ResourceType for Instances {
    const GUARDED: Guarded = Guarded::Instances;
}
impl ResourceType for Tags {
    const GUARDED: Guarded = Guarded::Tags;
}
impl ResourceType for Inventories {
    const GUARDED: Guarded = Guarded::Inventories;
}
impl Noun for Instances {
    const NOUN: &'static str = "instance";
}
impl Noun for Tags {
    const NOUN: &'static str = "tag";
}
impl Noun for Sessions {
    const NOUN: &'static str = "sync session";
}
impl Noun for Accounts {
    const NOUN: &'static str = "account";
}

// ---------------------------------------------------------------- callers

fn now_seconds() -> i64 {
    k8s_openapi::jiff::Timestamp::now().as_second()
}

/// Whether a method changes something, so it needs a CSRF token.
pub fn is_unsafe(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let authorization = parts.headers.get(AUTHORIZATION).and_then(|v| v.to_str().ok());
        // The TCP peer: behind a proxy, the proxy (docs/security.md).
        let client = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(peer)| peer.ip());
        let caller = state.auth.authenticate(authorization, client).await?;
        if is_unsafe(&parts.method) {
            let token = parts.headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok());
            state.csrf()?.check(&caller, token, now_seconds())?;
        }
        Ok(caller)
    }
}

/// A caller whom RBAC allows `P` on `R` in the façade's namespace:
/// 401/400 `CSRF_FAILED` as [`Caller`], then 403 `PERMISSION_DENIED`.
pub struct Authorized<P, R> {
    pub caller: Caller,
    needs: PhantomData<fn() -> (P, R)>,
}

impl<P: PermissionType, R: ResourceType> FromRequestParts<AppState> for Authorized<P, R> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let caller = Caller::from_request_parts(parts, state).await?;
        state.auth.require(&caller, P::PERMISSION, R::GUARDED).await?;
        Ok(Authorized {
            caller,
            needs: PhantomData,
        })
    }
}

/// A permission the handler needs only for some requests (decided from the
/// body): extracting it asks nothing; [`Conditionally::allowed`] asks RBAC.
pub struct Conditionally<P, R>(PhantomData<fn() -> (P, R)>);

impl<P: PermissionType, R: ResourceType> Conditionally<P, R> {
    /// Whether RBAC allows `caller` `P` on `R`.
    pub async fn allowed(&self, state: &Shared, caller: &Caller) -> Result<bool, ApiError> {
        state.auth.allowed(caller, P::PERMISSION, R::GUARDED).await
    }
}

impl<S: Send + Sync, P, R> FromRequestParts<S> for Conditionally<P, R> {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(_: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Conditionally(PhantomData))
    }
}

// ---------------------------------------------------------------- input

/// The `{id}` path segment of an `R`: a positive integer, else 404
/// `NOT_FOUND` naming what the path would have named (`instance x`).
/// Handlers take it apart: `Id(id, ..): Id<Instances>`.
pub struct Id<R>(pub i64, pub PhantomData<fn() -> R>);

impl<S: Send + Sync, R: Noun> FromRequestParts<S> for Id<R> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match segment(parts, state, "id").await {
            Some(raw) => Ok(Id(path_id(&raw, R::NOUN)?, PhantomData)),
            None => Err(ApiError::not_found(R::NOUN)),
        }
    }
}

/// The path segment naming an `R` (a sync session, an account): the only
/// one, or the one called `{name}` beside an `{id}`; percent-decoded. 404
/// `NOT_FOUND` naming the resource when it cannot be read (not UTF-8).
/// Handlers take it apart: `Name(name, ..): Name<Sessions>`.
pub struct Name<R>(pub String, pub PhantomData<fn() -> R>);

impl<S: Send + Sync, R: Noun> FromRequestParts<S> for Name<R> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match segment(parts, state, "name").await {
            Some(name) => Ok(Name(name, PhantomData)),
            None => Err(ApiError::not_found(R::NOUN)),
        }
    }
}

/// The path parameter `key`, or the only one there is; `None` when the
/// path cannot be decoded.
async fn segment<S: Send + Sync>(parts: &mut Parts, state: &S, key: &str) -> Option<String> {
    let Path(params) = Path::<Vec<(String, String)>>::from_request_parts(parts, state)
        .await
        .ok()?;
    match params.as_slice() {
        [(_, only)] => Some(only.clone()),
        many => many.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone()),
    }
}

/// The raw body, with axum's own rejection (too large, unreadable) turned
/// into the envelope: 413 `PAYLOAD_TOO_LARGE` or 400 naming `body`.
async fn body<S: Send + Sync>(request: Request, state: &S) -> Result<Bytes, ApiError> {
    Bytes::from_request(request, state).await.map_err(|e| {
        if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(Code::PayloadTooLarge, "request body too large")
        } else {
            ApiError::field("body", e.body_text())
        }
    })
}

/// A JSON body as `T`; a bad one is a 400 naming the field
/// ([`parse_json`]).
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        Ok(JsonBody(parse_json(&body(request, state).await?)?))
    }
}

/// A JSON or `application/x-www-form-urlencoded` body as `T`
/// ([`parse_json_or_form`]).
pub struct JsonOrForm<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonOrForm<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let headers: HeaderMap = request.headers().clone();
        Ok(JsonOrForm(parse_json_or_form(&headers, &body(request, state).await?)?))
    }
}

// ---------------------------------------------------------------- access

/// What an endpoint asks of its caller, read from its handler's extractors.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Access {
    /// A bearer token is needed (and a CSRF token for unsafe methods).
    pub authenticated: bool,
    /// Permissions every request needs.
    pub required: Vec<(Permission, Guarded)>,
    /// Permissions only some requests need (the handler says which).
    pub conditional: Vec<(Permission, Guarded)>,
}

impl fmt::Display for Access {
    /// `public`, `authenticated`, `view dbinstances`, or
    /// `view dbinstances; create dbinstances (conditional)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let needs =
            |(permission, resource): &(Permission, Guarded)| format!("{} {}", permission.name(), resource.plural());
        let mut parts: Vec<String> = self.required.iter().map(needs).collect();
        parts.extend(self.conditional.iter().map(|n| format!("{} (conditional)", needs(n))));
        match (parts.is_empty(), self.authenticated) {
            (false, _) => f.write_str(&parts.join("; ")),
            (true, true) => f.write_str("authenticated"),
            (true, false) => f.write_str("public"),
        }
    }
}

/// What one extractor asks of the caller; nothing by default. Every
/// extractor a routed handler takes implements it, so a new kind of
/// extractor cannot slip past the route table unnoticed.
pub trait Requirement {
    fn add_to(_access: &mut Access) {}
}

impl Requirement for Caller {
    fn add_to(access: &mut Access) {
        access.authenticated = true;
    }
}

impl<P: PermissionType, R: ResourceType> Requirement for Authorized<P, R> {
    fn add_to(access: &mut Access) {
        access.authenticated = true;
        access.required.push((P::PERMISSION, R::GUARDED));
    }
}

impl<P: PermissionType, R: ResourceType> Requirement for Conditionally<P, R> {
    fn add_to(access: &mut Access) {
        access.conditional.push((P::PERMISSION, R::GUARDED));
    }
}

impl<T: Requirement, E> Requirement for Result<T, E> {
    fn add_to(access: &mut Access) {
        T::add_to(access);
    }
}

impl<S> Requirement for State<S> {}
impl<T> Requirement for Path<T> {}
impl<R> Requirement for Id<R> {}
impl<R> Requirement for Name<R> {}
impl<T> Requirement for JsonBody<T> {}
impl<T> Requirement for JsonOrForm<T> {}
impl Requirement for Query {}
impl Requirement for Multipart {}

/// What a handler asks of its caller, from the extractor list axum infers
/// for it (`Handler<T, _>`'s `T`: a marker, then the extractors).
pub trait HandlerAccess {
    fn access() -> Access;
}

/// A handler without arguments.
impl HandlerAccess for ((),) {
    fn access() -> Access {
        Access::default()
    }
}

macro_rules! handler_access {
    ($($ty:ident),+) => {
        impl<M, $($ty: Requirement),+> HandlerAccess for (M, $($ty,)+) {
            fn access() -> Access {
                let mut access = Access::default();
                $($ty::add_to(&mut access);)+
                access
            }
        }
    };
}

handler_access!(T1);
handler_access!(T1, T2);
handler_access!(T1, T2, T3);
handler_access!(T1, T2, T3, T4);
handler_access!(T1, T2, T3, T4, T5);
handler_access!(T1, T2, T3, T4, T5, T6);

#[cfg(test)]
mod tests {
    use super::*;

    type Marker = ();

    #[test]
    fn a_handler_access_comes_from_its_extractors() {
        assert_eq!(<((),)>::access().to_string(), "public");
        assert_eq!(<(Marker, State<AppState>)>::access().to_string(), "public");
        assert_eq!(
            <(Marker, State<AppState>, Caller)>::access().to_string(),
            "authenticated"
        );
        assert_eq!(
            <(Marker, State<AppState>, Authorized<View, Instances>, Query)>::access().to_string(),
            "view dbinstances"
        );
        assert_eq!(
            <(
                Marker,
                Authorized<Update, Tags>,
                Id<Tags>,
                Result<JsonBody<()>, ApiError>
            )>::access()
            .to_string(),
            "update dbtags"
        );
        assert_eq!(
            <(
                Marker,
                Authorized<View, Instances>,
                Conditionally<Create, Instances>,
                JsonBody<()>
            )>::access()
            .to_string(),
            "view dbinstances; create dbinstances (conditional)"
        );
    }

    #[derive(serde::Deserialize, Debug, PartialEq)]
    struct Sample {
        port: u16,
        #[serde(default)]
        is_active: Option<bool>,
    }

    fn request(content_type: &str, body: impl Into<axum::body::Body>) -> Request {
        Request::builder()
            .method(Method::POST)
            .header(axum::http::header::CONTENT_TYPE, content_type)
            .body(body.into())
            .unwrap()
    }

    async fn json(body: impl Into<axum::body::Body>) -> Result<Sample, ApiError> {
        JsonBody::<Sample>::from_request(request("application/json", body), &())
            .await
            .map(|JsonBody(sample)| sample)
    }

    #[tokio::test]
    async fn json_bodies_are_parsed_or_name_the_field() {
        assert_eq!(
            json(r#"{"port": 5432}"#).await.unwrap(),
            Sample {
                port: 5432,
                is_active: None
            }
        );
        let e = json(r#"{"port": "x"}"#).await.unwrap_err();
        assert_eq!(
            (e.code, e.data["errors"][0]["field"].as_str()),
            (Code::ValidationError, Some("port"))
        );
        let e = json("").await.unwrap_err();
        assert_eq!(
            (e.code, e.data["errors"][0]["field"].as_str()),
            (Code::ValidationError, Some("body"))
        );
        let e = json(r#"{"port": 1, "csrf_token": "t"}"#).await.unwrap_err();
        assert_eq!(e.code, Code::CsrfFailed);
    }

    #[tokio::test]
    async fn a_body_over_the_limit_is_a_413() {
        // axum's default body limit (2 MiB) applies without a router.
        let e = json(vec![b' '; 3 * 1024 * 1024]).await.unwrap_err();
        assert_eq!((e.code, e.code.status().as_u16()), (Code::PayloadTooLarge, 413));
    }

    #[tokio::test]
    async fn forms_are_read_when_the_request_says_so() {
        #[derive(serde::Deserialize, Debug, PartialEq)]
        struct Form {
            name: String,
            is_active: bool,
        }
        let form = request("application/x-www-form-urlencoded", "name=a%20b&is_active=off");
        let JsonOrForm(form) = JsonOrForm::<Form>::from_request(form, &()).await.unwrap();
        assert_eq!(
            form,
            Form {
                name: "a b".into(),
                is_active: false
            }
        );
        let json = request("application/json", r#"{"name": "a", "is_active": true}"#);
        assert!(JsonOrForm::<Form>::from_request(json, &()).await.is_ok());
    }

    #[test]
    fn only_unsafe_methods_need_a_csrf_token() {
        for safe in [Method::GET, Method::HEAD, Method::OPTIONS] {
            assert!(!is_unsafe(&safe), "{safe}");
        }
        for method in [Method::POST, Method::PUT, Method::PATCH, Method::DELETE] {
            assert!(is_unsafe(&method), "{method}");
        }
    }

    #[test]
    fn markers_name_the_rbac_resource_and_the_noun() {
        assert_eq!(Sessions::NOUN, "sync session");
        assert_eq!(
            (Instances::GUARDED.plural(), Instances::NOUN),
            ("dbinstances", "instance")
        );
        assert_eq!((Tags::GUARDED.plural(), Tags::NOUN), ("dbtags", "tag"));
        assert_eq!(
            [
                View::PERMISSION,
                Create::PERMISSION,
                Update::PERMISSION,
                Delete::PERMISSION
            ],
            Permission::ALL
        );
    }
}
