//! A simulated session for tests: both byte streams, so each data segment
//! carries its end and an acknowledgement of what its sender has received.

use super::{Interactive, Pos};
use crate::side::Side;
use crate::time::Ts;

const MS: Ts = 1_000_000;

/// Both byte streams of a session.
pub struct Sim {
    pub a: Interactive,
    next: [u32; 2],
}

impl Sim {
    pub fn new(ks: Option<u32>) -> Sim {
        let mut a = Interactive::new(ks);
        a.set_start_seen();
        a.set_chaff_capability(Some(false), false);
        Sim { a, next: [1000, 5000] }
    }

    /// A segment whose sender has received everything the other side sent.
    pub fn send(&mut self, t: Ts, from: Side, len: u32) -> Option<f64> {
        let ack = self.next[from.other() as usize];
        self.send_acking(t, from, len, ack)
    }

    /// A segment whose sender has received the other side's bytes up to `ack`.
    pub fn send_acking(&mut self, t: Ts, from: Side, len: u32, ack: u32) -> Option<f64> {
        let end = self.next[from as usize].wrapping_add(len);
        self.next[from as usize] = end;
        self.a.on_data(t, from, len, Some(Pos { end, ack: Some(ack) }))
    }

    /// Where the client's stream ends now.
    pub fn client_end(&self) -> u32 {
        self.next[0]
    }

    /// Authentication: the client answers `rtt` ms after each server
    /// message, give or take `jitter`; returns the time after it.
    pub fn authenticate(&mut self, rtt: Ts, jitter: &[Ts]) -> Ts {
        let mut t = 0;
        for j in jitter {
            self.send(t, Side::Server, 100);
            t += (rtt + j) * MS;
            self.send(t, Side::Client, 120);
            t += MS;
        }
        t
    }

    /// A key at `t` and its one-character echo `echo` ms later.
    pub fn key_echo(&mut self, t: Ts, echo: Ts) {
        self.send(t, Side::Client, 36);
        self.send(t + echo * MS, Side::Server, 36);
    }
}
