//! PostgreSQL's errors as the cache's: the text with the server's detail,
//! and the kind that decides whether the store reconnects.

use postgres::error::SqlState;

use crate::error::{Error, StoreError, StoreErrorKind};

/// An error of an operation `what` on table `name`, as `Error::Database`
/// (at open and in recovery).
pub(super) fn db_error(name: &str, what: &str, e: &postgres::Error) -> Error {
    Error::Database(format!("{name} ({what}): {}", describe(e)))
}

/// An error of an operation `what` on table `name`'s session, classified
/// (while the cache runs).
pub(super) fn store_error(name: &str, what: &str, e: &postgres::Error) -> StoreError {
    StoreError::new(classify(e), format!("{name} ({what}): {}", describe(e)))
}

/// The error's text with the server's detail, when there is one.
pub(super) fn describe(e: &postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!(
            "{}: {} (SQLSTATE {})",
            db.severity(),
            db.message(),
            db.code().code()
        ),
        None => e.to_string(),
    }
}

/// Which kind of failure `e` is, for stats and for deciding to reconnect.
pub(super) fn classify(e: &postgres::Error) -> StoreErrorKind {
    let Some(code) = e.code() else {
        // No SQLSTATE: an I/O error or a closed connection.
        return StoreErrorKind::Connection;
    };
    if *code == SqlState::QUERY_CANCELED || *code == SqlState::LOCK_NOT_AVAILABLE {
        StoreErrorKind::Timeout
    } else if *code == SqlState::DISK_FULL {
        StoreErrorKind::NoSpace
    } else if code.code().starts_with("08") || code.code().starts_with("57P") {
        // Class 08: connection exceptions; 57P01-57P05: admin/crash
        // shutdown, cannot connect now, idle session timeout.
        StoreErrorKind::Connection
    } else {
        StoreErrorKind::Write
    }
}
