//! The OpenAPI 3.1 document (SPEC §3.7, §5).
//!
//! The handlers' `#[utoipa::path]` annotations and types give the paths,
//! parameters and the `data` of each answer ([`Generated`]). [`contract`]
//! then makes the document say what the façade really does, in one pass
//! over every operation, so no annotation has to repeat it:
//! - every JSON answer is wrapped in the envelope (SPEC §3.1) with the
//!   operation's `data` type, and success `code` (`OK`, `PARTIAL_SUCCESS`);
//! - every operation lists the error answers its extractors and handler
//!   can give ([`error_statuses`]), each an envelope whose `code` is one of
//!   the [`Code`]s of that status;
//! - request schemas carry the rules the handlers and the CRD schema
//!   enforce ([`request_rules`]), from the constants they use;
//! - query parameters say how they fall back ([`query_parameter`]);
//! - unsafe methods ask for the CSRF header as a second security scheme.
//!
//! `docs/openapi.json` is a committed copy; a test fails when it drifts
//! (`cargo run -- openapi > docs/openapi.json` refreshes it).

use std::collections::BTreeSet;
use std::sync::LazyLock;

use axum::Json;
use serde_json::{Map, Value, json};
use utoipa::OpenApi;

use super::envelope::Code;
use super::pagination::{DEFAULT_LIMIT, MAX_INSTANCE_LIMIT, MAX_TAG_LIMIT};
use super::{actions, caller, clusters, csv, history, instances, inventory, sync_sessions, tags};
use crate::crd::schema::{
    DNS1123_SUBDOMAIN, MAX_COLOR_LEN, MAX_DATABASE_NAME_LEN, MAX_DESCRIPTION_LEN, MAX_HOST_LEN, MAX_LABEL_LEN,
    MAX_PORT, MAX_SUBDOMAIN_LEN, MAX_TAG_TEXT_LEN, MIN_PORT,
};

/// What the annotations say; [`contract`] completes it.
#[derive(OpenApi)]
#[openapi(
    info(title = "dbfleet REST façade", description = "Instances and tags over the dbfleet custom resources. \
        Every JSON answer, success or error, is the envelope {success, code, message, data, request_id, timestamp}; \
        `code` is `OK` on success, `PARTIAL_SUCCESS` for a batch in which some items failed (207), \
        or an error code. Authenticate with a Kubernetes bearer token; unsafe methods (POST, PUT, DELETE) \
        also need the X-CSRFToken header from GET /api/v1/auth/csrf-token."),
    paths(
        caller::csrf_token, caller::me,
        instances::listing::list, instances::listing::options, instances::listing::statistics,
        instances::recycle_bin::list,
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
        inventory::handlers::databases, inventory::handlers::accounts, inventory::handlers::account,
        inventory::handlers::root, inventory::fleet::accounts, inventory::fleet::databases,
        inventory::findings::findings,
        clusters::list,
        history::handlers::capacity_history, history::handlers::account_history, history::handlers::fleet_changes,
    ),
    components(schemas(super::envelope::FieldError)),
    security(("bearer" = [])),
)]
struct Generated;

/// The header that carries the CSRF token (SPEC §3.3).
pub const CSRF_HEADER: &str = "X-CSRFToken";

const JSON: &str = "application/json";
const CSV: &str = "text/csv";

/// The document as served and committed.
pub fn contract() -> Value {
    let mut doc = serde_json::to_value(Generated::openapi()).expect("the generated document serializes");
    add_components(&mut doc);
    let paths: Vec<String> = doc["paths"]
        .as_object()
        .map(|p| p.keys().cloned().collect())
        .unwrap_or_default();
    for path in paths {
        for method in ["get", "put", "post", "delete", "patch"] {
            let Some(operation) = doc["paths"][&path].get_mut(method) else {
                continue;
            };
            complete_operation(&path, method, operation);
        }
    }
    for (schema, property, rules) in request_rules() {
        let target = &mut doc["components"]["schemas"][schema]["properties"][property];
        assert!(
            target.is_object(),
            "request rule for missing property {schema}.{property}"
        );
        merge(target, rules);
    }
    bound_integers(&mut doc["components"]["schemas"]);
    doc
}

/// [`contract`], pretty-printed, with a final newline.
pub fn document() -> String {
    let mut text = serde_json::to_string_pretty(&contract()).expect("a JSON value serializes");
    text.push('\n');
    text
}

static SERVED: LazyLock<Value> = LazyLock::new(contract);

pub async fn serve() -> Json<Value> {
    Json(SERVED.clone())
}

// ---------------------------------------------------------------- components

fn add_components(doc: &mut Value) {
    let components = &mut doc["components"];
    components["securitySchemes"] = json!({
        "bearer": {
            "type": "http",
            "scheme": "bearer",
            "description": "A Kubernetes bearer token, checked with a TokenReview; permissions are RBAC verbs \
                on dbinstances and dbtags in the façade's namespace (SubjectAccessReview).",
        },
        "csrf": {
            "type": "apiKey",
            "in": "header",
            "name": CSRF_HEADER,
            "description": "The token from GET /api/v1/auth/csrf-token, bound to the caller; \
                needed by POST, PUT and DELETE (400 CSRF_FAILED without it).",
        },
    });
    components["headers"] = json!({
        "RequestId": {
            "description": "The caller's X-Request-ID when it is a sane token (at most 128 letters, digits and \
                `-_.:`), else a new one; the envelope's `request_id`.",
            "required": true,
            "schema": {"type": "string"},
        },
        "ContentDisposition": {
            "description": "`attachment` with the file's name.",
            "required": true,
            "schema": {"type": "string"},
        },
    });
    let schemas = &mut components["schemas"];
    schemas["TagUser"] = json!({
        "type": "object",
        "description": "An instance that uses a tag.",
        "required": ["id", "name", "recycled"],
        "properties": {
            "id": {"type": ["integer", "null"], "format": "int64"},
            "name": {"type": "string"},
            "recycled": {"type": "boolean"},
        },
    });
    schemas["ErrorData"] = json!({
        "type": "object",
        "description": "What an error carries besides its message: the fields at fault, or what the code \
            needs (the instances using a tag, the kind of a connection failure, a batch's rows).",
        "properties": {
            "errors": {"type": "array", "items": {"$ref": "#/components/schemas/FieldError"},
                "description": "VALIDATION_ERROR, BATCH_TOO_LARGE, NAME_CONFLICT, CSRF_FAILED: each field at fault."},
            "error_kind": {"type": "string",
                "description": "DATABASE_CONNECTION_ERROR, SYNC_DATA_ERROR, or a host the credential may not \
                    reach: why (`Timeout`, `ConnectionRefused`, `AuthenticationFailed`, `HostNotAllowed`, …)."},
            "instances": {"type": "array", "description": "TAG_IN_USE: the instances using the tag.",
                "items": {"$ref": "#/components/schemas/TagUser"}},
            "max_concurrent_probes": {"type": "integer", "minimum": 0,
                "description": "PROBES_BUSY: the size of the probe budget."},
            "waited_ms": {"type": "integer", "minimum": 0,
                "description": "PROBES_BUSY: how long the request waited for a slot."},
        },
    });
    for status in ERROR_STATUSES {
        let codes: Vec<&str> = codes_of(status);
        schemas[error_schema(status)] = json!({
            "type": "object",
            "description": format!("The envelope of a {status} answer."),
            "required": ["success", "code", "message", "data", "request_id", "timestamp"],
            "properties": envelope_properties(json!({"type": "boolean", "enum": [false]}), &codes,
                json!({"anyOf": [{"$ref": "#/components/schemas/ErrorData"}, {"type": "null"}]})),
        });
    }
}

/// Every error status the façade answers with (405 only for a method a
/// path does not have, so no operation lists it).
const ERROR_STATUSES: [u16; 8] = [400, 401, 403, 404, 409, 413, 429, 503];

fn codes_of(status: u16) -> Vec<&'static str> {
    Code::ALL
        .iter()
        .filter(|c| c.status().as_u16() == status)
        .map(|c| c.as_str())
        .collect()
}

fn error_schema(status: u16) -> String {
    format!("Error{status}")
}

fn envelope_properties(success: Value, codes: &[&str], data: Value) -> Value {
    json!({
        "success": success,
        "code": {"type": "string", "enum": codes},
        "message": {"type": "string", "description": "For people; the first field's problem on a VALIDATION_ERROR."},
        "data": data,
        "request_id": {"type": "string",
            "description": "The caller's X-Request-ID when it is a sane token, else a new one; echoed as X-Request-ID."},
        "timestamp": {"type": "string", "format": "date-time", "description": "RFC 3339, UTC, whole seconds."},
    })
}

// ---------------------------------------------------------------- operations

fn complete_operation(path: &str, method: &str, operation: &mut Value) {
    let unsafe_method = method != "get";
    let tag = operation["tags"][0].as_str().unwrap_or("api").replace('-', "_");
    let name = operation["operationId"].as_str().unwrap_or(method).to_string();
    let id = format!("{tag}_{name}");
    operation["operationId"] = json!(id);
    if unsafe_method {
        operation["security"] = json!([{"bearer": [], "csrf": []}]);
    }
    let has_body = operation.get("requestBody").is_some();
    let mut path_ids = false;
    if let Some(parameters) = operation.get_mut("parameters").and_then(Value::as_array_mut) {
        for parameter in parameters {
            let name = parameter["name"].as_str().unwrap_or_default().to_string();
            match parameter["in"].as_str() {
                Some("path") if name == "id" => {
                    path_ids = true;
                    parameter["schema"] = json!({"type": "integer", "format": "int64", "minimum": 1});
                    parameter["description"] =
                        json!("The integer id (label `dbfleet.io/id`); anything else names nothing (404).");
                }
                Some("path") if name == "name" => {
                    parameter["description"] = json!(
                        "The account's name, percent-encoded where it needs to be (`app%2Fro`); \
                         one the inventory does not hold is a 404."
                    );
                }
                Some("path") => {
                    parameter["description"] = json!("The DbSyncSession's name.");
                }
                Some("query") => {
                    let (schema, description) = query_parameter(path, &name);
                    parameter["schema"] = schema;
                    parameter["description"] = json!(description);
                }
                _ => {}
            }
        }
    }
    let responses = operation["responses"]
        .as_object_mut()
        .expect("every operation has responses");
    for (status, response) in responses.iter_mut() {
        let status: u16 = status.parse().expect("numeric status");
        if (200..300).contains(&status) {
            wrap_success(status, response);
        }
    }
    for status in error_statuses(&id, path, unsafe_method, has_body, path_ids, responses) {
        let annotated = responses
            .get(&status.to_string())
            .and_then(|r| r["description"].as_str())
            .filter(|d| !d.is_empty())
            .map(str::to_owned);
        let mut description = error_description(status);
        if let Some(annotated) = annotated {
            description = format!("{annotated}. {description}");
        }
        responses.insert(
            status.to_string(),
            json!({
                "description": description,
                "content": {JSON: {"schema": {"$ref": format!("#/components/schemas/{}", error_schema(status))}}},
            }),
        );
    }
    for response in responses.values_mut() {
        response["headers"]["X-Request-ID"] = json!({"$ref": "#/components/headers/RequestId"});
        if response["content"].get(CSV).is_some() {
            response["headers"]["Content-Disposition"] = json!({"$ref": "#/components/headers/ContentDisposition"});
        }
    }
    if let Some(body) = operation.get_mut("requestBody") {
        body["required"] = json!(true);
        // Tags are also taken as a form (`input::parse_json_or_form`),
        // whose values are all text: said, not listed as a second media
        // type whose schema would claim typed fields.
        if ["tags_create", "tags_update"].contains(&id.as_str()) {
            body["description"] = json!(
                "JSON, or the same fields as application/x-www-form-urlencoded (`is_active` as \
                 true/false/1/0/on/off/yes/no)."
            );
        }
    }
}

/// Wraps a 2xx JSON answer's schema in the envelope; CSV answers stay as
/// they are.
fn wrap_success(status: u16, response: &mut Value) {
    let default = match status {
        201 => "Created",
        207 => "PARTIAL_SUCCESS: some items failed; `data` lists each item's outcome",
        _ => "OK",
    };
    if response["description"].as_str().is_none_or(str::is_empty) {
        response["description"] = json!(default);
    }
    let Some(data) = response["content"].get(JSON).map(|c| c["schema"].clone()) else {
        return;
    };
    let (success, code) = if status == 207 {
        (json!({"type": "boolean", "enum": [false]}), Code::PartialSuccess)
    } else {
        (json!({"type": "boolean", "enum": [true]}), Code::Ok)
    };
    response["content"][JSON]["schema"] = json!({
        "type": "object",
        "required": ["success", "code", "message", "data", "request_id", "timestamp"],
        "properties": envelope_properties(success, &[code.as_str()], data),
    });
}

/// The error statuses an operation answers with: what its annotation
/// lists, and what every operation of its kind can answer, by how the
/// router and the extractors work:
/// - 401: every operation authenticates its caller (`Caller`);
/// - 429: an unknown token from a client whose failed TokenReviews are
///   used up (`auth::FailedReviewLimit`);
/// - 503: until the CSRF key is loaded every `/api/v1` answer is 503, and
///   the TokenReview and SubjectAccessReview need the Kubernetes API;
/// - 403: every operation but `/auth/*` checks a permission;
/// - 400: unsafe methods check the CSRF token, bodies are validated;
/// - 413: a body over the limit;
/// - 404, 409: an `{id}` names nothing, or (409) several objects carry it.
fn error_statuses(
    operation_id: &str,
    path: &str,
    unsafe_method: bool,
    has_body: bool,
    path_ids: bool,
    responses: &Map<String, Value>,
) -> BTreeSet<u16> {
    let mut statuses: BTreeSet<u16> = responses
        .keys()
        .filter_map(|s| s.parse().ok())
        .filter(|s| *s >= 400)
        .collect();
    statuses.extend([401, 429, 503]);
    if !path.starts_with("/api/v1/auth/") {
        statuses.insert(403);
    }
    if unsafe_method {
        statuses.insert(400);
    }
    if has_body {
        statuses.extend([400, 413]);
    }
    if path_ids {
        statuses.extend([404, 409]);
    }
    // Ids that name two objects (`Caches::credential_by_id`,
    // `instance_by_id`) are a 409 wherever an input names one.
    if ["instances_validate_connection_params", "tags_instance_tags"].contains(&operation_id) {
        statuses.insert(409);
    }
    statuses
}

fn error_description(status: u16) -> String {
    let why = match status {
        400 => {
            "VALIDATION_ERROR: a field, query parameter or the body is invalid (`data.errors` names each field); \
             CSRF_FAILED: an unsafe method without a valid X-CSRFToken header, or a `csrf_token` in the body; \
             BATCH_TOO_LARGE: more ids or rows than one request may carry"
        }
        401 => "UNAUTHENTICATED: no bearer token, or one the TokenReview rejects",
        403 => "PERMISSION_DENIED: the caller lacks the RBAC verb this operation needs",
        404 => "NOT_FOUND: nothing has this id (a recycled instance counts as not found for detail and update)",
        409 => {
            "NAME_CONFLICT: the name is taken; TAG_IN_USE: instances use the tag (`data.instances`); \
             CONFLICT: the object changed meanwhile, or several objects carry the id; \
             DATABASE_CONNECTION_ERROR / SYNC_DATA_ERROR: the database could not be reached or read (`data.error_kind`)"
        }
        413 => "PAYLOAD_TOO_LARGE: the body (or the uploaded file) is over the limit",
        503 => {
            "UPSTREAM_UNAVAILABLE: the Kubernetes API cannot be reached, or the façade is still starting; \
             PROBES_BUSY: no probe slot freed up in time (Retry-After says when to retry)"
        }
        _ => "error",
    };
    let codes = codes_of(status).join(", ");
    format!("{why}. `code` is one of: {codes}.")
}

/// A query parameter's schema and description. Values that are not
/// understood fall back to a default, except where noted (400).
fn query_parameter(path: &str, name: &str) -> (Value, String) {
    let string = json!({"type": "string"});
    let one_of = |values: &[&str]| json!({"type": "string", "enum": values});
    let max_limit = if path.starts_with("/api/v1/tags") {
        MAX_TAG_LIMIT
    } else {
        MAX_INSTANCE_LIMIT
    };
    match name {
        "page" => (
            string,
            "Page number, from 1. A value that is not an integer falls back to 1; an integer below 1 counts as 1."
                .into(),
        ),
        "limit" => (
            string,
            format!(
                "Items per page, 1 to {max_limit}. A value that is not an integer falls back to \
                 {DEFAULT_LIMIT}; an integer out of range is clamped into range."
            ),
        ),
        "search" if path.starts_with("/api/v1/tags") => (
            string,
            "Case-insensitive substring of the tag's code or display name.".into(),
        ),
        "search" if is_inventory(path) => (
            string,
            "Case-insensitive substring of the account's or database's name.".into(),
        ),
        "search" => (
            string,
            "Case-insensitive substring of the name, host or description.".into(),
        ),
        "name" => (
            string,
            "Exactly this account or database name (case matters, as on the servers); with `search` too, both \
             must hold."
                .into(),
        ),
        "host" if path.ends_with("/history") || path.ends_with("/changes") => (
            string,
            "Only changes of accounts at this MySQL host (`%`, `localhost`), compared exactly.".into(),
        ),
        "account" => (
            string,
            "Only changes of the account with exactly this name (case matters, as on the servers).".into(),
        ),
        "kind" => (
            json!({"type": "array", "items": {"type": "string", "enum": crate::crd::history::ChangeKind::ALL
                .iter().map(|k| k.as_str()).collect::<Vec<_>>()}}),
            "Only changes of these kinds, the key repeated or comma-separated (`kind=locked,unlocked`). Anything \
             else is a 400."
                .into(),
        ),
        "code" if path == "/api/v1/findings" => (
            json!({"type": "array", "items": {"type": "string", "enum": std::iter::once("")
                .chain(crate::observe::findings::Code::ALL.iter().map(|c| c.as_str())).collect::<Vec<_>>()}}),
            "Only findings with these codes, the key repeated (docs/probes.md lists them); an empty value is \
             no filter. Anything else is a 400."
                .into(),
        ),
        "severity" if path == "/api/v1/findings" => (
            json!({"type": "array", "items": {"type": "string", "enum": std::iter::once("")
                .chain(crate::observe::findings::Severity::ALL.iter().map(|s| s.as_str())).collect::<Vec<_>>()}}),
            "Only findings of these severities, the key repeated; an empty value is no filter. Anything else is \
             a 400."
                .into(),
        ),
        "instance_id" => (
            json!({"type": "string", "pattern": "^([1-9][0-9]{0,17})?$"}),
            "Only the instance with this id; empty means no filter. Anything else is a 400.".into(),
        ),
        "since" => (
            json!({"anyOf": [{"type": "string", "format": "date-time"}, {"type": "string", "maxLength": 0}]}),
            "Only changes found at or after this time (RFC 3339, `2026-01-08T10:00:00Z`). Anything else is a 400."
                .into(),
        ),
        "host" => (
            string,
            "The host part of a MySQL account (`%`, `10.0.0.%`, `localhost`): needed when the name exists on \
             several hosts (400 naming `host` without it). Compared exactly."
                .into(),
        ),
        "superuser" | "can_login" | "locked" => (
            one_of(&["", "true", "false"]),
            format!(
                "Only accounts whose `{name}` is this (`true` or `false`, exactly); empty means no filter. Anything else is a 400."
            ),
        ),
        "sort" if path.ends_with("/databases") => (
            one_of(&["", "name", "size"]),
            "`name` (the default) or `size`. Anything else is a 400.".into(),
        ),
        "order" if path.ends_with("/databases") => (
            one_of(&["", "asc", "desc"]),
            "`asc` or `desc`; by default names ascend and sizes descend (largest first). Anything else is a 400."
                .into(),
        ),
        "db_type" => (
            one_of(&["", "mysql", "postgresql"]),
            "Only instances of this type (case-insensitive); empty means every type. Anything else is a 400.".into(),
        ),
        "tags" if is_inventory(path) => (
            json!({"type": "array", "items": {"type": "string"}}),
            "Tag codes, the key repeated (`tags=a&tags=b`, or `tags[]=`): only on instances carrying any of them."
                .into(),
        ),
        "status" if path.starts_with("/api/v1/tags") => (
            one_of(&["", "all", "active", "inactive"]),
            "`active` or `inactive` tags (case-insensitive); `all` or empty means both. Anything else is a 400.".into(),
        ),
        "status" if path.starts_with("/api/v1/sync-sessions") => (
            string,
            "Only sessions in this state: `pending`, `running`, `succeeded`, `partially_failed`, `failed` \
             (any other value matches none)."
                .into(),
        ),
        "status" => (
            one_of(&[
                "",
                "active",
                "inactive",
                "connected",
                "failed",
                "unknown",
                "recycled",
                "stale",
            ]),
            "`active`/`inactive` (spec.isActive), the connection state, `recycled` (the recycle bin, with or \
             without `include_deleted`), or `stale` (a probe's last success is overdue: see the instance's \
             `stale`), case-insensitive; empty means no filter. Anything else is a 400."
                .into(),
        ),
        "operation" => (
            one_of(&["", "accounts", "capacity", "connection"]),
            "Only sessions of this operation; empty means all. Anything else is a 400.".into(),
        ),
        "tags" => (
            json!({"type": "array", "items": {"type": "string"}}),
            "Tag codes, the key repeated (`tags=a&tags=b`, or `tags[]=`): instances carrying any of them.".into(),
        ),
        "include_deleted" => (
            string,
            "`true`, `1`, `on` or `yes` (any case) also lists the recycle bin; anything else does not.".into(),
        ),
        "sort" => (
            string,
            "`id`, `name`, `db_type`, `host`, `port`, `created_at`, `updated_at`, `status`, `growth` (bytes per \
             day of the capacity fit; no rate counts as lowest) or `days_until_full` (never full counts as \
             furthest); anything else sorts by id."
                .into(),
        ),
        "order" => (
            string,
            "`asc` (any case) for ascending; anything else is descending.".into(),
        ),
        "category" => (string, "Only tags of this category (exact match).".into()),
        _ => (string, String::new()),
    }
}

/// The fleet-wide searches and one instance's inventory.
fn is_inventory(path: &str) -> bool {
    ["/api/v1/accounts", "/api/v1/databases"].contains(&path)
        || ["/databases", "/accounts", "/accounts/{name}"]
            .iter()
            .any(|tail| path.starts_with("/api/v1/instances/{id}") && path.ends_with(tail))
}

// ---------------------------------------------------------------- requests

/// Whitespace as Rust's `str::trim` sees it (Unicode White_Space), which
/// the handlers strip from hosts, tag names and colours.
const WS: &str = r"[\t\n\u000B\f\r \u0085\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]";

/// One host-name label: what the CRD's `HOSTNAME_OR_IP` allows, at most 63
/// characters as the façade also requires.
const HOST_LABEL: &str = "[A-Za-z0-9]([-A-Za-z0-9_]{0,61}[A-Za-z0-9])?";

/// An IPv6 address in any of its textual forms (RFC 4291 §2.2, without an
/// embedded IPv4 address or a zone).
const IPV6: &str = "(([0-9a-fA-F]{1,4}:){7}[0-9a-fA-F]{1,4}|([0-9a-fA-F]{1,4}:){1,7}:|\
     ([0-9a-fA-F]{1,4}:){1,6}:[0-9a-fA-F]{1,4}|([0-9a-fA-F]{1,4}:){1,5}(:[0-9a-fA-F]{1,4}){1,2}|\
     ([0-9a-fA-F]{1,4}:){1,4}(:[0-9a-fA-F]{1,4}){1,3}|([0-9a-fA-F]{1,4}:){1,3}(:[0-9a-fA-F]{1,4}){1,4}|\
     ([0-9a-fA-F]{1,4}:){1,2}(:[0-9a-fA-F]{1,4}){1,5}|[0-9a-fA-F]{1,4}:(:[0-9a-fA-F]{1,4}){1,6}|\
     :((:[0-9a-fA-F]{1,4}){1,7}|:))";

/// A DNS-1123 label (a tag's code), at most 63 characters.
fn label() -> String {
    format!("[a-z0-9]([-a-z0-9]{{0,{}}}[a-z0-9])?", MAX_LABEL_LEN - 2)
}

/// `host` as the façade takes it: surrounding whitespace is dropped, then
/// a host name or IPv4 address (labels of at most 63 characters, no
/// trailing dot) or an IPv6 address.
pub fn host_pattern() -> String {
    format!(r"^{WS}*({HOST_LABEL}(\.{HOST_LABEL})*|{IPV6}){WS}*$")
}

/// A tag's code in `tag_names` (surrounding whitespace dropped; an empty
/// entry is skipped).
pub fn tag_name_pattern() -> String {
    format!("^{WS}*({})?{WS}*$", label())
}

/// A tag's code in a tag's body (taken as it is).
pub fn tag_code_pattern() -> String {
    format!("^{}$", label())
}

/// Text that is not empty once trimmed.
pub fn not_blank_pattern() -> String {
    format!("[^{}]", &WS[1..WS.len() - 1])
}

/// A colour, or nothing (empty or whitespace: no colour).
pub fn color_pattern() -> String {
    format!("^{WS}*(#[0-9a-fA-F]{{6}}|[a-zA-Z]{{1,{MAX_COLOR_LEN}}})?{WS}*$")
}

/// `(schema, property, rules)`: what the handlers check beyond the types.
fn request_rules() -> Vec<(&'static str, &'static str, Value)> {
    let port = json!({"minimum": MIN_PORT, "maximum": MAX_PORT});
    let reference = |what: &str| json!({"minimum": 1, "description": format!("The id of an existing {what}; an id that names none is a 400 naming this field.")});
    let ids = |max: usize, what: &str, must_exist: bool| {
        let mut items = json!({"type": "integer", "format": "int64"});
        let description = if must_exist {
            items["minimum"] = json!(1);
            format!("1 to {max} {what} ids (repeats count once); each must name one, or the request is a 400.")
        } else {
            format!("1 to {max} {what} ids (repeats count once); an id that names none fails only its own item.")
        };
        json!({"minItems": 1, "maxItems": max, "items": items, "description": description})
    };
    let host = json!({
        "maxLength": MAX_HOST_LEN,
        "pattern": host_pattern(),
        "description": format!("Host name, IPv4 or IPv6 address, at most {MAX_HOST_LEN} characters; surrounding whitespace is dropped."),
    });
    let instance = vec![
        (
            "name",
            json!({"minLength": 1, "maxLength": MAX_SUBDOMAIN_LEN, "pattern": DNS1123_SUBDOMAIN}),
        ),
        ("host", host.clone()),
        ("port", port.clone()),
        (
            "database_name",
            json!({"maxLength": MAX_DATABASE_NAME_LEN, "description": "Surrounding whitespace is dropped; empty means none."}),
        ),
        (
            "description",
            json!({"maxLength": MAX_DESCRIPTION_LEN, "description": "Surrounding whitespace is dropped; empty means none."}),
        ),
        ("credential_id", reference("credential")),
        (
            "tag_names",
            json!({"items": {"type": "string", "pattern": tag_name_pattern()},
                "description": "Codes of existing tags (an unknown one is a 400); repeats and empty entries are dropped."}),
        ),
    ];
    let mut rules: Vec<(&str, &str, Value)> = instance
        .into_iter()
        .map(|(property, rule)| ("InstanceInput", property, rule))
        .collect();
    rules.extend([
        ("ConnectionParamsInput", "port", port.clone()),
        ("ConnectionParamsInput", "credential_id", reference("credential")),
        ("TestConnectionInput", "instance_id", json!({"minimum": 1})),
        ("TestConnectionInput", "host", host),
        ("TestConnectionInput", "port", port),
        ("TestConnectionInput", "credential_id", reference("credential")),
        (
            "TestConnectionInput",
            "database_name",
            json!({"maxLength": MAX_DATABASE_NAME_LEN}),
        ),
        ("TestConnectionInput", "name", json!({"maxLength": MAX_SUBDOMAIN_LEN})),
        (
            "TagInput",
            "name",
            json!({"minLength": 1, "maxLength": MAX_LABEL_LEN, "pattern": tag_code_pattern()}),
        ),
        (
            "TagInput",
            "display_name",
            json!({"maxLength": MAX_TAG_TEXT_LEN, "pattern": not_blank_pattern()}),
        ),
        (
            "TagInput",
            "category",
            json!({"maxLength": MAX_TAG_TEXT_LEN, "pattern": not_blank_pattern()}),
        ),
        (
            "TagInput",
            "color",
            json!({"pattern": color_pattern(), "description": "`#rrggbb` or a CSS colour name; empty means none."}),
        ),
        (
            "BatchDeleteInput",
            "instance_ids",
            ids(instances::batch::MAX_BATCH_DELETE, "instance", false),
        ),
        (
            "BatchTestInput",
            "instance_ids",
            ids(actions::MAX_BATCH_TESTS, "instance", false),
        ),
        ("TagIdsInput", "tag_ids", ids(tags::MAX_BULK_IDS, "tag", false)),
        ("BulkInput", "instance_ids", ids(tags::MAX_BULK_IDS, "instance", true)),
        ("BulkInput", "tag_ids", ids(tags::MAX_BULK_IDS, "tag", true)),
        (
            "InstanceIdsInput",
            "instance_ids",
            ids(tags::MAX_BULK_IDS, "instance", true),
        ),
    ]);
    rules
}

/// Merges `rules` into `target` (objects key by key).
fn merge(target: &mut Value, rules: Value) {
    match (target, rules) {
        (Value::Object(target), Value::Object(rules)) => {
            for (key, value) in rules {
                merge(target.entry(key).or_insert(Value::Null), value);
            }
        }
        (target, rules) => *target = rules,
    }
}

/// Integers are bounded by their format (serde refuses what does not fit).
fn bound_integers(value: &mut Value) {
    match value {
        Value::Object(object) => {
            let is_integer = match object.get("type") {
                Some(Value::String(t)) => t == "integer",
                Some(Value::Array(types)) => types.iter().any(|t| t == "integer"),
                _ => false,
            };
            let bounds = match object.get("format").and_then(Value::as_str) {
                Some("int64") => Some((json!(i64::MIN), json!(i64::MAX))),
                Some("int32") => Some((json!(i32::MIN), json!(i32::MAX))),
                Some("uint64") => Some((json!(0), json!(u64::MAX))),
                Some("uint32") => Some((json!(0), json!(u32::MAX))),
                _ => None,
            };
            if let (true, Some((min, max))) = (is_integer, bounds) {
                object.entry("minimum").or_insert(min);
                object.entry("maximum").or_insert(max);
            }
            for child in object.values_mut() {
                bound_integers(child);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(bound_integers),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{HashMap, HashSet};

    use super::*;
    use crate::api::instances::rules::{DbTypeInput, InstanceInput, Known, validate_instance};
    use crate::api::tags::rules::{TagInput, validate_tag};
    use crate::crd::schema::{COLOR, DNS1123_LABEL, HOSTNAME_OR_IP};

    /// The rule a request schema gives `property`.
    fn rule(schema: &str, property: &str) -> Value {
        contract()["components"]["schemas"][schema]["properties"][property].clone()
    }

    /// Whether a string passes a documented string schema.
    fn documented(schema: &Value, text: &str) -> bool {
        let pattern = schema["pattern"].as_str().map(|p| regex::Regex::new(p).unwrap());
        let length = text.chars().count() as u64;
        pattern.is_none_or(|p| p.is_match(text))
            && schema["maxLength"].as_u64().is_none_or(|max| length <= max)
            && schema["minLength"].as_u64().is_none_or(|min| length >= min)
    }

    fn instance(name: &str, host: &str, port: i64) -> InstanceInput {
        InstanceInput {
            name: name.into(),
            db_type: DbTypeInput::Postgresql,
            host: host.into(),
            port,
            database_name: None,
            credential_id: None,
            description: None,
            is_active: None,
            tag_names: None,
        }
    }

    fn known() -> Known {
        Known {
            tags: HashSet::from(["prod".to_string()]),
            credentials: HashMap::new(),
        }
    }

    /// Whether the façade takes an instance body: its own checks, then the
    /// CRD schema the API server applies to what it writes.
    fn instance_accepted(input: &InstanceInput) -> bool {
        match validate_instance(input, &known(), None) {
            Ok(spec) => regex::Regex::new(HOSTNAME_OR_IP).unwrap().is_match(&spec.host),
            Err(_) => false,
        }
    }

    #[test]
    fn host_rule_is_what_the_handler_and_the_crd_accept() {
        let schema = rule("InstanceInput", "host");
        let long_label = "a".repeat(63);
        let too_long_label = "a".repeat(64);
        let long_host = ["a".repeat(61), "b".repeat(61), "c".repeat(61), "d".repeat(61)].join(".");
        let too_long_host = format!("{long_host}.e");
        for host in [
            "db.example.com",
            "a",
            "127.0.0.1",
            "300.1.1.1",
            "::1",
            "fe80::1",
            "2001:db8::8a2e:370:7334",
            "1:2:3:4:5:6:7:8",
            "1:2:3:4:5:6:7::",
            "::",
            "  padded.example \t",
            "\u{3000}ideographic-space\u{85}",
            "DB_1.Example",
            "a1-b",
            long_label.as_str(),
            too_long_label.as_str(),
            long_host.as_str(),
            too_long_host.as_str(),
            "",
            " ",
            "a.",
            ".a",
            "-a",
            "a-",
            "_a",
            "a_",
            "a..b",
            "a b",
            ":::",
            "1:2",
            "1::2::3",
            "1:2:3:4:5:6:7:8:9",
            "\u{feff}a",
            "é.example",
        ] {
            let accepted = instance_accepted(&instance("x", host, 5432));
            assert_eq!(
                documented(&schema, host),
                accepted,
                "host {host:?}: handler says {accepted}"
            );
        }
        // The document leaves out IPv6 addresses that end in an IPv4 one,
        // which the façade also takes: it never documents as valid a host
        // the façade refuses.
        assert!(instance_accepted(&instance("x", "::ffff:10.0.0.1", 1)));
        assert!(!documented(&schema, "::ffff:10.0.0.1"));
    }

    #[test]
    fn instance_rules_are_the_handlers_limits() {
        let name = rule("InstanceInput", "name");
        for text in [
            "a",
            "db-1.eu",
            "a.b.c",
            "",
            "A",
            "-a",
            "a-",
            "a..b",
            "a_b",
            "a.",
            &"a".repeat(253),
            &"a".repeat(254),
        ] {
            let accepted = instance_accepted(&instance(text, "h", 1));
            assert_eq!(documented(&name, text), accepted, "name {text:?}");
        }
        let port = rule("InstanceInput", "port");
        for value in [i64::MIN, -1, 0, 1, 5432, 65535, 65536, i64::MAX] {
            let in_range = value >= port["minimum"].as_i64().unwrap() && value <= port["maximum"].as_i64().unwrap();
            assert_eq!(in_range, instance_accepted(&instance("x", "h", value)), "port {value}");
        }
        for (property, max) in [
            ("description", MAX_DESCRIPTION_LEN),
            ("database_name", MAX_DATABASE_NAME_LEN),
        ] {
            assert_eq!(rule("InstanceInput", property)["maxLength"], json!(max));
            for (length, ok) in [(max, true), (max + 1, false)] {
                let mut input = instance("x", "h", 1);
                let text = Some("é".repeat(length));
                match property {
                    "description" => input.description = text,
                    _ => input.database_name = text,
                }
                assert_eq!(instance_accepted(&input), ok, "{property} of {length} characters");
            }
        }
        let tag_names = rule("InstanceInput", "tag_names")["items"].clone();
        for text in ["prod", " prod ", "", "  ", "Prod", "pro_d", "-prod", &"p".repeat(64)] {
            let mut input = instance("x", "h", 1);
            input.tag_names = Some(vec![text.to_string()]);
            // Only "prod" exists; the document cannot know which tags do.
            let well_formed = validate_instance(&input, &known(), None).is_ok()
                || validate_instance(&input, &known(), None)
                    .unwrap_err()
                    .iter()
                    .all(|e| e.message.starts_with("no tag named"))
                    && regex::Regex::new(DNS1123_LABEL).unwrap().is_match(text.trim())
                    && text.trim().len() <= MAX_LABEL_LEN;
            assert_eq!(documented(&tag_names, text), well_formed, "tag name {text:?}");
        }
    }

    #[test]
    fn tag_rules_are_what_the_handler_and_the_crd_accept() {
        let tag = |name: &str, display_name: &str, color: Option<&str>| TagInput {
            name: name.into(),
            display_name: display_name.into(),
            category: "env".into(),
            color: color.map(str::to_owned),
            is_active: None,
        };
        let accepted = |input: &TagInput| match validate_tag(input) {
            Ok(spec) => spec
                .color
                .as_deref()
                .is_none_or(|c| regex::Regex::new(COLOR).unwrap().is_match(c) && c.len() <= MAX_COLOR_LEN),
            Err(_) => false,
        };
        let name = rule("TagInput", "name");
        for text in [
            "prod",
            "a",
            "a-1",
            "",
            "Prod",
            "-a",
            "a-",
            "a.b",
            "a_b",
            &"a".repeat(63),
            &"a".repeat(64),
        ] {
            assert_eq!(
                documented(&name, text),
                accepted(&tag(text, "P", None)),
                "name {text:?}"
            );
        }
        let display_name = rule("TagInput", "display_name");
        for text in [
            "Production",
            " x ",
            "",
            " ",
            "\t\u{3000}",
            &"é".repeat(64),
            &"é".repeat(65),
        ] {
            assert_eq!(
                documented(&display_name, text),
                accepted(&tag("a", text, None)),
                "display_name {text:?}"
            );
        }
        let color = rule("TagInput", "color");
        for text in [
            "#00ff00",
            "teal",
            " teal ",
            "",
            " ",
            "#0f0",
            "#00ff0g",
            "tea1",
            &"a".repeat(32),
            &"a".repeat(33),
        ] {
            assert_eq!(
                documented(&color, text),
                accepted(&tag("a", "A", Some(text))),
                "color {text:?}"
            );
        }
    }

    #[test]
    fn every_answer_is_an_envelope_and_every_response_is_described() {
        let doc = contract();
        for (path, operations) in doc["paths"].as_object().unwrap() {
            for (method, operation) in operations.as_object().unwrap() {
                let responses = operation["responses"].as_object().unwrap();
                for status in ["401", "503"] {
                    assert!(responses.contains_key(status), "{method} {path} lacks {status}");
                }
                if method != "get" {
                    assert!(responses.contains_key("400"), "{method} {path}: CSRF_FAILED is a 400");
                }
                for (status, response) in responses {
                    assert_eq!(
                        response["headers"]["X-Request-ID"]["$ref"], "#/components/headers/RequestId",
                        "{method} {path} {status}"
                    );
                    assert!(
                        response["description"].as_str().is_some_and(|d| !d.is_empty()),
                        "{method} {path} {status}"
                    );
                    let Some(schema) = response["content"].get(JSON).map(|c| &c["schema"]) else {
                        assert!(response["content"].get(CSV).is_some(), "{method} {path} {status}");
                        continue;
                    };
                    let schema = match schema["$ref"].as_str() {
                        Some(target) => &doc["components"]["schemas"][target.rsplit('/').next().unwrap()],
                        None => schema,
                    };
                    let required: Vec<&str> = schema["required"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|v| v.as_str().unwrap())
                        .collect();
                    assert_eq!(
                        required,
                        ["success", "code", "message", "data", "request_id", "timestamp"],
                        "{method} {path} {status}"
                    );
                    let codes = schema["properties"]["code"]["enum"].as_array().unwrap();
                    let expected: Vec<&str> = match status.as_str() {
                        "207" => vec!["PARTIAL_SUCCESS"],
                        s if s.starts_with('2') => vec!["OK"],
                        s => codes_of(s.parse().unwrap()),
                    };
                    assert_eq!(
                        codes,
                        &expected.iter().map(|c| json!(c)).collect::<Vec<_>>(),
                        "{method} {path} {status}"
                    );
                }
            }
        }
    }

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
    fn operation_ids_are_unique() {
        let doc = contract();
        let mut seen = HashSet::new();
        for operations in doc["paths"].as_object().unwrap().values() {
            for operation in operations.as_object().unwrap().values() {
                let id = operation["operationId"].as_str().unwrap();
                assert!(seen.insert(id.to_string()), "operationId {id} is used twice");
            }
        }
    }

    #[test]
    fn every_contract_path_is_documented() {
        let doc = contract();
        for path in [
            "/api/v1/instances",
            "/api/v1/instances/{id}",
            "/api/v1/tags/bulk/actions/assign",
            "/api/v1/sync-sessions/{session_id}",
        ] {
            assert!(doc["paths"].get(path).is_some(), "{path}");
        }
    }
}
