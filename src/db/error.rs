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
    /// Anything else: the code's own fault (malformed COPY data, an unknown column or
    /// table, a syntax or protocol error), schema missing, permission denied. Stop and tell
    /// the operator; no record is to blame, so none is dead-lettered.
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
            Some(code) => by_sqlstate(&code, db.constraint(), ends_session(&**db)),
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

/// Unique constraints whose violation is a race between two of the service's own
/// transactions, which a retry resolves: the ledger's primary key (period and line key),
/// met when two lanes or instances book one line sent on two partitions at once; the retry
/// finds the row the other committed. Any other unique violation is the record's (or the
/// code's) and would fail every retry alike.
const RACED_CONSTRAINTS: &[&str] = &["royalty_ledger_pkey"];

/// SQLSTATEs that say the service's own SQL or use of the protocol is wrong, whatever the
/// records hold: bisecting would dead-letter every line of the batch and move the offsets
/// past them, so these stop the run loudly instead. Checked before the classes they belong
/// to (08 is otherwise an outage, 22 a record's bad value).
fn code_fault(code: &str) -> bool {
    // Class 42, syntax error or access rule violation: 42601 syntax error, 42703 undefined
    // column, 42P01 undefined table, 42883 undefined function, 42501 no privilege.
    code.starts_with("42")
        || matches!(
            code,
            // protocol_violation: a malformed message from the client.
            "08P01"
            // invalid_binary_representation, bad_copy_file_format: the binary COPY or a
            // parameter encoded wrong.
            | "22P03" | "22P04"
            // invalid_sql_statement_name, invalid_cursor_name, in_failed_sql_transaction
            // (a statement after an error without rolling back to the savepoint).
            | "26000" | "34000" | "25P02"
        )
}

/// The verdict on a SQLSTATE; `constraint`: the violated constraint's name, when any;
/// `ends_session`: PostgreSQL refused or ended the session with it (severity FATAL), as
/// when connecting.
fn by_sqlstate(code: &str, constraint: Option<&str>, ends_session: bool) -> Verdict {
    match code {
        c if code_fault(c) => Verdict::Fatal,
        // connection exceptions, serialization failure, deadlock, lock timeout,
        // admin/crash shutdown, cannot connect now, too many connections.
        c if c.starts_with("08") => Verdict::Retry,
        "40001" | "40P01" | "55P03" | "57P01" | "57P02" | "57P03" | "53300" => Verdict::Retry,
        // A concurrent lane or instance inserted the same line first.
        "23505" if constraint.is_some_and(|c| RACED_CONSTRAINTS.contains(&c)) => Verdict::Retry,
        // A session refused because the database does not accept connections now (ALTER
        // DATABASE … ALLOW_CONNECTIONS false, e.g. during maintenance): an outage to wait
        // out like a server that is down. Only at severity FATAL, i.e. when connecting; the
        // same SQLSTATE from a statement is something else.
        "55000" if ends_session => Verdict::Retry,
        // data exceptions, integrity violations (other unique violations included),
        // program limits, raised exceptions.
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
        assert_eq!(by_sqlstate("55000", None, true), Verdict::Retry);
        assert_eq!(by_sqlstate("55000", None, false), Verdict::Fatal);
        // cannot_connect_now (starting up, shutting down), admin shutdown, too many clients.
        for code in ["57P03", "57P01", "53300", "08006"] {
            assert_eq!(by_sqlstate(code, None, true), Verdict::Retry, "{code}");
        }
        // Waiting cannot fix a wrong password or a database that does not exist.
        assert_eq!(by_sqlstate("28P01", None, true), Verdict::Fatal);
        assert_eq!(by_sqlstate("3D000", None, true), Verdict::Fatal);
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
    fn only_the_lanes_race_on_the_ledger_key_is_retried_other_unique_violations_are_poison() {
        assert_eq!(
            by_sqlstate("23505", Some("royalty_ledger_pkey"), false),
            Verdict::Retry
        );
        for other in [
            Some("quarantine_dead_letter_id_key"),
            Some("catalog_versions_current"),
            None,
        ] {
            assert_eq!(
                by_sqlstate("23505", other, false),
                Verdict::Poison,
                "{other:?}"
            );
        }
        // Other integrity violations stay the record's, whatever the constraint.
        assert_eq!(
            by_sqlstate("23514", Some("royalty_ledger_pkey"), false),
            Verdict::Poison
        );
    }

    #[test]
    fn the_codes_own_faults_stop_instead_of_dead_lettering_or_retrying() {
        for code in [
            "22P04", "22P03", "42703", "42P01", "42601", "42883", "08P01", "25P02",
        ] {
            assert_eq!(by_sqlstate(code, None, false), Verdict::Fatal, "{code}");
        }
        // The neighbours of those codes keep their meaning: a record's bad value, a lost
        // connection, a trigger's refusal.
        for code in [
            "22001", "22003", "22007", "22021", "22P02", "23502", "23514", "54000", "P0001",
        ] {
            assert_eq!(by_sqlstate(code, None, false), Verdict::Poison, "{code}");
        }
        for code in ["08006", "08001", "40001", "40P01"] {
            assert_eq!(by_sqlstate(code, None, false), Verdict::Retry, "{code}");
        }
    }

    /// A database error as sqlx hands it over, with the code and constraint under test.
    #[derive(Debug)]
    struct Refusal {
        code: &'static str,
        constraint: Option<&'static str>,
    }

    impl std::fmt::Display for Refusal {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "refused ({})", self.code)
        }
    }

    impl std::error::Error for Refusal {}

    impl sqlx::error::DatabaseError for Refusal {
        fn message(&self) -> &str {
            "refused"
        }
        fn code(&self) -> Option<std::borrow::Cow<'_, str>> {
            Some(self.code.into())
        }
        fn constraint(&self) -> Option<&str> {
            self.constraint
        }
        fn as_error(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
            self
        }
        fn as_error_mut(&mut self) -> &mut (dyn std::error::Error + Send + Sync + 'static) {
            self
        }
        fn into_error(self: Box<Self>) -> Box<dyn std::error::Error + Send + Sync + 'static> {
            self
        }
        fn kind(&self) -> sqlx::error::ErrorKind {
            sqlx::error::ErrorKind::Other
        }
    }

    #[test]
    fn classify_reads_the_constraint_name_from_the_error() {
        let refused = |code, constraint| {
            classify(sqlx::Error::Database(Box::new(Refusal {
                code,
                constraint,
            })))
        };
        assert!(matches!(
            refused("23505", Some("royalty_ledger_pkey")),
            DbFailure::Retryable(_)
        ));
        assert!(matches!(
            refused("23505", Some("quarantine_dead_letter_id_key")),
            DbFailure::Poison(_)
        ));
        assert!(matches!(refused("22P04", None), DbFailure::Fatal(_)));
    }

    #[test]
    fn decode_errors_are_fatal() {
        let err = sqlx::Error::ColumnNotFound("x".into());
        assert!(matches!(classify(err), DbFailure::Fatal(_)));
    }
}
