//! Stores for testing a service against a store that fails or is slow:
//! [`Faulty`] fails and delays batches on a script the test holds
//! ([`FaultPlan`]); [`Throttled`] caps the batch rate, as a slow database
//! would. Both wrap any [`Store`](crate::Store), the file store included.
//! [`SyncFaults`] makes a file store's fdatasyncs fail, as a failing disk
//! does ([`FileStore::sync_faults`](crate::FileStore::sync_faults)).

pub use crate::store::{FaultPlan, Faulty, SyncFaults, Throttled};
