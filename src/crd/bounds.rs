//! Bounds on what dbfleet writes into status.
//!
//! Users grow fleets and sessions, and database servers grow database lists,
//! account lists and error messages, without limit; one Kubernetes object
//! must stay well below the API server's 1.5 MiB limit, and an Event note
//! below 1 KiB. The caps on messages, session results and an account's
//! database list are here, sized by the arithmetic in their comments; the
//! DbInventory's byte budgets are `observe::InventoryLimits`.

/// Longest message written into status (condition messages, the connection
/// message, session results) or an Event note, in bytes: long enough for
/// any driver error with its context, and exactly the limit the API server
/// puts on an Event's note.
pub const MAX_MESSAGE_BYTES: usize = 1024;

/// Marks a message that was cut.
const ELLIPSIS: &str = "…";

/// Database names kept per account in a DbInventory
/// (`spec.accounts.items[].databases`, whose schema allows no more); the
/// entry says `databasesTruncated` when the account reaches more. Such an
/// account is rare, and 1,000 names of up to 64 bytes stay well inside the
/// accounts section's byte budget.
pub const MAX_ACCOUNT_DATABASES: usize = 1000;

/// Roles kept per account in a DbInventory (`roles`, whose schema allows
/// no more); the entry says `rolesTruncated` when it is a member of more.
pub const MAX_ACCOUNT_ROLES: usize = 256;

/// Privilege names kept per account `ON *.*` and per account and database.
/// An engine has fewer kinds than this (MySQL 8.4 has about 100 global ones
/// counting dynamic privileges, about 20 per schema), so the cut only
/// guards the schema against a server that lies.
pub const MAX_GLOBAL_PRIVILEGES: usize = 256;
pub const MAX_DATABASE_PRIVILEGES: usize = 64;

/// Per-instance results a DbSyncSession keeps in `status.results`; every
/// failure is kept before any success. 500 × (253-byte name + 1 KiB message
/// + ~80 bytes of fields) ≈ 680 KB at worst.
pub const DEFAULT_SESSION_RESULTS_CAP: usize = 500;

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
}
