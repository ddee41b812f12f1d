//! The OpenAPI 3 document (SPEC §3.7), generated from the handlers'
//! annotations and types. `docs/openapi.json` is a committed copy; a test
//! fails when it drifts (`dbfleet openapi > docs/openapi.json` refreshes it).

use axum::Json;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::{actions, caller, csv, instances, sync_sessions, tags};

#[derive(OpenApi)]
#[openapi(
    info(title = "dbfleet REST façade", description = "Instances and tags over the dbfleet custom resources. \
        Every JSON answer is wrapped in the envelope {success, code, message, data, request_id, timestamp}; \
        the response schemas below describe `data`."),
    paths(
        caller::csrf_token, caller::me,
        instances::listing::list, instances::listing::options, instances::listing::statistics,
        instances::detail::detail, instances::detail::create, instances::detail::update,
        instances::recycle::soft_delete, instances::recycle::restore, instances::detail::connection_status,
        instances::batch::batch_delete, actions::validate_connection_params, actions::test_connection,
        actions::batch_test_connections, actions::sync_capacity, actions::sync_accounts,
        csv::export, csv::template, csv::batch_create,
        sync_sessions::list, sync_sessions::detail, sync_sessions::start_account_sync,
        tags::crud::list, tags::crud::create, tags::crud::detail, tags::crud::update, tags::crud::delete,
        tags::crud::batch_delete, tags::crud::options, tags::crud::categories, tags::bulk::bulk_instances,
        tags::bulk::bulk_tags, tags::bulk::assign, tags::bulk::remove, tags::bulk::remove_all,
        tags::bulk::instance_tags,
    ),
    components(schemas(super::envelope::FieldError)),
    modifiers(&BearerAuth),
    security(("bearer" = [])),
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "A Kubernetes bearer token (checked with a TokenReview). Unsafe methods also need X-CSRFToken.",
                    ))
                    .build(),
            ),
        );
    }
}

/// The document as served and committed.
pub fn document() -> String {
    let mut text = ApiDoc::openapi().to_pretty_json().unwrap_or_default();
    text.push('\n');
    text
}

pub async fn serve() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn committed_openapi_document_is_current() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/openapi.json");
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            committed == document(),
            "{} is out of date; regenerate it with `cargo run -- openapi > docs/openapi.json`",
            path.display()
        );
    }

    #[test]
    fn every_contract_path_is_documented() {
        let doc = ApiDoc::openapi();
        for path in [
            "/api/v1/instances",
            "/api/v1/instances/{id}",
            "/api/v1/tags/bulk/actions/assign",
            "/api/v1/sync-sessions/{session_id}",
        ] {
            assert!(doc.paths.paths.contains_key(path), "{path}");
        }
    }
}
