//! Stores for testing a service against a store that fails or is slow:
//! [`Faulty`] fails and delays batches on a script the test holds
//! ([`FaultPlan`]); [`Throttled`] caps the batch rate, as a slow database
//! would. Both wrap any [`Store`](crate::Store), the file store included.
//! [`SyncFaults`] makes a file store's fdatasyncs fail, as a failing disk
//! does ([`FileStore::sync_faults`](crate::FileStore::sync_faults)).

pub use crate::store::{FaultPlan, Faulty, SyncFaults, Throttled};

/// Runs `future` to completion on the calling thread, parking it between
/// polls. For tests and examples of the `_async` methods without a runtime;
/// a service uses its own (tokio, smol, ...).
pub fn block_on<F: std::future::Future>(future: F) -> F::Output {
    use std::sync::Arc;
    use std::task::{Context, Poll, Wake, Waker};

    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut future = std::pin::pin!(future);
    loop {
        match future.as_mut().poll(&mut cx) {
            Poll::Ready(output) => return output,
            // A wake-up before the park makes the park return at once.
            Poll::Pending => std::thread::park(),
        }
    }
}
