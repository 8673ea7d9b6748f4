//! The disk thread: fsyncs and metadata writes run here, off the thread that
//! serves requests, so a slow disk delays acknowledgements that wait for it
//! (`--sync always`) but never a read or an in-memory step.
//!
//! Invariant: jobs run one at a time, in the order they were given; a job's
//! answer arrives through the future [`DiskThread::run`] returned (`None` only
//! if the thread is gone).

use std::sync::mpsc;
use tokio::sync::oneshot;

type Job = Box<dyn FnOnce() + Send>;

/// A handle to the disk thread; the thread ends when every handle is dropped.
#[derive(Clone, Debug)]
pub struct DiskThread {
    jobs: mpsc::Sender<Job>,
}

impl DiskThread {
    /// Starts the thread.
    pub fn start() -> std::io::Result<DiskThread> {
        let (jobs, queue) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("swimkv-disk".into())
            .spawn(move || {
                while let Ok(job) = queue.recv() {
                    job();
                }
            })?;
        Ok(DiskThread { jobs })
    }

    /// Runs `job` on the disk thread; resolves to its result.
    pub fn run<R: Send + 'static>(
        &self,
        job: impl FnOnce() -> R + Send + 'static,
    ) -> impl std::future::Future<Output = Option<R>> {
        let (tx, rx) = oneshot::channel();
        let sent = self
            .jobs
            .send(Box::new(move || {
                let _ = tx.send(job());
            }))
            .is_ok();
        async move {
            if sent {
                rx.await.ok()
            } else {
                None
            }
        }
    }
}
