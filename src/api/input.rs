//! Turning request bodies and query strings into typed input, so that every
//! bad input is a 400 naming the field, never axum's plain-text rejection.

use axum::extract::FromRequestParts;
use axum::http::HeaderMap;
use axum::http::header::CONTENT_TYPE;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use super::envelope::{ApiError, Code};

/// The contract forbids sending the CSRF token in a JSON body.
const FORBIDDEN_BODY_FIELD: &str = "csrf_token";

/// Parses a JSON body into `T`, naming the offending field on failure.
pub fn parse_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::field("body", "a JSON object is required"));
    }
    let value: Value =
        serde_json::from_slice(body).map_err(|e| ApiError::field("body", format!("malformed JSON: {e}")))?;
    parse_value(value)
}

/// Parses a JSON body or, when the request says so, an
/// `application/x-www-form-urlencoded` one (fields as strings; `is_active`
/// and other booleans are accepted as `true/false/1/0/on/off/yes/no`).
pub fn parse_json_or_form<T: DeserializeOwned>(headers: &HeaderMap, body: &[u8]) -> Result<T, ApiError> {
    let is_form = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    if !is_form {
        return parse_json(body);
    }
    let mut object = Map::new();
    for (key, value) in form_urlencoded::parse(body) {
        let value = match flag(&value) {
            Some(b) if key.starts_with("is_") => Value::Bool(b),
            _ => Value::String(value.into_owned()),
        };
        object.insert(key.into_owned(), value);
    }
    parse_value(Value::Object(object))
}

fn parse_value<T: DeserializeOwned>(mut value: Value) -> Result<T, ApiError> {
    integral_numbers_as_integers(&mut value);
    let Value::Object(object) = &value else {
        return Err(ApiError::field("body", "a JSON object is required"));
    };
    if object.contains_key(FORBIDDEN_BODY_FIELD) {
        return Err(ApiError::new(
            Code::CsrfFailed,
            "send the CSRF token in the X-CSRFToken header, not in the body",
        )
        .with_data(
            serde_json::json!({"errors": [{"field": FORBIDDEN_BODY_FIELD, "message": "not allowed in the body"}]}),
        ));
    }
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner().to_string();
        let field = if path == "." {
            missing_field(&inner).unwrap_or("body").to_string()
        } else {
            path
        };
        ApiError::field(field.clone(), format!("{field}: {}", humanize(&inner)))
    })
}

/// JSON Schema, and so the OpenAPI document, counts `5.0` as the integer 5,
/// which serde refuses where an integer is expected: integral numbers that
/// fit an `i64` become integers before the body is read.
fn integral_numbers_as_integers(value: &mut Value) {
    match value {
        Value::Number(n) => {
            if let Some(f) = n.as_f64().filter(|_| n.is_f64()) {
                // ±2^63 (what `i64::MIN as f64` and `i64::MAX as f64` are)
                // is also where integers just beyond an i64 round to.
                if f.fract() == 0.0 && f > i64::MIN as f64 && f < i64::MAX as f64 {
                    *value = Value::from(f as i64);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(integral_numbers_as_integers),
        Value::Object(fields) => fields.values_mut().for_each(integral_numbers_as_integers),
        _ => {}
    }
}

/// serde reports a missing field at the parent path; the name is in the text.
fn missing_field(message: &str) -> Option<&str> {
    message.strip_prefix("missing field `")?.split('`').next()
}

/// Drops serde's trailing " at line 1 column 7", meaningless to a client.
fn humanize(message: &str) -> &str {
    message.split(" at line ").next().unwrap_or(message)
}

/// `true/1/on/yes` and `false/0/off/no`, case-insensitively.
pub fn flag(text: &str) -> Option<bool> {
    match text.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "on" | "yes" => Some(true),
        "false" | "0" | "off" | "no" => Some(false),
        _ => None,
    }
}

/// The query string as ordered pairs: keys may repeat (`tags=a&tags=b`).
#[derive(Debug, Default, Clone)]
pub struct Query(Vec<(String, String)>);

impl Query {
    pub fn parse(raw: &str) -> Self {
        Query(
            form_urlencoded::parse(raw.as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        )
    }

    /// Every pair as sent, in order.
    pub fn pairs(&self) -> &[(String, String)] {
        &self.0
    }

    /// The first value of `key`, trimmed, when it is not empty.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.trim())
            .filter(|v| !v.is_empty())
    }

    /// The first value of `key` exactly as sent (not trimmed), when it is
    /// not empty: for parameters whose values are a closed set, where a
    /// value the document does not list must be refused, not tidied up.
    pub fn exact(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    }

    /// `key` as one of `choices` (exactly as listed), `None` when absent or
    /// empty; anything else is a 400 naming `key`.
    pub fn choice<T: Copy>(&self, key: &str, choices: &[(&str, T)]) -> Result<Option<T>, ApiError> {
        let Some(value) = self.exact(key) else {
            return Ok(None);
        };
        match choices.iter().find(|(name, _)| *name == value) {
            Some((_, choice)) => Ok(Some(*choice)),
            None => {
                let names: Vec<&str> = choices.iter().map(|(name, _)| *name).collect();
                Err(ApiError::field(
                    key,
                    format!("{key} must be one of {}, not {value:?}", names.join(", ")),
                ))
            }
        }
    }

    /// `key` as `true` or `false` (exactly), `None` when absent or empty;
    /// anything else is a 400 naming `key`.
    pub fn boolean(&self, key: &str) -> Result<Option<bool>, ApiError> {
        self.choice(key, &[("true", true), ("false", false)])
    }

    /// Every non-empty value of `key` (also `key[]`, as some clients send).
    pub fn all(&self, key: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(k, _)| k == key || k.strip_suffix("[]") == Some(key))
            .map(|(_, v)| v.trim())
            .filter(|v| !v.is_empty())
            .collect()
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Query {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Query::parse(parts.uri.query().unwrap_or_default()))
    }
}

/// A path id: anything but a positive integer names nothing.
pub fn path_id(raw: &str, what: &str) -> Result<i64, ApiError> {
    raw.parse::<i64>()
        .ok()
        .filter(|id| *id > 0)
        .ok_or_else(|| ApiError::not_found(format!("{what} {raw}")))
}

/// Ids in first-seen order without repeats; empty lists are a 400 naming
/// `field`, lists of more than `max` ids as sent (what the OpenAPI
/// `maxItems` says) are refused whole (400 `BATCH_TOO_LARGE`).
pub fn distinct_ids(ids: &[i64], field: &str, max: usize) -> Result<Vec<i64>, ApiError> {
    let mut seen = std::collections::HashSet::new();
    let distinct: Vec<i64> = ids.iter().copied().filter(|id| seen.insert(*id)).collect();
    if distinct.is_empty() {
        return Err(ApiError::field(field, format!("{field} must list at least one id")));
    }
    if ids.len() > max {
        return Err(ApiError::new(
            Code::BatchTooLarge,
            format!("{field} lists {} ids; at most {max} per request", ids.len()),
        )
        .with_data(serde_json::json!({"errors": [{"field": field, "message": format!("at most {max} ids")}]})));
    }
    Ok(distinct)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Deserialize, Debug)]
    #[allow(dead_code)] // fields exist to be type-checked by serde
    struct Sample {
        name: String,
        port: u16,
        kind: Option<Kind>,
    }

    #[derive(Deserialize, Debug)]
    #[serde(rename_all = "lowercase")]
    enum Kind {
        Mysql,
    }

    fn field_of(result: Result<Sample, ApiError>) -> String {
        let e = result.unwrap_err();
        assert_eq!(e.code, Code::ValidationError, "{}", e.message);
        e.data["errors"][0]["field"].as_str().unwrap().to_string()
    }

    #[test]
    fn bad_json_is_a_validation_error_naming_the_field() {
        assert_eq!(field_of(parse_json(b"{not json")), "body");
        assert_eq!(field_of(parse_json(b"")), "body");
        assert_eq!(field_of(parse_json(b"[1]")), "body");
        assert_eq!(field_of(parse_json(br#"{"name": "a", "port": "x"}"#)), "port");
        assert_eq!(field_of(parse_json(br#"{"name": "a", "port": 70000}"#)), "port");
        assert_eq!(field_of(parse_json(br#"{"port": 1}"#)), "name");
        assert_eq!(
            field_of(parse_json(br#"{"name": "a", "port": 1, "kind": "oracle"}"#)),
            "kind"
        );
    }

    #[test]
    fn integral_numbers_are_integers_and_fractions_are_not() {
        let sample: Sample = parse_json(br#"{"name": "a", "port": 5432.0}"#).unwrap();
        assert_eq!(sample.port, 5432);
        assert_eq!(field_of(parse_json(br#"{"name": "a", "port": 5432.5}"#)), "port");
        assert_eq!(field_of(parse_json(br#"{"name": "a", "port": 1e300}"#)), "port");
        #[derive(Deserialize)]
        struct Ids {
            ids: Vec<i64>,
        }
        let ids: Ids = parse_json(br#"{"ids": [1.0, -3.0, 99208326209.0]}"#).unwrap();
        assert_eq!(ids.ids, [1, -3, 99208326209]);
        // Parsed exactly (serde_json's float_roundtrip), not to a near fraction.
        let ids: Ids = parse_json(br#"{"ids": [2251799813685247.0, 4503599627370495.0]}"#).unwrap();
        assert_eq!(ids.ids, [2251799813685247, 4503599627370495]);
        assert!(parse_json::<Ids>(br#"{"ids": [9223372036854775808.0]}"#).is_err());
        assert!(parse_json::<Ids>(br#"{"ids": [-9223372036854775809]}"#).is_err());
    }

    #[test]
    fn a_csrf_token_in_the_body_is_refused() {
        let e = parse_json::<Sample>(br#"{"name": "a", "port": 1, "csrf_token": "x"}"#).unwrap_err();
        assert_eq!(e.code, Code::CsrfFailed);
    }

    #[test]
    fn forms_parse_booleans_and_strings() {
        #[derive(Deserialize)]
        struct Form {
            name: String,
            is_active: bool,
        }
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, "application/x-www-form-urlencoded".parse().unwrap());
        let form: Form = parse_json_or_form(&headers, b"name=a%20b&is_active=off").unwrap();
        assert_eq!(form.name, "a b");
        assert!(!form.is_active);
    }

    #[test]
    fn queries_keep_repeated_keys_and_skip_blanks() {
        let q = Query::parse("tags=a&tags=b&tags[]=c&search=+&page=2");
        assert_eq!(q.all("tags"), vec!["a", "b", "c"]);
        assert_eq!(q.get("search"), None);
        assert_eq!(q.get("page"), Some("2"));
    }

    #[test]
    fn closed_sets_take_only_their_values_as_sent() {
        let q = Query::parse("a=true&b=TRUE&c=&d=+false&sort=size");
        assert_eq!(q.boolean("a").unwrap(), Some(true));
        assert_eq!(q.boolean("c").unwrap(), None);
        assert_eq!(q.boolean("missing").unwrap(), None);
        for key in ["b", "d"] {
            let e = q.boolean(key).unwrap_err();
            assert_eq!(
                (e.code, e.data["errors"][0]["field"].as_str()),
                (Code::ValidationError, Some(key))
            );
        }
        assert_eq!(q.choice("sort", &[("name", 1), ("size", 2)]).unwrap(), Some(2));
        assert!(q.choice("sort", &[("name", 1)]).unwrap_err().message.contains("name"));
    }

    #[test]
    fn only_positive_integers_are_path_ids() {
        assert_eq!(path_id("12", "tag").unwrap(), 12);
        assert_eq!(path_id("0", "tag").unwrap_err().code, Code::NotFound);
        assert_eq!(path_id("x", "tag").unwrap_err().code, Code::NotFound);
    }

    #[test]
    fn batch_ids_are_deduplicated_and_bounded() {
        assert_eq!(distinct_ids(&[3, 1, 3], "ids", 3).unwrap(), vec![3, 1]);
        assert_eq!(
            distinct_ids(&[3, 1, 3], "ids", 2).unwrap_err().code,
            Code::BatchTooLarge
        );
        assert_eq!(distinct_ids(&[], "ids", 2).unwrap_err().code, Code::ValidationError);
        assert_eq!(
            distinct_ids(&[1, 2, 3], "ids", 2).unwrap_err().code,
            Code::BatchTooLarge
        );
    }
}
