//! One connection held across the transactions of a bulk write (an import's chunks).
//!
//! SQLite writes every page a transaction changed to the log when it commits, and an import
//! chunk into a large organization changes index pages all over the e-mail, phone and name
//! indexes. A connection that keeps those pages cached from one chunk to the next reads them
//! from memory; a pooled connection with the usual cache reads most of them again. The
//! million-row import's commit took 47–54 s with the larger cache kept between chunks against
//! 58–59 s with it widened per transaction (BENCHMARKS.md). The cache is widened only while the
//! writer holds the connection, so pooled connections never keep hundreds of MiB.

use crate::pool::{Access, Db, Rls};
use crate::tx::{Leased, Tenant, TenantTx};

/// Runs a bulk write's transactions one after another on one connection with a widened page
/// cache (SQLite; on PostgreSQL the connection is simply kept). Dropping it sets the cache back
/// and returns the connection to the pool.
pub struct BulkWriter {
    db: Db,
    held: Option<Leased>,
}

impl Db {
    /// A writer for a bulk write's transactions; it takes its connection at the first one.
    pub fn bulk_writer(&self) -> BulkWriter {
        BulkWriter {
            db: self.clone(),
            held: None,
        }
    }
}

impl BulkWriter {
    /// Opens a write transaction for `tenant` on the held connection. A transaction dropped
    /// without [`BulkWriter::commit`] rolls back and returns the connection; the next one then
    /// takes and widens another.
    pub async fn tenant(&mut self, tenant: &Tenant) -> Result<TenantTx, sqlx::Error> {
        let leased = match self.held.take() {
            Some(leased) => leased,
            None => {
                let mut leased = self.db.lease().await?;
                leased.widen_page_cache().await?;
                leased
            }
        };
        let tx = Db::begin_on(leased, Access::Write, Rls::tenant(tenant)).await?;
        Ok(TenantTx::new(tx, tenant.clone()))
    }

    /// Commits a transaction opened by [`BulkWriter::tenant`] and keeps its connection for the
    /// next one.
    pub async fn commit(&mut self, tx: TenantTx) -> Result<(), sqlx::Error> {
        self.held = Some(tx.into_tx().commit_keeping().await?);
        Ok(())
    }
}
