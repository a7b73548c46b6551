//! Poison isolation: a part of the batch (ledger lines, catalog entries, report summaries,
//! dead letters) is written under a savepoint; when PostgreSQL refuses the data (a
//! [`DbFailure::Poison`], never an outage), the part is rolled back and split in halves,
//! order kept, until each refused item is alone. What PostgreSQL accepted stays written;
//! each refused item comes back with PostgreSQL's reason, for the caller to dead-letter.
//! The cost is one savepoint when nothing is refused.

use futures::future::BoxFuture;
use sqlx::PgConnection;

use crate::db::{DbFailure, describe};

/// What writing some items did, summed over the parts a refusal splits them into.
pub trait Effects: Default {
    /// Adds the effects of another part.
    fn merge(&mut self, other: Self);
}

impl Effects for () {
    fn merge(&mut self, _other: Self) {}
}

/// Writes some items in the caller's transaction; one call per attempt.
pub type WriteFn<'f, T, R> = dyn for<'c> Fn(&'c mut PgConnection, &'c [T]) -> BoxFuture<'c, Result<R, DbFailure>>
    + Send
    + Sync
    + 'f;

/// The effects of the accepted items and each refused item with the reason.
pub type Isolated<'a, T, R> = (R, Vec<(&'a T, String)>);

/// Writes `items` with `write`, isolating the ones PostgreSQL refuses (see the module
/// docs). Any other failure (connection lost, serialization) fails the whole call.
pub fn write_isolating<'c, 'a: 'c, T: Sync, R: Effects + Send + 'c>(
    conn: &'c mut PgConnection,
    items: &'a [T],
    write: &'c WriteFn<'c, T, R>,
) -> BoxFuture<'c, Result<Isolated<'a, T, R>, DbFailure>> {
    Box::pin(async move {
        if items.is_empty() {
            return Ok((R::default(), Vec::new()));
        }
        sqlx::raw_sql("SAVEPOINT isolate")
            .execute(&mut *conn)
            .await?;
        match write(&mut *conn, items).await {
            Ok(done) => {
                sqlx::raw_sql("RELEASE SAVEPOINT isolate")
                    .execute(&mut *conn)
                    .await?;
                Ok((done, Vec::new()))
            }
            Err(DbFailure::Poison(error)) => {
                sqlx::raw_sql("ROLLBACK TO SAVEPOINT isolate; RELEASE SAVEPOINT isolate")
                    .execute(&mut *conn)
                    .await?;
                if let [item] = items {
                    return Ok((R::default(), vec![(item, describe(&error))]));
                }
                let (left, right) = items.split_at(items.len() / 2);
                let (mut done, mut refused) = write_isolating(&mut *conn, left, write).await?;
                let (more, more_refused) = write_isolating(&mut *conn, right, write).await?;
                done.merge(more);
                refused.extend(more_refused);
                Ok((done, refused))
            }
            Err(other) => Err(other),
        }
    })
}
