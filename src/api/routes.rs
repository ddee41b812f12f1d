//! The façade's route table: every route is registered through [`Routes`],
//! which records its method, path and the access its handler's extractors
//! ask for ([`Access`]), and the router is built from the same value. The
//! table a test compares with `docs/facade.md` is therefore the table that
//! is served.

use axum::Router;
use axum::handler::Handler;
use axum::http::Method;
use axum::routing::{MethodFilter, MethodRouter, on};

use super::extract::{Access, HandlerAccess};
use super::state::AppState;

/// One served route.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Route {
    pub method: Method,
    /// The full path, as a client calls it (`/api/v1/instances/{id}`).
    pub path: String,
    pub access: Access,
}

/// A router and the table of what it serves, built together.
#[derive(Default)]
pub struct Routes {
    router: Router<AppState>,
    table: Vec<Route>,
}

impl Routes {
    pub fn new() -> Self {
        Routes::default()
    }

    pub fn get<H, T>(self, path: &str, handler: H) -> Self
    where
        H: Handler<T, AppState>,
        T: HandlerAccess + 'static,
    {
        self.on(Method::GET, MethodFilter::GET, path, handler)
    }

    pub fn post<H, T>(self, path: &str, handler: H) -> Self
    where
        H: Handler<T, AppState>,
        T: HandlerAccess + 'static,
    {
        self.on(Method::POST, MethodFilter::POST, path, handler)
    }

    pub fn put<H, T>(self, path: &str, handler: H) -> Self
    where
        H: Handler<T, AppState>,
        T: HandlerAccess + 'static,
    {
        self.on(Method::PUT, MethodFilter::PUT, path, handler)
    }

    pub fn delete<H, T>(self, path: &str, handler: H) -> Self
    where
        H: Handler<T, AppState>,
        T: HandlerAccess + 'static,
    {
        self.on(Method::DELETE, MethodFilter::DELETE, path, handler)
    }

    fn on<H, T>(mut self, method: Method, filter: MethodFilter, path: &str, handler: H) -> Self
    where
        H: Handler<T, AppState>,
        T: HandlerAccess + 'static,
    {
        // Like axum's `get`, a GET route also answers HEAD.
        let service: MethodRouter<AppState> = on(filter, handler);
        // Routing the same path twice merges the methods (axum).
        self.router = self.router.route(path, service);
        self.table.push(Route {
            method,
            path: path.to_string(),
            access: T::access(),
        });
        self
    }

    /// Both routers' routes; their paths must not overlap.
    pub fn merge(mut self, other: Routes) -> Self {
        self.router = self.router.merge(other.router);
        self.table.extend(other.table);
        self
    }

    /// `other`'s routes under `prefix`.
    pub fn nest(mut self, prefix: &str, other: Routes) -> Self {
        self.router = self.router.nest(prefix, other.router);
        self.table.extend(other.table.into_iter().map(|route| Route {
            path: format!("{prefix}{}", route.path),
            ..route
        }));
        self
    }

    /// Changes the router without adding routes (layers, fallbacks).
    pub fn map_router(mut self, change: impl FnOnce(Router<AppState>) -> Router<AppState>) -> Self {
        self.router = change(self.router);
        self
    }

    pub fn table(&self) -> &[Route] {
        &self.table
    }

    pub fn into_router(self) -> Router<AppState> {
        self.router
    }
}

/// The table as the Markdown rows `docs/facade.md` keeps, in order.
pub fn markdown_rows(table: &[Route]) -> Vec<String> {
    table
        .iter()
        .map(|r| format!("| {} | `{}` | {} |", r.method, r.path, r.access))
        .collect()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    /// The heading of the table in `docs/facade.md`.
    const HEADING: &str = "## Routes and permissions";

    /// The rows of the first table after [`HEADING`].
    fn documented_rows(doc: &str) -> Vec<String> {
        let section = doc.split_once(HEADING).map(|(_, rest)| rest).unwrap_or_default();
        section
            .lines()
            .skip_while(|l| !l.starts_with('|'))
            .take_while(|l| l.starts_with('|'))
            .skip(2) // the header and its separator
            .map(|l| {
                l.split('|')
                    .map(str::trim)
                    .collect::<Vec<_>>()
                    .join(" | ")
                    .trim()
                    .to_string()
            })
            .collect()
    }

    /// The served table: the same function builds the router.
    fn served() -> Vec<Route> {
        super::super::routes(|router| router).table().to_vec()
    }

    #[test]
    fn the_documented_route_table_is_the_served_one() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/facade.md");
        let doc = std::fs::read_to_string(&path).unwrap_or_default();
        let documented: BTreeSet<String> = documented_rows(&doc).into_iter().collect();
        let served_rows = markdown_rows(&served());
        let served: BTreeSet<String> = served_rows.iter().cloned().collect();
        let undocumented: Vec<_> = served.difference(&documented).collect();
        let not_served: Vec<_> = documented.difference(&served).collect();
        assert!(
            undocumented.is_empty() && not_served.is_empty(),
            "{} under {HEADING:?} differs from the router.\nserved but not documented:\n{}\n\
             documented but not served:\n{}\nthe served table:\n{}",
            path.display(),
            undocumented.iter().map(|s| s.as_str()).collect::<Vec<_>>().join("\n"),
            not_served.iter().map(|s| s.as_str()).collect::<Vec<_>>().join("\n"),
            served_rows.join("\n"),
        );
    }

    #[test]
    fn documented_rows_are_read_whatever_the_spacing() {
        let doc = "# x\n| a | b |\n|---|---|\n| no | `/x` | y |\n\n## Routes and permissions\ntext\n\n\
                   | Method | Path | Permission |\n|---|---|---|\n|GET|  `/a` |view dbtags|\n| POST | `/b` | public |\n\nafter\n| PUT | `/c` | public |\n";
        assert_eq!(
            documented_rows(doc),
            ["| GET | `/a` | view dbtags |", "| POST | `/b` | public |"]
        );
    }

    #[test]
    fn every_route_is_registered_once() {
        let table = served();
        let distinct: BTreeSet<(String, String)> =
            table.iter().map(|r| (r.method.to_string(), r.path.clone())).collect();
        assert_eq!(distinct.len(), table.len());
    }

    #[test]
    fn every_route_but_the_open_ones_asks_for_a_permission() {
        let open = [
            "/healthz",
            "/readyz",
            "/metrics",
            "/api/v1/openapi.json",
            "/api/v1/auth/csrf-token",
            "/api/v1/auth/me",
        ];
        for route in served() {
            assert_eq!(
                route.access.required.is_empty(),
                open.contains(&route.path.as_str()),
                "{} {}: {}",
                route.method,
                route.path,
                route.access
            );
        }
    }
}
