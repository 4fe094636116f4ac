//! The client's answers inside a tunnel: a server message answered by the
//! client's next message is a round trip to whatever computes the answer,
//! the far end of the inner protocol. When the laptop that runs the
//! tunnel only forwards (a port forwarder, a jump), the inner SSH still
//! runs end to end, so its key exchange and authentication answers come
//! from the far typist, later than the laptop's inner ACKs by the hidden
//! path: the relay beyond the laptop (the "hidden latency").
//!
//! A pair is taken only when it cannot be anything else: exactly one server
//! data packet (not the inner ACK's size) since the client's last data
//! packet, answered by a client data packet that is neither an inner ACK,
//! nor a key (a person's pace, not an answer), nor of the server packet's
//! own size (an echo request answered by its reply, a key's echo). The
//! sizes are learnt from the typing (`TunnelTyping`), which comes after the
//! authentication it must read: until then the packets wait, the latest
//! [`MAX_EARLY`] of them. The caller takes the answers
//! ([`Answers::take`]) as the client side's turnarounds; the verdict groups
//! them into levels (the lowest of at least three that agree), so answers
//! a person gave, or a program at its own pace, form none.

use super::SizeClasses;
use crate::analysis::interactive::ECHO_BOUND;
use crate::side::Side;
use crate::time::{Ts, ms};
use std::collections::VecDeque;

/// Packets kept until the size classes are known.
const MAX_EARLY: usize = 256;
/// Answers handed over at most (the key exchange and authentication of a
/// few sessions).
const MAX_ANSWERS: u32 = 64;

#[derive(Debug, Default)]
pub struct Answers {
    /// Packets since the server's first, while the classes are not known: (time, client?, size).
    early: VecDeque<(Ts, bool, u32)>,
    /// The last server data packet since the client's last (time, size), and how many came.
    last: Option<(Ts, u32)>,
    servers: u32,
    /// Answers found, not yet taken; and all found.
    ready: Vec<f64>,
    found: u32,
}

impl Answers {
    /// One data packet of the tunnel; `classes` the sizes learnt so far.
    pub fn on_packet(&mut self, ts: Ts, from: Side, len: u32, classes: Option<SizeClasses>) {
        if self.found >= MAX_ANSWERS {
            return;
        }
        let client = from == Side::Client;
        let Some(c) = classes else {
            // Nothing to pair before the server's first packet (nor kept: a
            // flood's one-packet flows hold nothing here).
            if self.early.is_empty() && client {
                return;
            }
            if self.early.len() == MAX_EARLY {
                self.early.pop_front();
            }
            self.early.push_back((ts, client, len));
            return;
        };
        for (t, cl, n) in std::mem::take(&mut self.early) {
            self.pair(t, cl, n, c);
        }
        self.pair(ts, client, len, c);
    }

    fn pair(&mut self, ts: Ts, client: bool, len: u32, c: SizeClasses) {
        if len == c.ack {
            return;
        }
        if !client {
            self.last = Some((ts, len));
            self.servers += 1;
            return;
        }
        if let Some((t, n)) = self.last
            && self.servers == 1
            && len != c.key
            && len != n
            && (0..=ECHO_BOUND).contains(&(ts - t))
            && self.found < MAX_ANSWERS
        {
            self.ready.push(ms(ts - t));
            self.found += 1;
        }
        (self.last, self.servers) = (None, 0);
    }

    /// The answers found since the last call.
    pub fn take(&mut self) -> Vec<f64> {
        std::mem::take(&mut self.ready)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Ts = 1_000_000;
    const C: SizeClasses = SizeClasses { key: 128, echo: 128, ack: 96 };

    #[test]
    fn answers_wait_for_the_classes_and_exclude_what_is_no_answer() {
        let mut a = Answers::default();
        // A lone client packet before any server one: nothing kept.
        a.on_packet(0, Side::Client, 400, None);
        assert!(a.early.is_empty());
        let events = [
            // Key exchange: the server's reply, the laptop's ACK, the far client's answer 101 ms on.
            (10, Side::Server, 288),
            (30, Side::Client, 96),
            (111, Side::Client, 112),
            // A ping: request and reply of one size, the next request 50 ms on: no answer.
            (200, Side::Server, 120),
            (250, Side::Client, 120),
            // Two server messages before the answer: ambiguous, no answer.
            (300, Side::Server, 112),
            (323, Side::Server, 560),
            (401, Side::Client, 208),
            // An echo followed by the next key: a person's pace, no answer.
            (500, Side::Server, 128),
            (640, Side::Client, 128),
            // Authentication answer.
            (700, Side::Server, 192),
            (803, Side::Client, 400),
        ];
        for (t, side, len) in events {
            a.on_packet(t * MS, side, len, None);
        }
        assert!(a.take().is_empty(), "nothing before the classes are known");
        // Typing showed the classes: the packets kept are paired now.
        a.on_packet(900 * MS, Side::Server, 144, Some(C));
        a.on_packet(1001 * MS, Side::Client, 224, Some(C));
        let got: Vec<_> = a.take().iter().map(|d| d.round() as i64).collect();
        assert_eq!(got, [101, 103, 101]);
        assert!(a.take().is_empty());
    }

    #[test]
    fn the_packets_kept_and_the_answers_are_bounded() {
        let mut a = Answers::default();
        for i in 0..10_000i64 {
            a.on_packet(i * 10 * MS, if i % 2 == 0 { Side::Server } else { Side::Client }, 200 + (i % 2) as u32, None);
        }
        assert_eq!(a.early.len(), MAX_EARLY);
        a.on_packet(200_000 * MS, Side::Server, 144, Some(C));
        assert_eq!(a.take().len(), MAX_ANSWERS as usize);
        assert!(a.early.is_empty());
        for i in 0..10_000i64 {
            let side = if i % 2 == 0 { Side::Server } else { Side::Client };
            a.on_packet(300_000 * MS + i * 10 * MS, side, 200 + (i % 2) as u32, Some(C));
        }
        assert!(a.take().is_empty());
    }
}
