//! The session batches are written on: how to connect, what the session is
//! set up with, and reconnecting after a failure.

use std::time::Duration;

use postgres::{Client, NoTls, Statement};

use super::config::PgConfig;
use super::error::store_error;
use super::PgStore;
use crate::error::{Error, StoreError, StoreErrorKind};

/// An open session: the client and the upsert prepared on it.
pub(super) struct Conn {
    pub(super) client: Client,
    pub(super) upsert: Statement,
}

/// `cfg.url` parsed, with the store's connect timeout, application name and
/// keepalives where the URL does not set its own.
pub(super) fn client_config(cfg: &PgConfig) -> Result<postgres::Config, Error> {
    let mut pg: postgres::Config = cfg.url.parse().map_err(|e| {
        Error::Config(format!(
            "postgres.url is not a connection string libpq would take: {e}"
        ))
    })?;
    pg.connect_timeout(cfg.connect_timeout);
    if pg.get_application_name().is_none() {
        pg.application_name("writebehind");
    }
    // A peer that vanished without closing the TCP connection (a crashed
    // host, a dropped route) would otherwise hold the store thread for
    // the kernel's 2-hour keepalive default. Kept if the URL sets it.
    if pg.get_keepalives_idle() == Duration::from_secs(2 * 60 * 60) {
        pg.keepalives_idle(Duration::from_secs(10));
        pg.keepalives_interval(Duration::from_secs(2));
        pg.keepalives_retries(3);
    }
    Ok(pg)
}

impl PgStore {
    /// Opens the session batches are written on: the table's claim
    /// (advisory lock and owner epoch, taken at open, checked after), the
    /// statement timeout, the prepared upsert.
    pub(super) fn open_conn(&mut self) -> Result<Conn, StoreError> {
        let name = &self.cfg.table;
        let mut client = self
            .pg
            .connect(NoTls)
            .map_err(|e| store_error(name, "connecting", &e))?;
        self.ownership.claim(&mut client, &self.table, name)?;
        // The server's side of the keepalives (ignored on a Unix socket):
        // a client that vanished must not hold the lock for hours.
        client
            .batch_execute(&format!(
                "SET statement_timeout = {}; SET tcp_keepalives_idle = 10; \
                 SET tcp_keepalives_interval = 2; SET tcp_keepalives_count = 3",
                self.cfg.statement_timeout.as_millis()
            ))
            .map_err(|e| store_error(name, "setting the session's timeouts", &e))?;
        let upsert = client
            .prepare(&self.upsert_sql)
            .map_err(|e| store_error(name, "preparing the upsert", &e))?;
        Ok(Conn { client, upsert })
    }

    /// The session, reopened if a failure dropped it; refused once fenced.
    pub(super) fn conn(&mut self) -> Result<&mut Conn, StoreError> {
        if let Some(why) = self.ownership.fenced() {
            return Err(StoreError::new(StoreErrorKind::Other, why));
        }
        if self.conn.is_none() {
            let conn = self.open_conn()?;
            self.counters.reconnected();
            self.conn = Some(conn);
        }
        self.conn
            .as_mut()
            .ok_or_else(|| StoreError::new(StoreErrorKind::Connection, "not connected"))
    }

    /// After a failed statement of kind `kind`: drops the session, so the
    /// retry reconnects, unless it is known good (a statement timeout leaves
    /// it usable).
    pub(super) fn drop_conn_unless_usable(&mut self, kind: StoreErrorKind) {
        let keep = kind == StoreErrorKind::Timeout
            && self.conn.as_ref().is_some_and(|c| !c.client.is_closed());
        if !keep {
            self.conn = None;
        }
    }
}
