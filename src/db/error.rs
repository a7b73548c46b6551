//! The one place that decides what a database error means for the pipeline: retry the
//! batch later, isolate a poison record, or stop.

use std::fmt;

/// What a failed database operation means.
#[derive(Debug)]
pub enum DbFailure {
    /// The database is unreachable, restarting, or a concurrent transaction conflicted:
    /// roll back, back off, try the same batch again.
    Retryable(sqlx::Error),
    /// The data of some record made PostgreSQL refuse the statement (bad value, failed
    /// constraint, trigger): isolate the record and dead-letter it.
    Poison(sqlx::Error),
    /// Anything else (schema missing, permission denied): stop and tell the operator.
    Fatal(sqlx::Error),
}

impl DbFailure {
    /// The underlying error.
    pub fn error(&self) -> &sqlx::Error {
        match self {
            DbFailure::Retryable(e) | DbFailure::Poison(e) | DbFailure::Fatal(e) => e,
        }
    }
}

impl fmt::Display for DbFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self {
            DbFailure::Retryable(_) => "retryable",
            DbFailure::Poison(_) => "record rejected",
            DbFailure::Fatal(_) => "fatal",
        };
        write!(f, "{kind} database error: {}", describe(self.error()))
    }
}

impl std::error::Error for DbFailure {}

impl From<sqlx::Error> for DbFailure {
    fn from(error: sqlx::Error) -> Self {
        classify(error)
    }
}

/// Sorts a sqlx error into retryable, poison or fatal by its kind and SQLSTATE.
pub fn classify(error: sqlx::Error) -> DbFailure {
    let code = match &error {
        sqlx::Error::Database(db) => db.code().map(|c| c.into_owned()),
        sqlx::Error::Io(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::Protocol(_) => return DbFailure::Retryable(error),
        _ => return DbFailure::Fatal(error),
    };
    let Some(code) = code else {
        return DbFailure::Fatal(error);
    };
    match code.as_str() {
        // connection exceptions, serialization failure, deadlock, lock timeout,
        // admin/crash shutdown, cannot connect now, too many connections,
        // unique violation (a concurrent instance inserted the same key first).
        c if c.starts_with("08") => DbFailure::Retryable(error),
        "40001" | "40P01" | "55P03" | "57P01" | "57P02" | "57P03" | "53300" | "23505" => {
            DbFailure::Retryable(error)
        }
        // data exceptions, integrity violations, program limits, raised exceptions.
        c if c.starts_with("22") || c.starts_with("23") || c.starts_with("54") => {
            DbFailure::Poison(error)
        }
        "P0001" => DbFailure::Poison(error),
        _ => DbFailure::Fatal(error),
    }
}

/// A one-line description of a sqlx error with its SQLSTATE when it has one.
pub fn describe(error: &sqlx::Error) -> String {
    match error {
        sqlx::Error::Database(db) => match db.code() {
            Some(code) => format!("{} (SQLSTATE {code})", db.message()),
            None => db.message().to_string(),
        },
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_errors_are_retryable() {
        let err = sqlx::Error::Io(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "reset",
        ));
        assert!(matches!(classify(err), DbFailure::Retryable(_)));
        assert!(matches!(
            classify(sqlx::Error::PoolTimedOut),
            DbFailure::Retryable(_)
        ));
    }

    #[test]
    fn decode_errors_are_fatal() {
        let err = sqlx::Error::ColumnNotFound("x".into());
        assert!(matches!(classify(err), DbFailure::Fatal(_)));
    }
}
