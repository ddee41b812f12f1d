//! The end-of-life table: the one shipped in the binary, a site's
//! corrections from a ConfigMap, and the two merged. Pure: reading the
//! ConfigMap is `observe::lifecycle_overrides`.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use k8s_openapi::jiff::civil::Date;
use serde::Deserialize;

use super::release::Release;

/// The table dbfleet ships, with where its dates come from.
const BUILT_IN: &str = include_str!("lifecycle.yaml");

/// Where an end-of-life date came from, for messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    BuiltIn,
    Site,
}

/// End-of-life dates by release line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LifecycleTable {
    entries: BTreeMap<Release, (Date, Origin)>,
    /// When the built-in dates were last checked against the vendors.
    pub checked: Date,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct BuiltInFile {
    #[allow(dead_code)] // kept in the file for people; checked by a test
    source: String,
    checked: String,
    end_of_life: BTreeMap<String, String>,
}

impl LifecycleTable {
    /// The table shipped in the binary (a unit test proves it parses).
    pub fn built_in() -> &'static LifecycleTable {
        static TABLE: OnceLock<LifecycleTable> = OnceLock::new();
        TABLE.get_or_init(|| parse_built_in(BUILT_IN).expect("src/versions/lifecycle.yaml is valid"))
    }

    /// The end of life of `release`, and where the date came from.
    pub fn end_of_life(&self, release: &Release) -> Option<(Date, Origin)> {
        self.entries.get(release).copied()
    }

    /// This table with the site's dates added, or in place of its own.
    pub fn with_overrides(&self, overrides: &Overrides) -> LifecycleTable {
        let mut merged = self.clone();
        for (release, date) in &overrides.0 {
            merged.entries.insert(release.clone(), (*date, Origin::Site));
        }
        merged
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

fn parse_built_in(text: &str) -> Result<LifecycleTable, String> {
    let file: BuiltInFile = serde_yaml::from_str(text).map_err(|e| e.to_string())?;
    let checked = parse_date("checked", &file.checked)?;
    let entries = parse_entries(&file.end_of_life)?
        .into_iter()
        .map(|(release, date)| (release, (date, Origin::BuiltIn)))
        .collect();
    Ok(LifecycleTable { entries, checked })
}

/// A site's end-of-life dates, read from its ConfigMap.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Overrides(BTreeMap<Release, Date>);

impl Overrides {
    /// The ConfigMap's `data`: every key a release line (`postgresql-15`,
    /// `mysql-8.0`, `mariadb-10.11`), every value a date (`2027-11-11`).
    /// One bad entry refuses them all, so a typo never half-applies; the
    /// error names every bad entry.
    pub fn from_data(data: &BTreeMap<String, String>) -> Result<Overrides, String> {
        parse_entries(data).map(Overrides)
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

fn parse_entries(data: &BTreeMap<String, String>) -> Result<BTreeMap<Release, Date>, String> {
    let mut entries = BTreeMap::new();
    let mut problems = Vec::new();
    for (key, value) in data {
        let Some(release) = Release::from_key(key) else {
            problems.push(format!(
                "key {key:?} is not a release line (postgresql-<major>, postgresql-9.<minor>, \
                 mysql-<major>.<minor>, mariadb-<major>.<minor>)"
            ));
            continue;
        };
        match parse_date(key, value) {
            Ok(date) => {
                entries.insert(release, date);
            }
            Err(problem) => problems.push(problem),
        }
    }
    if problems.is_empty() {
        Ok(entries)
    } else {
        Err(problems.join("; "))
    }
}

fn parse_date(key: &str, value: &str) -> Result<Date, String> {
    let text = value.trim();
    // jiff also reads `20271111`; only the documented form is accepted.
    let well_formed = text.len() == 10 && text.as_bytes()[4] == b'-' && text.as_bytes()[7] == b'-';
    match text.parse::<Date>() {
        Ok(date) if well_formed => Ok(date),
        _ => Err(format!("{key}: {value:?} is not a date (YYYY-MM-DD)")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::versions::release::Product;

    fn data(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn date(text: &str) -> Date {
        text.parse().unwrap()
    }

    #[test]
    fn the_built_in_table_parses_and_covers_the_lines_in_use() {
        let table = LifecycleTable::built_in();
        assert!(table.len() > 30, "{}", table.len());
        let file: BuiltInFile = serde_yaml::from_str(BUILT_IN).unwrap();
        assert!(file.source.contains("postgresql.org"), "the source is named");
        for (product, line, eol) in [
            (Product::Postgresql, "9.6", "2021-11-11"),
            (Product::Postgresql, "15", "2027-11-11"),
            (Product::Mysql, "8.0", "2026-04-30"),
            (Product::Mysql, "8.4", "2032-04-30"),
            (Product::Mariadb, "10.11", "2028-02-16"),
        ] {
            assert_eq!(
                table.end_of_life(&Release::new(product, line)),
                Some((date(eol), Origin::BuiltIn)),
                "{product:?} {line}"
            );
        }
    }

    #[test]
    fn a_site_corrects_and_extends_the_table() {
        let built_in = LifecycleTable::built_in();
        let overrides =
            Overrides::from_data(&data(&[("postgresql-15", "2020-01-01"), ("mysql-9.9", "2031-01-31")])).unwrap();
        let merged = built_in.with_overrides(&overrides);
        let pg15 = Release::new(Product::Postgresql, "15");
        assert_eq!(merged.end_of_life(&pg15), Some((date("2020-01-01"), Origin::Site)));
        assert_eq!(
            merged.end_of_life(&Release::new(Product::Mysql, "9.9")),
            Some((date("2031-01-31"), Origin::Site))
        );
        let pg16 = Release::new(Product::Postgresql, "16");
        assert_eq!(merged.end_of_life(&pg16), built_in.end_of_life(&pg16), "the rest stays");
        assert_eq!(merged.len(), built_in.len() + 1);
        assert_eq!(built_in.end_of_life(&pg15).unwrap().1, Origin::BuiltIn, "unchanged");
        assert_eq!(built_in.with_overrides(&Overrides::default()), *built_in);
    }

    #[test]
    fn a_bad_entry_refuses_the_whole_override_and_names_each_problem() {
        let error = Overrides::from_data(&data(&[
            ("postgresql-15", "2027-11-11"),
            ("postgres-16", "2028-11-09"),
            ("mysql-8.0", "April 2026"),
            ("mariadb-10.11", "20280216"),
        ]))
        .unwrap_err();
        assert!(error.contains("\"postgres-16\" is not a release line"), "{error}");
        assert!(error.contains("mysql-8.0: \"April 2026\" is not a date"), "{error}");
        assert!(error.contains("mariadb-10.11: \"20280216\""), "{error}");
        assert!(!error.contains("postgresql-15"), "{error}");
        assert_eq!(Overrides::from_data(&BTreeMap::new()), Ok(Overrides::default()));
        assert_eq!(
            Overrides::from_data(&data(&[("mysql-8.0", " 2026-04-30 ")])).map(|o| o.len()),
            Ok(1)
        );
    }
}
