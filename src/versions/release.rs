//! Which release line a server's version banner belongs to. Support ends
//! per line, never per patch release, so `15.18` and `15.19` are one line
//! and a patch release never breaks the match.

use std::fmt;

use crate::crd::instance::DbType;

/// The products dbfleet knows end-of-life dates for. MariaDB speaks the
/// MySQL protocol (`dbType: mysql`); only its banner tells it apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Product {
    Postgresql,
    Mysql,
    Mariadb,
}

impl Product {
    /// As in the table's keys: `postgresql`, `mysql`, `mariadb`.
    pub fn key(self) -> &'static str {
        match self {
            Product::Postgresql => "postgresql",
            Product::Mysql => "mysql",
            Product::Mariadb => "mariadb",
        }
    }

    pub fn from_key(key: &str) -> Option<Product> {
        match key {
            "postgresql" => Some(Product::Postgresql),
            "mysql" => Some(Product::Mysql),
            "mariadb" => Some(Product::Mariadb),
            _ => None,
        }
    }

    fn display_name(self) -> &'static str {
        match self {
            Product::Postgresql => "PostgreSQL",
            Product::Mysql => "MySQL",
            Product::Mariadb => "MariaDB",
        }
    }
}

/// A release line: PostgreSQL `15` (from 10 on the major is one number),
/// PostgreSQL `9.6` (before 10 it was two), MySQL `8.0`, MariaDB `10.11`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Release {
    pub product: Product,
    pub line: String,
}

impl Release {
    pub fn new(product: Product, line: impl Into<String>) -> Self {
        Release {
            product,
            line: line.into(),
        }
    }

    /// The table key: `postgresql-15`, `mariadb-10.11`.
    pub fn key(&self) -> String {
        format!("{}-{}", self.product.key(), self.line)
    }

    /// Parses a table key (`mysql-8.0`); `None` when it is not one.
    pub fn from_key(key: &str) -> Option<Release> {
        let (product, line) = key.split_once('-')?;
        let product = Product::from_key(product)?;
        let numbers: Vec<&str> = line.split('.').collect();
        let numeric = numbers
            .iter()
            .all(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
        let parts_expected = match product {
            Product::Postgresql => numbers.len() == 1 || (numbers.len() == 2 && numbers[0].parse::<u32>().ok()? < 10),
            Product::Mysql | Product::Mariadb => numbers.len() == 2,
        };
        (numeric && parts_expected).then(|| Release::new(product, line))
    }
}

impl fmt::Display for Release {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.product.display_name(), self.line)
    }
}

/// The release line of a server from its version banner, or `None` when
/// the banner holds no version: PostgreSQL's `15.18 (Debian
/// 15.18-0+deb12u1)` and `PostgreSQL 16.4 on x86_64-pc-linux-gnu, ...` are
/// `15` and `16`, `9.6.24` is `9.6`; MariaDB's `10.11.19-MariaDB-0+deb12u1`
/// (also behind the replication prefix `5.5.5-`) is MariaDB `10.11`;
/// MySQL's `8.0.36-0ubuntu0.22.04.1` is MySQL `8.0`.
pub fn release_of(db_type: DbType, banner: &str) -> Option<Release> {
    match db_type {
        DbType::Postgresql => postgres_line(banner).map(|line| Release::new(Product::Postgresql, line)),
        DbType::Mysql => mysql_release(banner),
    }
}

fn postgres_line(banner: &str) -> Option<String> {
    let mut words = banner.split_whitespace();
    let mut first = words.next()?;
    if first.eq_ignore_ascii_case("PostgreSQL") {
        first = words.next()?;
    }
    let (major, rest) = leading_number(first)?;
    if major >= 10 {
        return Some(major.to_string());
    }
    // 9.6.24: before 10 a major release had two numbers.
    let (minor, _) = leading_number(rest.strip_prefix('.')?)?;
    Some(format!("{major}.{minor}"))
}

fn mysql_release(banner: &str) -> Option<Release> {
    let first = banner.split_whitespace().next()?;
    let mariadb = first.to_ascii_lowercase().contains("mariadb");
    // MariaDB before 11 may announce itself as `5.5.5-10.6.18-MariaDB` so
    // old replication clients accept it.
    let version = match first.strip_prefix("5.5.5-") {
        Some(rest) if mariadb => rest,
        _ => first,
    };
    let (major, rest) = leading_number(version)?;
    let (minor, _) = leading_number(rest.strip_prefix('.')?)?;
    let product = if mariadb { Product::Mariadb } else { Product::Mysql };
    Some(Release::new(product, format!("{major}.{minor}")))
}

/// The number `text` starts with and what follows it.
fn leading_number(text: &str) -> Option<(u32, &str)> {
    let end = text.bytes().position(|b| !b.is_ascii_digit()).unwrap_or(text.len());
    let number = text[..end].parse().ok()?;
    Some((number, &text[end..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(db_type: DbType, banner: &str) -> Option<String> {
        release_of(db_type, banner).map(|r| r.key())
    }

    #[test]
    fn postgres_banners_give_their_major_line() {
        for (banner, key) in [
            ("15.18 (Debian 15.18-0+deb12u1)", "postgresql-15"),
            ("15.19", "postgresql-15"),
            (
                "PostgreSQL 16.4 on x86_64-pc-linux-gnu, compiled by gcc (GCC) 12.2.0, 64-bit",
                "postgresql-16",
            ),
            ("17beta2 (Ubuntu 17~beta2-1)", "postgresql-17"),
            ("18devel", "postgresql-18"),
            ("9.6.24", "postgresql-9.6"),
            ("PostgreSQL 9.5.25 on x86_64", "postgresql-9.5"),
            ("10.23", "postgresql-10"),
        ] {
            assert_eq!(line(DbType::Postgresql, banner).as_deref(), Some(key), "{banner}");
        }
    }

    #[test]
    fn mysql_and_mariadb_banners_give_major_and_minor() {
        for (banner, key) in [
            ("8.0.36-0ubuntu0.22.04.1", "mysql-8.0"),
            ("8.0.37", "mysql-8.0"),
            ("8.4.3", "mysql-8.4"),
            ("5.7.44-log", "mysql-5.7"),
            ("10.11.19-MariaDB-0+deb12u1", "mariadb-10.11"),
            ("10.11.19-MariaDB-0+deb12u1-log", "mariadb-10.11"),
            ("5.5.5-10.6.18-MariaDB-log", "mariadb-10.6"),
            ("11.4.2-MariaDB-ubu2404", "mariadb-11.4"),
        ] {
            assert_eq!(line(DbType::Mysql, banner).as_deref(), Some(key), "{banner}");
        }
    }

    #[test]
    fn a_banner_without_a_version_has_no_release() {
        for banner in ["", "   ", "PostgreSQL", "devel", "9", "x.y.z"] {
            assert_eq!(line(DbType::Postgresql, banner), None, "{banner:?}");
        }
        for banner in ["", "MariaDB", "8", "x.y.z"] {
            assert_eq!(line(DbType::Mysql, banner), None, "{banner:?}");
        }
    }

    #[test]
    fn keys_round_trip_and_malformed_keys_are_refused() {
        for key in ["postgresql-15", "postgresql-9.6", "mysql-8.0", "mariadb-10.11"] {
            assert_eq!(Release::from_key(key).map(|r| r.key()).as_deref(), Some(key));
        }
        for key in [
            "postgresql-15.4",
            "postgresql-",
            "postgresql-10.1",
            "mysql-8",
            "mysql-8.0.36",
            "oracle-19",
            "mariadb-10.x",
            "mariadb10.11",
        ] {
            assert_eq!(Release::from_key(key), None, "{key}");
        }
        assert_eq!(Release::from_key("mariadb-10.11").unwrap().to_string(), "MariaDB 10.11");
    }
}
