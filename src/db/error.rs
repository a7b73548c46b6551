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
        sqlx::Error::Tls(tls) if tls_cut_short(tls.as_ref()) => return DbFailure::Retryable(error),
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

/// Whether a TLS failure is the connection being cut mid-handshake (a server shutting down
/// or starting up closes it), not a refusal (an untrusted certificate, a wrong host name).
/// Found by the chaos suite: a PostgreSQL restart during a reconnect made OpenSSL report
/// "unexpected EOF", and the run stopped as if the certificate were wrong.
fn tls_cut_short(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(error);
    while let Some(err) = cause {
        // OpenSSL's words for a peer that closed without a TLS alert; an I/O error (reset,
        // broken pipe) says the same by its type.
        if err.is::<std::io::Error>() || err.to_string().contains("unexpected EOF") {
            return true;
        }
        cause = err.source();
    }
    false
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
    fn a_tls_handshake_cut_short_is_retryable_and_a_refused_certificate_is_fatal() {
        let eof = sqlx::Error::Tls("unexpected EOF".into());
        assert!(matches!(classify(eof), DbFailure::Retryable(_)));
        let reset = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset");
        assert!(matches!(
            classify(sqlx::Error::Tls(Box::new(reset))),
            DbFailure::Retryable(_)
        ));
        let refused = sqlx::Error::Tls(
            "error:0A000086:SSL routines:tls_post_process_server_certificate:certificate \
             verify failed"
                .into(),
        );
        assert!(matches!(classify(refused), DbFailure::Fatal(_)));
    }

    #[test]
    fn decode_errors_are_fatal() {
        let err = sqlx::Error::ColumnNotFound("x".into());
        assert!(matches!(classify(err), DbFailure::Fatal(_)));
    }
}
