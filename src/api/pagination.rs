//! Page/limit rules shared by every list (SPEC §3.1): a value that is not
//! an integer falls back to the default, an integer out of range is clamped.

use serde::Serialize;
use utoipa::ToSchema;

use super::input::Query;

pub const DEFAULT_LIMIT: usize = 20;
pub const MAX_INSTANCE_LIMIT: usize = 100;
pub const MAX_TAG_LIMIT: usize = 200;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PageRequest {
    pub page: usize,
    pub limit: usize,
}

impl PageRequest {
    pub fn from_query(query: &Query, max_limit: usize) -> Self {
        PageRequest {
            page: clamp(query.get("page"), 1, 1, usize::MAX),
            limit: clamp(query.get("limit"), DEFAULT_LIMIT, 1, max_limit),
        }
    }

    /// Cuts one page out of the full, already filtered and sorted, list.
    pub fn apply<T>(self, items: Vec<T>) -> Paged<T> {
        let total = items.len();
        let (start, _) = self.range();
        self.paged(items.into_iter().skip(start).take(self.limit).collect(), total)
    }

    /// Positions `start..end` of this page in the full list.
    pub fn range(self) -> (usize, usize) {
        let start = (self.page - 1).saturating_mul(self.limit);
        (start, start.saturating_add(self.limit))
    }

    /// This page, already cut out of a list of `total` items.
    pub fn paged<T>(self, items: Vec<T>, total: usize) -> Paged<T> {
        Paged {
            items,
            total,
            page: self.page,
            pages: total.div_ceil(self.limit),
            limit: self.limit,
        }
    }
}

fn clamp(raw: Option<&str>, default: usize, min: usize, max: usize) -> usize {
    match raw.map(str::parse::<i128>) {
        Some(Ok(n)) => n.clamp(min as i128, max as i128) as usize,
        _ => default,
    }
}

/// `data` of every list answer.
#[derive(Serialize, Debug, ToSchema)]
pub struct Paged<T> {
    pub items: Vec<T>,
    pub total: usize,
    pub page: usize,
    pub pages: usize,
    pub limit: usize,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(query: &str, max: usize) -> PageRequest {
        PageRequest::from_query(&Query::parse(query), max)
    }

    #[test]
    fn non_integers_fall_back_and_out_of_range_integers_clamp() {
        assert_eq!(page("", 100), PageRequest { page: 1, limit: 20 });
        assert_eq!(page("page=x&limit=1.5", 100), PageRequest { page: 1, limit: 20 });
        assert_eq!(page("page=0&limit=1000", 100), PageRequest { page: 1, limit: 100 });
        assert_eq!(page("page=-3&limit=-1", 200), PageRequest { page: 1, limit: 1 });
        assert_eq!(page("limit=1000", 200).limit, 200);
        assert_eq!(page("page=99999999999999999999999", 100).page, usize::MAX);
    }

    #[test]
    fn pages_cut_the_list() {
        let paged = PageRequest { page: 2, limit: 3 }.apply((1..=7).collect());
        assert_eq!(paged.items, vec![4, 5, 6]);
        assert_eq!((paged.total, paged.pages), (7, 3));
        let beyond = PageRequest {
            page: usize::MAX,
            limit: 3,
        }
        .apply((1..=7).collect::<Vec<_>>());
        assert!(beyond.items.is_empty());
        assert_eq!(
            PageRequest {
                page: usize::MAX,
                limit: usize::MAX
            }
            .range(),
            (usize::MAX, usize::MAX)
        );
        assert_eq!(PageRequest { page: 3, limit: 10 }.range(), (20, 30));
    }
}
