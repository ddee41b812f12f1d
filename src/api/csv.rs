//! CSV export, the import template and batch-create from an upload
//! (SPEC §3.5). The export's first columns are exactly the import format,
//! so an export imported elsewhere recreates the same instances.

use std::borrow::Cow;

use axum::extract::State;
use axum::extract::multipart::{Multipart, MultipartRejection};
use axum::http::header::{CONTENT_DISPOSITION, CONTENT_TYPE};
use axum::response::{IntoResponse, Response};
use kube::ResourceExt;
use serde::Serialize;
use serde_json::json;
use utoipa::ToSchema;

use super::envelope::{ApiError, ApiResult, Code, Reply};
use super::extract::{Authorized, Create, Instances, View};
use super::input::{Query, flag};
use super::instances::{self, DbTypeInput, InstanceFilter, InstanceInput};
use super::routes::Routes;
use super::state::AppState;
use crate::crd::DbInstance;
use crate::ids::id_of;

pub const MAX_UPLOAD_BYTES: usize = 1024 * 1024;
pub const MAX_ROWS: usize = 1000;
const BOM: &str = "\u{feff}";

/// The import format, in order.
pub const IMPORT_COLUMNS: [&str; 9] = [
    "name",
    "db_type",
    "host",
    "port",
    "database_name",
    "credential_id",
    "description",
    "is_active",
    "tag_names",
];
/// Shown in an export after the import columns; ignored on import.
const EXPORT_ONLY_COLUMNS: [&str; 5] = ["id", "status", "connection", "version", "created_at"];
const REQUIRED_COLUMNS: [&str; 4] = ["name", "db_type", "host", "port"];

pub fn routes() -> Routes {
    Routes::new()
        .get("/instances/exports", export)
        .get("/instances/imports/template", template)
        .post("/instances/actions/batch-create", batch_create)
}

fn csv_response(body: Vec<u8>, file_name: &str) -> Response {
    (
        [
            (CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
            (CONTENT_DISPOSITION, format!("attachment; filename=\"{file_name}\"")),
        ],
        body,
    )
        .into_response()
}

/// What a spreadsheet reads as the start of a formula (tab and carriage
/// return because some strip them first), so a cell starting with one
/// would run when the export is opened.
const FORMULA_STARTS: [char; 6] = ['=', '+', '-', '@', '\t', '\r'];

/// Whether a cell starts, after any quotes, with a formula character, or
/// has one after a `;` (and optional spaces): where `;` separates fields
/// (many European locales), `x;=cmd` opens as two cells, the second a
/// formula.
fn formula_like(cell: &str) -> bool {
    cell.trim_start_matches('\'').starts_with(FORMULA_STARTS)
        || cell
            .split(';')
            .skip(1)
            .any(|field| field.trim_start_matches([' ', '\u{a0}']).starts_with(FORMULA_STARTS))
}

/// A cell as written to an export: one a spreadsheet would run as a
/// formula gets a leading `'`, which spreadsheets show as text. A cell that
/// already starts with quotes before such a character gets one more, so
/// [`unescape_cell`] gives back exactly what was exported.
pub fn escape_cell(cell: &str) -> Cow<'_, str> {
    if formula_like(cell) {
        Cow::Owned(format!("'{cell}"))
    } else {
        Cow::Borrowed(cell)
    }
}

/// A cell as read from an import: the `'` that [`escape_cell`] (or a
/// spreadsheet user) put before a formula character is dropped; a `'`
/// before anything else is part of the value.
pub fn unescape_cell(cell: &str) -> &str {
    match cell.strip_prefix('\'') {
        Some(rest) if formula_like(rest) => rest,
        _ => cell,
    }
}

fn write_csv(header: &[&str], rows: impl IntoIterator<Item = Vec<String>>) -> ApiResult<Vec<u8>> {
    let mut writer = csv::Writer::from_writer(BOM.as_bytes().to_vec());
    let fail = |e: csv::Error| ApiError::new(Code::UpstreamUnavailable, format!("CSV output failed: {e}"));
    writer
        .write_record(header.iter().map(|cell| escape_cell(cell).into_owned()))
        .map_err(fail)?;
    for row in rows {
        writer
            .write_record(row.iter().map(|cell| escape_cell(cell).into_owned()))
            .map_err(fail)?;
    }
    writer
        .into_inner()
        .map_err(|e| ApiError::new(Code::UpstreamUnavailable, e.to_string()))
}

/// One export row: the import columns, then the read-only ones.
pub fn export_row(instance: &DbInstance, credential_id: Option<i64>) -> Vec<String> {
    let spec = &instance.spec;
    let status = instance.status.as_ref();
    vec![
        instance.name_any(),
        spec.db_type.as_str().into(),
        spec.host.clone(),
        spec.port.to_string(),
        spec.database_name.clone().unwrap_or_default(),
        credential_id.map(|id| id.to_string()).unwrap_or_default(),
        spec.description.clone().unwrap_or_default(),
        spec.is_active.to_string(),
        spec.tags.join(";"),
        id_of(&instance.metadata).map(|id| id.to_string()).unwrap_or_default(),
        instance.phase().name().into(),
        instance.connection_state().as_str().into(),
        status
            .and_then(|s| s.connection.as_ref())
            .and_then(|c| c.server_version.clone())
            .unwrap_or_default(),
        instance
            .metadata
            .creation_timestamp
            .as_ref()
            .map(|t| super::envelope::format_time(t.0))
            .unwrap_or_default(),
    ]
}

/// The instances the list's filters select, as CSV.
#[utoipa::path(get, path = "/api/v1/instances/exports", tag = "instances",
    params(("search" = Option<String>, Query), ("db_type" = Option<String>, Query), ("status" = Option<String>, Query),
        ("tags" = Option<Vec<String>>, Query), ("include_deleted" = Option<String>, Query)),
    responses((status = 200, content_type = "text/csv", body = String), (status = 400), (status = 401), (status = 403)))]
pub async fn export(
    State(state): State<AppState>,
    _: Authorized<View, Instances>,
    query: Query,
) -> ApiResult<Response> {
    let filter = InstanceFilter::from_query(&query)?;
    let lookup = state.lookup();
    let rows = filter
        .select(&state.caches.instance_index())
        .into_iter()
        .map(|(_, instance)| {
            let credential_id = lookup.instance(&instance).and_then(|v| v.credential_id);
            export_row(&instance, credential_id)
        });
    let header: Vec<&str> = IMPORT_COLUMNS
        .iter()
        .chain(EXPORT_ONLY_COLUMNS.iter())
        .copied()
        .collect();
    Ok(csv_response(write_csv(&header, rows)?, "instances.csv"))
}

#[utoipa::path(get, path = "/api/v1/instances/imports/template", tag = "instances",
    responses((status = 200, content_type = "text/csv", body = String), (status = 401), (status = 403)))]
pub async fn template(_: Authorized<View, Instances>) -> ApiResult<Response> {
    let example = [
        "orders-db",
        "postgresql",
        "db1.example.com",
        "5432",
        "postgres",
        "",
        "Orders (primary)",
        "true",
        "prod;eu",
    ];
    let body = write_csv(&IMPORT_COLUMNS, [example.iter().map(|s| s.to_string()).collect()])?;
    Ok(csv_response(body, "instances-import-template.csv"))
}

/// One row of an upload, or why it cannot be one.
#[derive(Debug)]
pub struct ParsedRow {
    /// The line in the file (the header is line 1).
    pub row: u64,
    pub name: String,
    pub input: Result<InstanceInput, String>,
}

/// Parses an uploaded CSV. A file that is not CSV, lacks a required column
/// or has too many rows is refused whole.
pub fn parse_upload(bytes: &[u8]) -> ApiResult<Vec<ParsedRow>> {
    let text = std::str::from_utf8(bytes).map_err(|_| ApiError::field("file", "the file must be UTF-8 text"))?;
    let text = text.strip_prefix(BOM).unwrap_or(text);
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .flexible(true)
        .from_reader(text.as_bytes());
    let headers: Vec<String> = reader
        .headers()
        .map_err(|e| ApiError::field("file", format!("unreadable CSV header: {e}")))?
        .iter()
        .map(|h| h.to_ascii_lowercase())
        .collect();
    let missing: Vec<&str> = REQUIRED_COLUMNS
        .iter()
        .copied()
        .filter(|c| !headers.iter().any(|h| h == c))
        .collect();
    if !missing.is_empty() {
        return Err(ApiError::field(
            "file",
            format!("missing column(s): {}", missing.join(", ")),
        ));
    }
    let column = |record: &csv::StringRecord, name: &str| -> String {
        let cell = headers
            .iter()
            .position(|h| h == name)
            .and_then(|i| record.get(i))
            .unwrap_or_default();
        unescape_cell(cell).to_string()
    };
    let mut rows = Vec::new();
    for record in reader.records() {
        let record = record.map_err(|e| ApiError::field("file", format!("unreadable CSV: {e}")))?;
        if record.iter().all(str::is_empty) {
            continue;
        }
        if rows.len() == MAX_ROWS {
            return Err(
                ApiError::new(Code::BatchTooLarge, format!("the file has more than {MAX_ROWS} rows"))
                    .with_data(json!({"errors": [{"field": "file", "message": format!("at most {MAX_ROWS} rows")}]})),
            );
        }
        let row = record.position().map(|p| p.line()).unwrap_or_default();
        let name = column(&record, "name");
        rows.push(ParsedRow {
            row,
            name,
            input: row_input(&|c| column(&record, c)),
        });
    }
    Ok(rows)
}

fn row_input(column: &dyn Fn(&str) -> String) -> Result<InstanceInput, String> {
    let db_type = match column("db_type").to_ascii_lowercase().as_str() {
        "mysql" => DbTypeInput::Mysql,
        "postgresql" => DbTypeInput::Postgresql,
        other => return Err(format!("db_type must be mysql or postgresql, not {other:?}")),
    };
    let port = column("port");
    let port = port
        .parse::<i64>()
        .map_err(|_| format!("port must be an integer, not {port:?}"))?;
    let credential = column("credential_id");
    let credential_id = match credential.as_str() {
        "" => None,
        text => Some(
            text.parse::<i64>()
                .map_err(|_| format!("credential_id must be an integer, not {text:?}"))?,
        ),
    };
    let active = column("is_active");
    let is_active = match active.as_str() {
        "" => None,
        text => Some(flag(text).ok_or_else(|| format!("is_active must be true or false, not {text:?}"))?),
    };
    let optional = |c: &str| Some(column(c)).filter(|v| !v.is_empty());
    Ok(InstanceInput {
        name: column("name"),
        db_type,
        host: column("host"),
        port,
        database_name: optional("database_name"),
        credential_id,
        description: optional("description"),
        is_active,
        tag_names: Some(
            column("tag_names")
                .split(';')
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .map(str::to_owned)
                .collect(),
        ),
    })
}

#[derive(Serialize, ToSchema)]
pub struct CreatedRow {
    pub row: u64,
    pub id: Option<i64>,
    pub name: String,
}

#[derive(Serialize, ToSchema)]
pub struct FailedRow {
    pub row: u64,
    pub name: String,
    pub message: String,
}

#[derive(Serialize, ToSchema)]
pub struct BatchCreateData {
    pub created: Vec<CreatedRow>,
    pub failed: Vec<FailedRow>,
    pub created_count: usize,
    pub failed_count: usize,
}

async fn upload(multipart: Result<Multipart, MultipartRejection>) -> ApiResult<Vec<u8>> {
    let mut multipart = multipart.map_err(|e| ApiError::field("file", e.body_text()))?;
    let too_large = || {
        ApiError::new(
            Code::PayloadTooLarge,
            format!("the file is larger than {} KiB", MAX_UPLOAD_BYTES / 1024),
        )
    };
    let multipart_error = |e: axum::extract::multipart::MultipartError| {
        if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
            too_large()
        } else {
            ApiError::field("file", e.body_text())
        }
    };
    while let Some(mut field) = multipart.next_field().await.map_err(multipart_error)? {
        if field.name() != Some("file") {
            continue;
        }
        if field
            .file_name()
            .is_some_and(|n| !n.to_ascii_lowercase().ends_with(".csv"))
        {
            return Err(ApiError::field("file", "the file must be a .csv"));
        }
        let mut bytes = Vec::new();
        while let Some(chunk) = field.chunk().await.map_err(multipart_error)? {
            if bytes.len() + chunk.len() > MAX_UPLOAD_BYTES {
                return Err(too_large());
            }
            bytes.extend_from_slice(&chunk);
        }
        return Ok(bytes);
    }
    Err(ApiError::field("file", "a multipart field named file is required"))
}

/// The upload of a batch create.
#[derive(ToSchema)]
#[allow(dead_code)] // documents the multipart form; `upload` reads it
pub struct CsvUpload {
    /// A `.csv` file in the template's format (UTF-8, an optional BOM), at
    /// most 1 MiB and 1000 rows; `tag_names` separated by `;`.
    #[schema(value_type = String, format = Binary, content_media_type = "text/csv")]
    file: Vec<u8>,
}

#[utoipa::path(post, path = "/api/v1/instances/actions/batch-create", tag = "instances",
    request_body(content = CsvUpload, content_type = "multipart/form-data",
        description = "The form field `file`: a .csv in the template's format, at most 1 MiB and 1000 rows"),
    responses((status = 200, body = BatchCreateData), (status = 207, body = BatchCreateData),
        (status = 400), (status = 401), (status = 403), (status = 413)))]
pub async fn batch_create(
    State(state): State<AppState>,
    _: Authorized<Create, Instances>,
    multipart: Result<Multipart, MultipartRejection>,
) -> ApiResult<Response> {
    let rows = parse_upload(&upload(multipart).await?)?;
    if rows.is_empty() {
        return Err(ApiError::field("file", "the file has no rows"));
    }
    let mut created = Vec::new();
    let mut failed = Vec::new();
    for row in rows {
        let outcome = match row.input {
            Ok(input) => instances::writes::create_instance(&state, &input)
                .await
                .map_err(|e| e.message),
            Err(message) => Err(message),
        };
        match outcome {
            Ok(instance) => created.push(CreatedRow {
                row: row.row,
                id: id_of(&instance.metadata),
                name: row.name,
            }),
            Err(message) => failed.push(FailedRow {
                row: row.row,
                name: row.name,
                message,
            }),
        }
    }
    let (created_count, failed_count) = (created.len(), failed.len());
    let data = BatchCreateData {
        created,
        failed,
        created_count,
        failed_count,
    };
    if created_count == 0 {
        let message = format!("none of the {failed_count} rows could be created");
        let data = serde_json::to_value(&data).unwrap_or_default();
        return Err(ApiError::new(Code::ValidationError, message).with_data(data));
    }
    Ok(Reply::batch(data, failed_count, created_count + failed_count).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_parse_with_their_line_numbers() {
        let file = "\u{feff}name,db_type,host,port,tag_names,is_active\n\
                    a,mysql,h1,3306,x; y,\n\
                    ,,,,,\n\
                    b,oracle,h2,1,,\n\
                    c,postgresql,h3,abc,,\n\
                    d,postgresql,h4,5432,,no\n";
        let rows = parse_upload(file.as_bytes()).unwrap();
        assert_eq!(rows.iter().map(|r| r.row).collect::<Vec<_>>(), [2, 4, 5, 6]);
        let a = rows[0].input.as_ref().unwrap();
        assert_eq!(a.tag_names.as_deref().unwrap(), ["x", "y"]);
        assert!(rows[1].input.as_ref().unwrap_err().contains("db_type"));
        assert!(rows[2].input.as_ref().unwrap_err().contains("port"));
        assert_eq!(rows[3].input.as_ref().unwrap().is_active, Some(false));
    }

    #[test]
    fn a_file_without_required_columns_is_refused_whole() {
        let e = parse_upload(b"name,host\na,b\n").unwrap_err();
        assert!(
            e.message.contains("db_type") && e.message.contains("port"),
            "{}",
            e.message
        );
    }

    #[test]
    fn too_many_rows_is_a_batch_error() {
        let mut file = String::from("name,db_type,host,port\n");
        for i in 0..=MAX_ROWS {
            file.push_str(&format!("n{i},mysql,h,1\n"));
        }
        assert_eq!(parse_upload(file.as_bytes()).unwrap_err().code, Code::BatchTooLarge);
    }

    #[test]
    fn formula_cells_are_exported_as_text() {
        for (cell, written) in [
            (
                "=HYPERLINK(\"http://evil\",\"x\")",
                "'=HYPERLINK(\"http://evil\",\"x\")",
            ),
            ("+1", "'+1"),
            ("-2+3", "'-2+3"),
            ("@SUM(A1)", "'@SUM(A1)"),
            ("\t=1", "'\t=1"),
            ("\r=1", "'\r=1"),
            ("'=1", "''=1"),
            ("plain", "plain"),
            ("a=b", "a=b"),
            ("'quoted", "'quoted"),
            ("", ""),
            // A `;`-delimited spreadsheet splits these into a formula cell.
            ("x;=cmd", "'x;=cmd"),
            ("a;+1", "'a;+1"),
            ("b;-2", "'b;-2"),
            ("c;@x", "'c;@x"),
            ("d;  =1", "'d;  =1"),
            ("e;\t=1", "'e;\t=1"),
            ("f; \u{a0}@x", "'f; \u{a0}@x"),
            ("ok;=later;", "'ok;=later;"),
            ("t1;t2", "t1;t2"),
            ("a;b=c", "a;b=c"),
            ("trailing;", "trailing;"),
            ("x; y", "x; y"),
        ] {
            assert_eq!(escape_cell(cell), written, "{cell:?}");
        }
    }

    #[test]
    fn semicolon_formulas_round_trip_through_an_import() {
        for cell in ["x;=cmd", "a;+1", "'b;-2", "c; @x", "t1;t2"] {
            assert_eq!(unescape_cell(&escape_cell(cell)), cell, "{cell:?}");
        }
        assert_eq!(unescape_cell("'x;=cmd"), "x;=cmd");
    }

    #[test]
    fn imports_drop_only_the_quote_before_a_formula_character() {
        assert_eq!(unescape_cell("'=1+1"), "=1+1");
        assert_eq!(unescape_cell("'-5 degrees"), "-5 degrees");
        assert_eq!(unescape_cell("''=1"), "'=1");
        assert_eq!(unescape_cell("'quoted"), "'quoted");
        assert_eq!(unescape_cell("=1"), "=1", "an unescaped cell is taken as it is");
        for cell in ["=x", "'=x", "''=x", "'", "''", "'a", "-", "@@", "\tx", "x", "", "数=1"] {
            assert_eq!(unescape_cell(&escape_cell(cell)), cell, "{cell:?} round-trips");
        }
    }

    #[test]
    fn an_export_with_formula_cells_imports_the_original_values() {
        let mut row: Vec<String> = ["a", "mysql", "h", "1", "-db", "", "=cmd|' /C calc'!A0", "true", "t1"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        row.push("@version".into());
        let header: Vec<&str> = IMPORT_COLUMNS.iter().copied().chain(["version"]).collect();
        let body = write_csv(&header, [row]).unwrap();
        let text = String::from_utf8(body.clone()).unwrap();
        assert!(text.contains(",'-db,"), "{text}");
        assert!(text.contains(",'=cmd|' /C calc'!A0,"), "{text}");
        assert!(text.contains(",'@version"), "{text}");
        let rows = parse_upload(&body).unwrap();
        let input = rows[0].input.as_ref().unwrap();
        assert_eq!(input.database_name.as_deref(), Some("-db"));
        assert_eq!(input.description.as_deref(), Some("=cmd|' /C calc'!A0"));
    }

    #[test]
    fn the_template_is_importable() {
        let body = write_csv(
            &IMPORT_COLUMNS,
            [vec![
                "a".into(),
                "mysql".into(),
                "h".into(),
                "1".into(),
                "".into(),
                "".into(),
                "d, with comma".into(),
                "true".into(),
                "t1;t2".into(),
            ]],
        )
        .unwrap();
        assert!(body.starts_with(BOM.as_bytes()));
        let rows = parse_upload(&body).unwrap();
        let input = rows[0].input.as_ref().unwrap();
        assert_eq!(input.description.as_deref(), Some("d, with comma"));
    }
}
