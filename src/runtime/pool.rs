//! Worker engines on every core: one reader thread decodes each frame's
//! addresses and hands it to the worker its host pair hashes to
//! ([`host_pair_hash`]: both directions, and every flow between two hosts,
//! meet in one worker and its table); a writer thread puts the workers'
//! records back in packet order.
//!
//! Frames go in batches, a batch per worker per *epoch* (at most
//! [`EPOCH_FRAMES`] frames or [`EPOCH_BYTES`] bytes, or what came before the
//! capture ran dry): every worker gets every epoch's batch, empty or not, and
//! answers it with the records it wrote, each tagged with the number of the
//! frame (in the input's order) it was written at. The writer takes an epoch
//! once every worker answered it and writes its records in frame order (ties:
//! lower worker first), so a replay writes the same records in the same
//! order every time.
//!
//! Flows of one session between other hosts (a Multipath TCP join from
//! another address, a roamed WireGuard peer) follow it to its worker
//! ([`Affinity`]).
//!
//! The reader keeps the packet clock ([`Clock`]) the single engine keeps:
//! when idle sessions are due to be looked for, every worker is told so at
//! that frame, and a file that does not continue the timeline starts a new
//! one in every worker. So records are those of one engine, idle ends and
//! timelines included, as long as no worker's table fills: each worker holds
//! its share of `--max-sessions` and evicts from its own table.

use super::Feed;
use super::affinity::Affinity;
use crate::capture::Frame;
use crate::decode::{self, LinkType};
use crate::engine::{Clock, Engine, EngineConfig, Observer};
use crate::flow::{EndReason, host_pair_hash};
use crate::output::{Records, SessionRecord};
use crate::time::Ts;
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::mpsc::{self, Receiver, Sender, SyncSender};
use std::thread::{Scope, ScopedJoinHandle};

/// Most frames in one epoch (over all workers).
const EPOCH_FRAMES: usize = 8192;
/// Most captured bytes in one epoch: what the batches in flight may hold.
const EPOCH_BYTES: usize = 2 << 20;
/// Live: how long frames may wait in an epoch the capture has run dry on
/// (wall clock: it decides when workers see frames, never what they make of
/// them). Sending every worker a batch each time the capture runs dry, a
/// few packets at a time, would cost more than the packets.
const EPOCH_WAIT: std::time::Duration = std::time::Duration::from_millis(10);
/// Epochs a worker may have waiting: the reader blocks beyond that.
const QUEUE: usize = 4;

/// What a worker does, in order, each with the number of the frame it comes
/// at (what its records are ordered by).
enum What {
    Frame {
        ts: Ts,
        link: Option<LinkType>,
        start: u32,
        len: u32,
        wire_len: u32,
    },
    /// Move the packet clock (idle sessions are due).
    Advance(Ts),
    NewTimeline,
    Input(u32),
    FlushMetrics,
    Finish(EndReason),
}

#[derive(Default)]
struct Batch {
    bytes: Vec<u8>,
    entries: Vec<(u64, What)>,
}

/// A worker's answer to an epoch: its records, tagged with frame numbers.
struct Done {
    worker: usize,
    records: Vec<(u64, SessionRecord)>,
}

/// The reader's side of the pool.
pub struct Pool<'s> {
    queues: Vec<SyncSender<Batch>>,
    /// The batch being filled for each worker.
    open: Vec<Batch>,
    /// Emptied batches coming back, to be filled again.
    spare: Receiver<Batch>,
    clock: Clock,
    affinity: Affinity,
    longest_idle: Ts,
    /// The next frame's number.
    seq: u64,
    /// Frames and bytes in the open epoch; whether it holds anything.
    frames: usize,
    bytes: usize,
    dirty: bool,
    /// When the open epoch got its first entry (wall clock).
    since: Option<std::time::Instant>,
    threads: Vec<ScopedJoinHandle<'s, ()>>,
}

impl<'s> Pool<'s> {
    /// Start `n` workers (each an engine with `ecfg`, its share of the
    /// session bound already set by the caller) and the writer, which calls
    /// `write` with each epoch's records in order (never with none).
    pub fn start<'env, W>(
        scope: &'s Scope<'s, 'env>,
        n: usize,
        ecfg: &EngineConfig,
        observer: Option<Arc<dyn Observer>>,
        skip_handshake_only: bool,
        write: W,
    ) -> Pool<'s>
    where
        W: FnMut(Vec<SessionRecord>) + Send + 's,
    {
        let n = n.max(1);
        let (done_tx, done_rx) = mpsc::channel::<Done>();
        let (spare_tx, spare) = mpsc::channel::<Batch>();
        let mut threads = vec![scope.spawn(move || merge(n, done_rx, write))];
        let mut queues = Vec::with_capacity(n);
        for w in 0..n {
            let (tx, rx) = mpsc::sync_channel::<Batch>(QUEUE);
            queues.push(tx);
            let engine = Engine::new(ecfg.clone(), observer.clone());
            let (done, spare) = (done_tx.clone(), spare_tx.clone());
            threads.push(scope.spawn(move || work(w, engine, skip_handshake_only, rx, spare, done)));
        }
        Pool {
            queues,
            open: (0..n).map(|_| Batch::default()).collect(),
            spare,
            clock: Clock::default(),
            affinity: Affinity::new(ecfg.longest_idle()),
            longest_idle: ecfg.longest_idle(),
            seq: 0,
            frames: 0,
            bytes: 0,
            dirty: false,
            since: None,
            threads,
        }
    }

    /// Every worker, at the next frame's place.
    fn broadcast(&mut self, what: impl Fn() -> What) {
        for b in &mut self.open {
            b.entries.push((self.seq, what()));
        }
        self.mark();
    }

    /// The open epoch holds something.
    fn mark(&mut self) {
        if !self.dirty {
            self.dirty = true;
            self.since = Some(std::time::Instant::now());
        }
    }

    /// Send every worker its batch of the epoch (empty or not).
    fn close_epoch(&mut self) {
        for (w, q) in self.queues.iter().enumerate() {
            let fresh = self.spare.try_recv().unwrap_or_default();
            let b = std::mem::replace(&mut self.open[w], fresh);
            // A worker gone (it panicked) has nothing more to say: the
            // others go on, and the scope reports the panic at the end.
            let _ = q.send(b);
        }
        (self.frames, self.bytes, self.dirty, self.since) = (0, 0, false, None);
    }

    /// End every open session and wait for the workers and the writer.
    pub fn finish(mut self, reason: EndReason) {
        self.broadcast(|| What::Finish(reason));
        self.close_epoch();
        self.queues.clear();
        for t in self.threads.drain(..) {
            if let Err(e) = t.join() {
                std::panic::resume_unwind(e);
            }
        }
    }
}

impl Feed for Pool<'_> {
    fn frame(&mut self, f: &Frame<'_>) {
        // The worker: by the host pair; frames that do not decode (counted
        // there) go to the first. The clock moves as the engine's does: on
        // decoded packets only.
        let w = match f.link.map(|l| decode::decode_wire(l, f.ts, f.data, Some(f.wire_len))) {
            Some(Ok(p)) => {
                if self.clock.advance(p.ts) {
                    self.broadcast(|| What::Advance(p.ts));
                }
                let w = (host_pair_hash(p.src, p.dst) % self.queues.len() as u64) as usize;
                self.affinity.route(&p, w)
            }
            _ => 0,
        };
        let b = &mut self.open[w];
        let start = b.bytes.len() as u32;
        b.bytes.extend_from_slice(f.data);
        let what = What::Frame { ts: f.ts, link: f.link, start, len: f.data.len() as u32, wire_len: f.wire_len };
        b.entries.push((self.seq, what));
        self.seq += 1;
        self.frames += 1;
        self.bytes += f.data.len();
        self.mark();
        if self.frames >= EPOCH_FRAMES || self.bytes >= EPOCH_BYTES {
            self.close_epoch();
        }
    }

    fn file_start(&mut self, ts: Ts) -> bool {
        if self.clock.continues(ts, self.longest_idle) {
            return false;
        }
        self.broadcast(|| What::NewTimeline);
        self.clock.reset();
        true
    }

    fn set_input(&mut self, i: u32) {
        self.broadcast(|| What::Input(i));
    }

    fn advance(&mut self, ts: Ts) {
        if self.clock.advance(ts) {
            self.broadcast(|| What::Advance(ts));
        }
        if self.dirty {
            self.close_epoch();
        }
    }

    fn drained(&mut self) {
        if self.since.is_some_and(|t| t.elapsed() >= EPOCH_WAIT) {
            self.close_epoch();
        }
    }

    fn flush_metrics(&mut self) {
        self.broadcast(|| What::FlushMetrics);
        self.close_epoch();
    }
}

/// A worker: its engine over the batches it is sent, in order; the records
/// of each batch go to the writer, the emptied batch back to the reader.
fn work(w: usize, mut engine: Engine, skip: bool, rx: Receiver<Batch>, spare: Sender<Batch>, done: Sender<Done>) {
    let at = Cell::new(0u64);
    let records = RefCell::new(Vec::new());
    let mut out = Records { write: |r| records.borrow_mut().push((at.get(), r)), skip_handshake_only: skip };
    for mut b in rx {
        for (seq, what) in b.entries.drain(..) {
            at.set(seq);
            match what {
                What::Frame { ts, link: Some(l), start, len, wire_len } => {
                    let data = &b.bytes[start as usize..][..len as usize];
                    engine.frame_wire(l, ts, data, Some(wire_len), &mut out);
                }
                What::Frame { link: None, .. } => engine.unknown_link(),
                What::Advance(ts) => engine.advance(ts, &mut out),
                What::NewTimeline => engine.new_timeline(&mut out),
                What::Input(i) => engine.set_input(i),
                What::FlushMetrics => engine.flush_metrics(),
                What::Finish(reason) => engine.finish_all(reason, &mut out),
            }
        }
        b.bytes.clear();
        let _ = spare.send(b);
        let _ = done.send(Done { worker: w, records: records.take() });
    }
}

/// The writer: each epoch once every worker answered it, its records in
/// frame order.
fn merge(n: usize, rx: Receiver<Done>, mut write: impl FnMut(Vec<SessionRecord>)) {
    let mut waiting: Vec<VecDeque<Vec<(u64, SessionRecord)>>> = (0..n).map(|_| VecDeque::new()).collect();
    for d in rx {
        waiting[d.worker].push_back(d.records);
        while waiting.iter().all(|q| !q.is_empty()) {
            let mut epoch: Vec<(u64, SessionRecord)> =
                waiting.iter_mut().filter_map(|q| q.pop_front()).flatten().collect();
            // Stable: at one frame, the lower worker's records first.
            epoch.sort_by_key(|(seq, _)| *seq);
            if !epoch.is_empty() {
                write(epoch.into_iter().map(|(_, r)| r).collect());
            }
        }
    }
    // Every worker is gone. A worker that died (a panic, re-raised at the
    // end) answers no more epochs: the others' records are written all the
    // same, in order.
    let mut rest: Vec<(u64, SessionRecord)> = waiting.into_iter().flatten().flatten().collect();
    rest.sort_by_key(|(seq, _)| *seq);
    if !rest.is_empty() {
        write(rest.into_iter().map(|(_, r)| r).collect());
    }
}
