//! Bounds on what dbfleet writes into status.
//!
//! Users grow fleets and sessions, and database servers grow database lists,
//! account lists and error messages, without limit; one Kubernetes object
//! must stay well below the API server's 1.5 MiB limit, and an Event note
//! below 1 KiB. Every cap is here, sized by the arithmetic in its comment,
//! and applied through methods on the status types it is about.

/// Longest message written into status (condition messages, the connection
/// message, session results) or an Event note, in bytes: long enough for
/// any driver error with its context, and exactly the limit the API server
/// puts on an Event's note.
pub const MAX_MESSAGE_BYTES: usize = 1024;

/// Marks a message that was cut.
const ELLIPSIS: &str = "…";

/// Accounts listed in `status.accounts.items` (SPEC §1.1), unless
/// `--account-items-cap` says otherwise.
pub const DEFAULT_ACCOUNT_ITEMS_CAP: usize = crate::probe::DEFAULT_ACCOUNT_ITEMS_CAP;

/// Entries kept in `status.capacity.databases` (the largest ones; the total
/// and the count cover all). 500 × ~130 bytes ≈ 65 KB.
pub const DEFAULT_DATABASE_ITEMS_CAP: usize = 500;

/// Database names kept per account in `status.accounts.items[].databases`.
/// With 500 accounts listed (the default account cap), 16 names of up to 64
/// bytes and an account's other fields (a MySQL host alone may be 255
/// bytes), the account list stays under ~750 KB at worst.
pub const DEFAULT_ACCOUNT_DATABASES_CAP: usize = 16;

/// Per-instance results a DbSyncSession keeps in `status.results`; every
/// failure is kept before any success. 500 × (253-byte name + 1 KiB message
/// + ~80 bytes of fields) ≈ 680 KB at worst.
pub const DEFAULT_SESSION_RESULTS_CAP: usize = 500;

/// The list caps one status write applies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ListCaps {
    /// Accounts listed in `status.accounts.items` (SPEC §1.1; the rest are
    /// counted).
    pub account_items: usize,
    /// Database names listed per account.
    pub account_databases: usize,
    /// Databases listed in `status.capacity.databases`.
    pub database_items: usize,
}

impl Default for ListCaps {
    fn default() -> Self {
        ListCaps {
            account_items: DEFAULT_ACCOUNT_ITEMS_CAP,
            account_databases: DEFAULT_ACCOUNT_DATABASES_CAP,
            database_items: DEFAULT_DATABASE_ITEMS_CAP,
        }
    }
}

/// `text` if it fits in [`MAX_MESSAGE_BYTES`]; otherwise its longest prefix
/// that ends on a character boundary and leaves room for an ellipsis, with
/// the ellipsis.
pub fn message(text: &str) -> String {
    if text.len() <= MAX_MESSAGE_BYTES {
        return text.to_string();
    }
    let mut end = MAX_MESSAGE_BYTES - ELLIPSIS.len();
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}{ELLIPSIS}", &text[..end])
}

/// Keeps the first `cap` items; true when any were dropped.
pub fn truncate<T>(items: &mut Vec<T>, cap: usize) -> bool {
    let dropped = items.len() > cap;
    items.truncate(cap);
    dropped
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_messages_are_kept_whole() {
        assert_eq!(message("refused"), "refused");
        let exact = "x".repeat(MAX_MESSAGE_BYTES);
        assert_eq!(message(&exact), exact);
    }

    #[test]
    fn long_messages_are_cut_with_an_ellipsis_within_the_bound() {
        let long = "y".repeat(10 * MAX_MESSAGE_BYTES);
        let cut = message(&long);
        assert_eq!(cut.len(), MAX_MESSAGE_BYTES);
        assert!(cut.ends_with(ELLIPSIS));
        assert!(cut.starts_with("yyyy"));
    }

    #[test]
    fn multibyte_text_is_cut_on_a_character_boundary() {
        // 3-byte characters: the byte limit falls inside one of them.
        let long = "数".repeat(MAX_MESSAGE_BYTES);
        let cut = message(&long);
        assert!(cut.len() <= MAX_MESSAGE_BYTES, "{}", cut.len());
        assert!(cut.len() > MAX_MESSAGE_BYTES - 6);
        assert!(cut.trim_end_matches(ELLIPSIS).chars().all(|c| c == '数'));
        // A 4-byte character straddling the cut.
        let mixed = format!("{}{}", "a".repeat(MAX_MESSAGE_BYTES - 4), "🦀".repeat(10));
        let cut = message(&mixed);
        assert!(cut.len() <= MAX_MESSAGE_BYTES);
        assert_eq!(cut, format!("{}{ELLIPSIS}", "a".repeat(MAX_MESSAGE_BYTES - 4)));
    }

    #[test]
    fn truncate_says_whether_anything_was_dropped() {
        let mut items = vec![1, 2, 3];
        assert!(!truncate(&mut items, 3));
        assert!(truncate(&mut items, 2));
        assert_eq!(items, [1, 2]);
    }
}
