//! Application turnarounds from handshake request → answer pairs (TLS,
//! RDP, WireGuard, IKE, OpenVPN): the answer comes from the real protocol
//! peer, past any relay. A request sent twice is ambiguous (Karn's rule for
//! applications): its answer gives no sample.

use super::stats::Summary;
use crate::side::Side;
use crate::time::{Ts, ms};

/// One handshake message, as far as pairing goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Msg {
    /// Asks for an answer; `id` pairs it with that answer.
    Request(u64),
    Answer(u64),
}

/// Robust floor and spread of application turnarounds of one side, ms.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct AppRtt {
    pub min: f64,
    pub p50: f64,
    pub samples: u64,
    /// The floor used for hidden latency: the minimum (handshake answers
    /// are automatic, see [`Turns::app_rtt`]).
    pub floor: f64,
}

/// Requests awaiting their answer (OpenVPN's control channel keeps four in
/// flight each way).
const PENDING: usize = 8;

#[derive(Debug, Clone, Copy)]
struct Request {
    id: u64,
    from: Side,
    ts: Ts,
    repeated: bool,
}

#[derive(Debug, Default)]
pub struct Turns {
    pending: [Option<Request>; PENDING],
    /// Answers by the side that answered, ms.
    pub answers: [Summary; 2],
}

impl Turns {
    pub fn on_message(&mut self, ts: Ts, from: Side, msg: Msg) {
        match msg {
            Msg::Request(id) => {
                if let Some(r) = self.pending.iter_mut().flatten().find(|r| r.id == id && r.from == from) {
                    r.repeated = true;
                    return;
                }
                let slot = match self.pending.iter().position(Option::is_none) {
                    Some(i) => i,
                    // Full: the oldest request gives way.
                    None => (0..PENDING).min_by_key(|&i| self.pending[i].map_or(Ts::MIN, |r| r.ts)).unwrap_or(0),
                };
                self.pending[slot] = Some(Request { id, from, ts, repeated: false });
            }
            Msg::Answer(id) => {
                let Some(i) = self.pending.iter().position(|r| r.is_some_and(|r| r.id == id && r.from != from)) else {
                    return;
                };
                let r = self.pending[i].take().expect("found");
                if !r.repeated && ts >= r.ts {
                    self.answers[from as usize].add(ms(ts - r.ts));
                }
            }
        }
    }

    /// `from` answered the peer's request `id` along with a newer one (an
    /// acknowledgement covering several): it is settled, without a sample.
    pub fn settle(&mut self, from: Side, id: u64) {
        if let Some(r) = self.pending.iter_mut().find(|r| r.is_some_and(|r| r.id == id && r.from != from)) {
            *r = None;
        }
    }

    /// `from` sent request `id` again (after its answer, perhaps): if it is
    /// still waiting, its answer gives no sample; else nothing waits for one.
    pub fn repeat(&mut self, from: Side, id: u64) {
        if let Some(r) = self.pending.iter_mut().flatten().find(|r| r.id == id && r.from == from) {
            r.repeated = true;
        }
    }

    /// Turnaround of the side that answers. Handshake answers are automatic
    /// (no person, little crypto on the way), so the floor is the minimum.
    pub fn app_rtt(&self, side: Side) -> Option<AppRtt> {
        let q = self.answers[side as usize].quantiles()?;
        Some(AppRtt { min: q.min, p50: q.p50, samples: q.samples, floor: q.min })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    const MS: Ts = 1_000_000;

    #[test]
    fn request_answer_pairs_time_the_answering_side() {
        let mut t = Turns::default();
        t.on_message(0, Side::Client, Msg::Request(7));
        t.on_message(135 * MS, Side::Server, Msg::Answer(7));
        assert_eq!(t.app_rtt(Side::Server).unwrap().floor, 135.0);
        assert!(t.app_rtt(Side::Client).is_none());
        // An answer nobody asked for is ignored.
        t.on_message(200 * MS, Side::Server, Msg::Answer(8));
        assert_eq!(t.answers[1].count(), 1);
    }

    #[test]
    fn a_repeated_request_gives_no_sample() {
        let mut t = Turns::default();
        t.on_message(0, Side::Client, Msg::Request(1));
        t.on_message(1000 * MS, Side::Client, Msg::Request(1));
        t.on_message(1050 * MS, Side::Server, Msg::Answer(1));
        assert!(t.app_rtt(Side::Server).is_none());
    }
}
