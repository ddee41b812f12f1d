//! How the console writes sizes and times: pure.

use k8s_openapi::jiff::Timestamp;

/// Bytes in binary units (KiB, MiB, …) with one decimal under 10.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut value = n as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if value < 10.0 {
        format!("{value:.1} {}", UNITS[unit])
    } else {
        format!("{value:.0} {}", UNITS[unit])
    }
}

/// A moment as the page writes it: `<time datetime=iso title=utc>utc</time>`;
/// the console's script rewrites the text in the reader's zone and keeps
/// the UTC value in the title.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct When {
    pub iso: String,
    pub utc: String,
}

impl When {
    pub fn at(t: Timestamp) -> When {
        When {
            iso: t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
            utc: t.strftime("%Y-%m-%d %H:%M:%S UTC").to_string(),
        }
    }

    /// From the contract's RFC 3339 text; `None` if it does not parse.
    pub fn parse(rfc3339: &str) -> Option<When> {
        rfc3339.parse::<Timestamp>().ok().map(When::at)
    }
}

/// `parse` over an optional value.
pub fn when(rfc3339: Option<&str>) -> Option<When> {
    rfc3339.and_then(When::parse)
}

/// `path` with `query` changed by `changes` (each set, or removed with
/// `None`), for the list pages' sorting and paging links.
pub fn link_with(path: &str, query: &crate::api::input::Query, changes: &[(&str, Option<&str>)]) -> String {
    let mut out = form_urlencoded::Serializer::new(String::new());
    for (k, v) in query
        .pairs()
        .iter()
        .filter(|(k, _)| changes.iter().all(|(c, _)| c != k))
    {
        out.append_pair(k, v);
    }
    for (key, value) in changes {
        if let Some(value) = value {
            out.append_pair(key, value);
        }
    }
    format!("{path}?{}", out.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_in_binary_units() {
        assert_eq!(bytes(0), "0 B");
        assert_eq!(bytes(1023), "1023 B");
        assert_eq!(bytes(1024), "1.0 KiB");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(10 * 1024 * 1024), "10 MiB");
        assert_eq!(bytes(3 * 1024 * 1024 * 1024 + 1), "3.0 GiB");
        assert_eq!(bytes(u64::MAX), "16 EiB");
    }

    #[test]
    fn times_keep_utc_for_the_title() {
        let w = When::parse("2025-03-04T05:06:07Z").unwrap();
        assert_eq!(w.iso, "2025-03-04T05:06:07Z");
        assert_eq!(w.utc, "2025-03-04 05:06:07 UTC");
        assert_eq!(when(Some("yesterday")), None);
    }
}
