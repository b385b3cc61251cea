//! The batcher: one task between the ingest queue and the store.
//!
//! Rows are inserted when the batch reaches its row or byte limit or when its oldest
//! row reaches the age limit. Up to `BatchLimits::inflight` inserts run at once: one
//! insert keeps one ClickHouse core busy, and the next batch fills meanwhile. When all
//! are busy the batcher stops reading the queue, which fills up behind it (TCP senders
//! then wait, UDP packets are dropped and counted). A failed insert is retried with
//! capped, jittered backoff; data errors are never retried. The task ends when every
//! sender is gone, after a last flush and once every insert in flight has ended.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio::time::{sleep, sleep_until, Instant};

use crate::config::BatchLimits;
use crate::decode::MessageRow;
use crate::metrics::{DropReason, Metrics};
use crate::shutdown::Shutdown;
use crate::store::{InsertOutcome, MessageSink};

/// First retry delay.
const BACKOFF_START: Duration = Duration::from_millis(100);
/// Longest retry delay.
const BACKOFF_CAP: Duration = Duration::from_secs(5);
/// Attempts left for a batch once shutdown has begun: exit promptly rather than hang.
const SHUTDOWN_ATTEMPTS: u32 = 3;

/// The queue between the listeners and the batcher: bounded in rows, carrying rows in
/// chunks (one TCP read's worth, or one datagram), so its cost is per chunk, not per row.
pub fn queue(capacity_rows: usize) -> (QueueTx, QueueRx) {
    let capacity = capacity_rows.clamp(1, Semaphore::MAX_PERMITS);
    let (tx, rx) = mpsc::unbounded_channel();
    (QueueTx { tx, slots: Arc::new(Semaphore::new(capacity)), capacity }, QueueRx { rx })
}

/// Rows and the queue slots they hold until the batcher takes them.
struct Chunk {
    rows: Vec<MessageRow>,
    _slots: OwnedSemaphorePermit,
}

/// The listeners' end of [`queue`].
#[derive(Clone)]
pub struct QueueTx {
    tx: mpsc::UnboundedSender<Chunk>,
    slots: Arc<Semaphore>,
    capacity: usize,
}

impl QueueTx {
    /// Queues `rows`, waiting for room (a chunk larger than the whole queue waits for
    /// an empty queue). `Err` when the batcher is gone.
    pub async fn send(&self, rows: Vec<MessageRow>) -> Result<(), ()> {
        let n = rows.len().min(self.capacity) as u32;
        let slots = self.slots.clone().acquire_many_owned(n).await.map_err(|_| ())?;
        self.tx.send(Chunk { rows, _slots: slots }).map_err(|_| ())
    }

    /// Queues one row if there is room right now; `false` when it was not queued
    /// (queue full, or the batcher gone).
    pub fn try_send(&self, row: MessageRow) -> bool {
        match self.slots.clone().try_acquire_owned() {
            Ok(slots) => self.tx.send(Chunk { rows: vec![row], _slots: slots }).is_ok(),
            Err(_) => false,
        }
    }
}

/// The batcher's end of [`queue`].
pub struct QueueRx {
    rx: mpsc::UnboundedReceiver<Chunk>,
}

impl QueueRx {
    /// The next chunk of rows (their slots are free again); `None` once every sender is
    /// gone and the queue is empty.
    pub async fn recv(&mut self) -> Option<Vec<MessageRow>> {
        self.rx.recv().await.map(|c| c.rows)
    }
}

/// Batches rows from `rx` into `sink`.
pub struct Batcher<S> {
    delivery: Delivery<S>,
    limits: BatchLimits,
}

/// What an insert task needs (cheap to clone).
struct Delivery<S> {
    sink: Arc<S>,
    metrics: Arc<Metrics>,
    shutdown: Shutdown,
}

impl<S> Clone for Delivery<S> {
    fn clone(&self) -> Self {
        Self { sink: self.sink.clone(), metrics: self.metrics.clone(), shutdown: self.shutdown.clone() }
    }
}

impl<S: MessageSink> Batcher<S> {
    /// A batcher writing to `sink`.
    pub fn new(sink: Arc<S>, limits: BatchLimits, metrics: Arc<Metrics>, shutdown: Shutdown) -> Self {
        Self { delivery: Delivery { sink, metrics, shutdown }, limits }
    }

    /// Runs until `rx` is closed and drained and every insert has ended.
    pub async fn run(self, mut rx: QueueRx) {
        let permits = Arc::new(Semaphore::new(self.limits.inflight.max(1)));
        let mut inserts = JoinSet::new();
        let mut batch: Vec<MessageRow> = Vec::new();
        let mut bytes = 0usize;
        let mut deadline = Instant::now();
        loop {
            let rows = if batch.is_empty() {
                rx.recv().await
            } else {
                tokio::select! {
                    rows = rx.recv() => rows,
                    () = sleep_until(deadline) => {
                        self.flush(&mut batch, &mut bytes, &permits, &mut inserts).await;
                        continue;
                    }
                }
            };
            let Some(rows) = rows else { break };
            for row in rows {
                if batch.is_empty() {
                    deadline = Instant::now() + self.limits.max_age;
                }
                bytes += row.approx_bytes();
                batch.push(row);
                if batch.len() >= self.limits.max_rows || bytes >= self.limits.max_bytes {
                    self.flush(&mut batch, &mut bytes, &permits, &mut inserts).await;
                }
            }
        }
        self.flush(&mut batch, &mut bytes, &permits, &mut inserts).await;
        while inserts.join_next().await.is_some() {}
    }

    /// Hands the batch to an insert task, first waiting for a free insert slot.
    async fn flush(
        &self,
        batch: &mut Vec<MessageRow>,
        bytes: &mut usize,
        permits: &Arc<Semaphore>,
        inserts: &mut JoinSet<()>,
    ) {
        if batch.is_empty() {
            return;
        }
        let permit = permits.clone().acquire_owned().await.expect("the semaphore is never closed");
        while inserts.try_join_next().is_some() {}
        let rows = std::mem::replace(batch, Vec::with_capacity(batch.len()));
        *bytes = 0;
        let delivery = self.delivery.clone();
        inserts.spawn(async move {
            delivery.deliver(&rows).await;
            drop(permit);
        });
    }
}

impl<S: MessageSink> Delivery<S> {
    /// Inserts one batch, retrying transient failures.
    async fn deliver(&self, batch: &[MessageRow]) {
        let n = batch.len() as u64;
        let mut delay = BACKOFF_START;
        let mut shutdown_attempts = 0;
        loop {
            match self.sink.insert(batch).await {
                InsertOutcome::Ok => {
                    self.metrics.stored.fetch_add(n, Ordering::Relaxed);
                    self.metrics.batches.fetch_add(1, Ordering::Relaxed);
                    return;
                }
                InsertOutcome::GiveUp(reason) => {
                    self.metrics.insert_errors.fetch_add(1, Ordering::Relaxed);
                    self.metrics.drop_n(DropReason::InsertRejected, n);
                    tracing::error!(rows = n, %reason, "ClickHouse rejected a batch; dropped (not retried)");
                    return;
                }
                InsertOutcome::Retry(reason) => {
                    self.metrics.insert_errors.fetch_add(1, Ordering::Relaxed);
                    if self.shutdown.is_triggered() {
                        shutdown_attempts += 1;
                        if shutdown_attempts >= SHUTDOWN_ATTEMPTS {
                            self.metrics.drop_n(DropReason::Shutdown, n);
                            tracing::error!(rows = n, %reason, "insert still failing at shutdown; batch dropped");
                            return;
                        }
                    }
                    tracing::warn!(rows = n, %reason, retry_in_ms = delay.as_millis() as u64, "insert failed; will retry");
                    sleep(jitter(delay)).await;
                    delay = (delay * 2).min(BACKOFF_CAP);
                }
            }
        }
    }
}

/// 50-100 % of `d`, so collectors that failed together do not retry in lockstep.
fn jitter(d: Duration) -> Duration {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |t| t.subsec_nanos());
    d / 2 + d.mul_f64(f64::from(nanos % 1000) / 2000.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// Fails the first `fail` attempts with `outcome`, then records batch sizes.
    struct FakeSink {
        fail: Mutex<u32>,
        outcome: InsertOutcome,
        batches: Mutex<Vec<usize>>,
    }

    impl MessageSink for FakeSink {
        async fn insert(&self, rows: &[MessageRow]) -> InsertOutcome {
            let mut fail = self.fail.lock().unwrap();
            if *fail > 0 {
                *fail -= 1;
                return self.outcome.clone();
            }
            self.batches.lock().unwrap().push(rows.len());
            InsertOutcome::Ok
        }
    }

    fn sink(fail: u32, outcome: InsertOutcome) -> Arc<FakeSink> {
        Arc::new(FakeSink { fail: Mutex::new(fail), outcome, batches: Mutex::default() })
    }

    async fn run(sink: Arc<FakeSink>, rows: usize, limits: BatchLimits) -> Arc<Metrics> {
        let metrics = Arc::new(Metrics::default());
        let (_trigger, shutdown) = crate::shutdown::channel();
        let (tx, rx) = queue(rows.max(1));
        for _ in 0..rows {
            tx.send(vec![MessageRow::default()]).await.unwrap();
        }
        drop(tx);
        Batcher::new(sink, limits, metrics.clone(), shutdown).run(rx).await;
        metrics
    }

    const LIMITS: BatchLimits =
        BatchLimits { max_rows: 4, max_bytes: 1 << 20, max_age: Duration::from_secs(10), inflight: 1 };

    #[tokio::test(start_paused = true)]
    async fn flushes_by_rows_and_at_close() {
        let s = sink(0, InsertOutcome::Ok);
        let m = run(s.clone(), 10, LIMITS).await;
        assert_eq!(*s.batches.lock().unwrap(), vec![4, 4, 2]);
        assert_eq!(m.stored.load(Ordering::Relaxed), 10);
    }

    #[tokio::test(start_paused = true)]
    async fn retries_transient_errors_only() {
        let s = sink(2, InsertOutcome::Retry("down".into()));
        let m = run(s.clone(), 3, LIMITS).await;
        assert_eq!(*s.batches.lock().unwrap(), vec![3]);
        assert_eq!(m.insert_errors.load(Ordering::Relaxed), 2);

        let s = sink(1, InsertOutcome::GiveUp("bad".into()));
        let m = run(s.clone(), 3, LIMITS).await;
        assert!(s.batches.lock().unwrap().is_empty());
        assert_eq!(m.dropped(DropReason::InsertRejected), 3);
    }

    /// Sleeps in every insert and records the most inserts running at once.
    #[derive(Default)]
    struct SlowSink {
        running: std::sync::atomic::AtomicUsize,
        most: std::sync::atomic::AtomicUsize,
    }

    impl MessageSink for SlowSink {
        async fn insert(&self, _rows: &[MessageRow]) -> InsertOutcome {
            let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
            self.most.fetch_max(now, Ordering::SeqCst);
            sleep(Duration::from_millis(100)).await;
            self.running.fetch_sub(1, Ordering::SeqCst);
            InsertOutcome::Ok
        }
    }

    #[tokio::test(start_paused = true)]
    async fn inserts_run_concurrently_up_to_the_limit() {
        for inflight in [1, 3] {
            let s = Arc::new(SlowSink::default());
            let metrics = Arc::new(Metrics::default());
            let (_trigger, shutdown) = crate::shutdown::channel();
            let (tx, rx) = queue(64);
            tx.send((0..40).map(|_| MessageRow::default()).collect()).await.unwrap();
            drop(tx);
            let limits = BatchLimits { max_rows: 2, inflight, ..LIMITS };
            Batcher::new(s.clone(), limits, metrics.clone(), shutdown).run(rx).await;
            assert_eq!(s.most.load(Ordering::SeqCst), inflight);
            assert_eq!(metrics.stored.load(Ordering::Relaxed), 40, "every row stored before run returns");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn flushes_by_age() {
        let s = sink(0, InsertOutcome::Ok);
        let metrics = Arc::new(Metrics::default());
        let (_trigger, shutdown) = crate::shutdown::channel();
        let (tx, rx) = queue(8);
        let limits = BatchLimits { max_age: Duration::from_millis(50), ..LIMITS };
        let task = tokio::spawn(Batcher::new(s.clone(), limits, metrics, shutdown).run(rx));
        tx.send(vec![MessageRow::default()]).await.unwrap();
        sleep(Duration::from_millis(100)).await;
        assert_eq!(*s.batches.lock().unwrap(), vec![1]);
        drop(tx);
        task.await.unwrap();
    }
}
