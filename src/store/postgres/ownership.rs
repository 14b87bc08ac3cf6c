//! One cache per table: the advisory lock and the owner epoch, taken at open
//! and checked after every reconnect; a store that lost its table is fenced.
//!
//! A second cache on the same table would version keys independently and
//! the guard would drop its updates. The lock keeps a second opener out
//! while this session lives; the epoch in `writebehind_owners` tells a
//! reconnecting store whether another cache opened the table in between.

use postgres::Client;

use super::error::store_error;
use super::schema::Table;
use crate::error::{StoreError, StoreErrorKind};

/// High 32 bits of the advisory lock key (the low 32 hash the table's
/// qualified name): "wb" in ASCII, so the locks are recognisable in
/// `pg_locks`.
const LOCK_CLASS: i64 = 0x7762;

/// This store's claim on its table.
#[derive(Debug, Default)]
pub(super) struct Ownership {
    /// The epoch this store took at open.
    epoch: Option<i64>,
    /// Set once another cache took the table: every write fails with it.
    fenced: Option<String>,
}

impl Ownership {
    /// Why every write is refused, once the store is fenced.
    pub(super) fn fenced(&self) -> Option<&str> {
        self.fenced.as_deref()
    }

    /// Claims `table` on `client`'s session: the advisory lock, then the
    /// owner epoch (taken at the first claim; at a later one, checked to be
    /// still this store's, else the store is fenced). `name` is the table
    /// as errors call it.
    pub(super) fn claim(
        &mut self,
        client: &mut Client,
        table: &Table,
        name: &str,
    ) -> Result<(), StoreError> {
        take_lock(client, table, name)?;
        let Some(mine) = self.epoch else {
            self.epoch = Some(take_epoch(client, table, name)?);
            return Ok(());
        };
        match lost_to(client, table, mine, name)? {
            None => Ok(()),
            Some(why) => {
                self.fenced = Some(why.clone());
                // The caller drops the client: the session and its lock end.
                Err(StoreError::new(StoreErrorKind::Other, why))
            }
        }
    }
}

/// Takes the table's advisory lock for the session, or says who holds it.
/// Keyed on the qualified name, so a table dropped and recreated under a
/// running cache is still its: no second cache gets in.
fn take_lock(client: &mut Client, table: &Table, name: &str) -> Result<(), StoreError> {
    let qualified = table.qualified();
    let (locked, lock_key): (bool, i64) = client
        .query_one(
            "SELECT pg_try_advisory_lock(k), k \
             FROM (SELECT ($1::bigint << 32) | (hashtext($2)::bigint & 4294967295) AS k) s",
            &[&LOCK_CLASS, &qualified],
        )
        .map(|r| (r.get(0), r.get(1)))
        .map_err(|e| store_error(name, "taking the table's advisory lock", &e))?;
    if !locked {
        return Err(StoreError::new(
            StoreErrorKind::Other,
            format!(
                "table {qualified} is in use by another writebehind session (advisory lock {lock_key} is held)"
            ),
        ));
    }
    Ok(())
}

/// Opening: bumps the table's owner epoch and returns the new one.
fn take_epoch(client: &mut Client, table: &Table, name: &str) -> Result<i64, StoreError> {
    let row = client
        .query_one(
            &format!(
                "INSERT INTO {o} AS o (tbl, epoch) VALUES ($1, 1) \
                 ON CONFLICT (tbl) DO UPDATE SET epoch = o.epoch + 1 RETURNING epoch",
                o = table.owners()
            ),
            &[&table.qualified()],
        )
        .map_err(|e| store_error(name, "taking the table's owner epoch", &e))?;
    Ok(row.get(0))
}

/// Reconnecting: is it the same table, and still ours (epoch `mine`)?
/// `Some(why)` if not.
fn lost_to(
    client: &mut Client,
    table: &Table,
    mine: i64,
    name: &str,
) -> Result<Option<String>, StoreError> {
    let qualified = table.qualified();
    let oid: Option<i64> = client
        .query_one("SELECT to_regclass($1)::oid::bigint", &[&table.quoted()])
        .map_err(|e| store_error(name, "looking the table up", &e))?
        .get(0);
    if oid != Some(table.oid) {
        return Ok(Some(format!(
            "table {qualified} is not the table this cache opened (dropped, recreated or replaced while it was disconnected); \
             this cache no longer writes to it"
        )));
    }
    let epoch: Option<i64> = client
        .query_opt(
            &format!("SELECT epoch FROM {} WHERE tbl = $1", table.owners()),
            &[&qualified],
        )
        .map_err(|e| store_error(name, "reading the table's owner epoch", &e))?
        .map(|r| r.get(0));
    if epoch != Some(mine) {
        return Ok(Some(format!(
            "table {qualified} was opened by another cache while this one was disconnected (owner epoch {mine} -> {}); \
             this cache no longer writes to it: its unsynced updates are not in the table",
            epoch.map_or("none".into(), |e| e.to_string())
        )));
    }
    Ok(None)
}
