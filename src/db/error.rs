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
    match verdict(&error) {
        Verdict::Retry => DbFailure::Retryable(error),
        Verdict::Poison => DbFailure::Poison(error),
        Verdict::Fatal => DbFailure::Fatal(error),
    }
}

/// What a database error means, without taking it: the sorting of [`classify`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Try again later (an outage, a conflict).
    Retry,
    /// A record's data was refused: isolate it.
    Poison,
    /// Stop and tell the operator.
    Fatal,
}

/// The [`Verdict`] on a sqlx error, by its kind and SQLSTATE.
pub fn verdict(error: &sqlx::Error) -> Verdict {
    match error {
        sqlx::Error::Database(db) => match db.code() {
            Some(code) => by_sqlstate(&code, ends_session(&**db)),
            None => Verdict::Fatal,
        },
        sqlx::Error::Io(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::Protocol(_) => Verdict::Retry,
        sqlx::Error::Tls(tls) if tls_cut_short(tls.as_ref()) => Verdict::Retry,
        _ => Verdict::Fatal,
    }
}

/// The verdict on a SQLSTATE; `ends_session`: PostgreSQL refused or ended the session with
/// it (severity FATAL), as when connecting.
fn by_sqlstate(code: &str, ends_session: bool) -> Verdict {
    match code {
        // connection exceptions, serialization failure, deadlock, lock timeout,
        // admin/crash shutdown, cannot connect now, too many connections,
        // unique violation (a concurrent instance inserted the same key first).
        c if c.starts_with("08") => Verdict::Retry,
        "40001" | "40P01" | "55P03" | "57P01" | "57P02" | "57P03" | "53300" | "23505" => {
            Verdict::Retry
        }
        // A session refused because the database does not accept connections now (ALTER
        // DATABASE … ALLOW_CONNECTIONS false, e.g. during maintenance): an outage to wait
        // out like a server that is down. Only at severity FATAL, i.e. when connecting; the
        // same SQLSTATE from a statement is something else.
        "55000" if ends_session => Verdict::Retry,
        // data exceptions, integrity violations, program limits, raised exceptions.
        c if c.starts_with("22") || c.starts_with("23") || c.starts_with("54") => Verdict::Poison,
        "P0001" => Verdict::Poison,
        _ => Verdict::Fatal,
    }
}

/// Whether `error` (or what caused it) is a database error worth waiting out: false for
/// anything that is not a database error.
pub fn is_retryable(error: &anyhow::Error) -> bool {
    error
        .chain()
        .find_map(|cause| cause.downcast_ref::<sqlx::Error>())
        .is_some_and(|sqlx| verdict(sqlx) == Verdict::Retry)
}

/// Whether PostgreSQL ended (or refused to start) the session with this error: severity
/// FATAL or PANIC, never a statement's own error.
fn ends_session(error: &dyn sqlx::error::DatabaseError) -> bool {
    error
        .try_downcast_ref::<sqlx::postgres::PgDatabaseError>()
        .is_some_and(|pg| {
            matches!(
                pg.severity(),
                sqlx::postgres::PgSeverity::Fatal | sqlx::postgres::PgSeverity::Panic
            )
        })
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
    fn a_database_that_refuses_sessions_is_waited_out_but_the_same_code_from_a_statement_is_not() {
        // "database … is not currently accepting connections" comes at severity FATAL.
        assert_eq!(by_sqlstate("55000", true), Verdict::Retry);
        assert_eq!(by_sqlstate("55000", false), Verdict::Fatal);
        // cannot_connect_now (starting up, shutting down), admin shutdown, too many clients.
        for code in ["57P03", "57P01", "53300", "08006"] {
            assert_eq!(by_sqlstate(code, true), Verdict::Retry, "{code}");
        }
        // Waiting cannot fix a wrong password or a database that does not exist.
        assert_eq!(by_sqlstate("28P01", true), Verdict::Fatal);
        assert_eq!(by_sqlstate("3D000", true), Verdict::Fatal);
    }

    #[test]
    fn a_retryable_cause_under_context_is_found() {
        let err = anyhow::Error::new(sqlx::Error::PoolTimedOut).context("failed to connect");
        assert!(is_retryable(&err));
        let err = anyhow::Error::new(sqlx::Error::ColumnNotFound("x".into())).context("x");
        assert!(!is_retryable(&err));
        assert!(!is_retryable(&anyhow::anyhow!("not a database error")));
    }

    #[test]
    fn decode_errors_are_fatal() {
        let err = sqlx::Error::ColumnNotFound("x".into());
        assert!(matches!(classify(err), DbFailure::Fatal(_)));
    }
}
