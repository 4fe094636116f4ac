//! Crafted interactive SSH sessions with known typing: a person types lines
//! of keys, the server's pty echoes each, and (with keystroke-timing
//! obfuscation) the client sends chaff in trains the way OpenSSH's
//! clientloop.c does. Sequence and acknowledgement numbers come from
//! [`Conversation`], so every answer acknowledges exactly what had reached
//! its sender.

use super::conv::{Conversation, Dir};
use super::pcap::{Packet, at, ms};
use super::rng::Rng;

/// How the client hides keystroke timing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Chaff {
    /// No obfuscation (OpenSSH < 9.5, PuTTY, or turned off).
    Off,
    /// OpenSSH 9.5–9.9: a key typed inside a train leaves with a PING in one segment.
    KeyWithPing,
    /// OpenSSH 10: a key inside a train leaves alone, at chaff's size and on its grid.
    KeyAlone,
}

/// A crafted session and what happened in it.
pub struct Session {
    pub packets: Vec<Packet>,
    pub typed: u64,
    /// PINGs sent (chaff), and the trains they came in.
    pub pings: u64,
    pub trains: u64,
    pub client_version: &'static str,
}

/// The session's shape.
pub struct Plan {
    pub client_version: &'static str,
    pub server_version: &'static str,
    pub chaff: Chaff,
    /// One-way delay sensor → client and sensor → server, ms.
    pub client_ms: f64,
    pub server_ms: f64,
    /// Keys per line, lines.
    pub keys_per_line: usize,
    pub lines: usize,
    /// Gap between keys, ms (uniform), and the pause before a line.
    pub gap_ms: (f64, f64),
    pub pause_ms: f64,
    /// Time the server's pty takes to echo, and sshd to answer a PING, ms.
    pub echo_ms: f64,
    pub pong_ms: f64,
    pub seed: u64,
    /// The connection opens in the middle of the byte stream (a Multipath TCP
    /// join subflow): its handshake, then typing, with no version lines and no
    /// authentication.
    pub joined: bool,
}

impl Default for Plan {
    fn default() -> Plan {
        Plan {
            client_version: "SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3",
            server_version: "SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3",
            chaff: Chaff::Off,
            client_ms: 30.0,
            server_ms: 0.05,
            keys_per_line: 12,
            lines: 4,
            gap_ms: (120.0, 350.0),
            pause_ms: 4000.0,
            echo_ms: 0.25,
            pong_ms: 0.1,
            seed: 1,
            joined: false,
        }
    }
}

/// One one-key unit: 36 bytes of TCP payload with chacha20-poly1305.
const UNIT: usize = 36;
const GRID_MS: f64 = 20.0;
const CHAFF_AFTER_LAST_KEY_MS: f64 = 1500.0;

/// What the client sends and when (sensor time, ms), before sequence numbers.
#[derive(Clone, Copy, Debug)]
enum Ev {
    /// A key (alone, or with a PING), echoed `echo` ms later by `len` bytes.
    Key {
        units: usize,
    },
    Ping,
}

impl Plan {
    pub fn build(&self) -> Session {
        let client = "198.51.100.7:50022".parse().unwrap();
        let server = "203.0.113.5:22".parse().unwrap();
        let mut cv = Conversation::new(client, server, ms(self.client_ms), ms(self.server_ms));
        let c_rtt = 2.0 * self.client_ms;
        let mut t = at(0.0);
        t = cv.handshake(t);
        let t_ms = |t: u64| (t - at(0.0)) as f64 / 1e6;
        let mut now = t_ms(t) + 1.0;
        if !self.joined {
            cv.data_bytes(Dir::S2C, at(now), format!("{}\r\n", self.server_version).as_bytes());
            now += c_rtt;
            cv.data_bytes(Dir::C2S, at(now), format!("{}\r\n", self.client_version).as_bytes());
            // Key exchange and authentication: the client answers each server message one round trip later.
            for size in [600, 300, 80, 120, 160, 90, 100, 140, 60, 100] {
                now += 2.0 * self.server_ms + 1.0;
                cv.data(Dir::S2C, at(now), size);
                now += c_rtt + 0.5;
                cv.data(Dir::C2S, at(now), size / 2 + 40);
            }
            cv.data(Dir::S2C, at(now + 2.0 * self.server_ms + 1.0), 200); // the prompt
        }
        now += 1000.0;

        // The person's key presses, then what the client sends for them.
        let mut rng = Rng(self.seed);
        let mut presses = Vec::new();
        for _ in 0..self.lines {
            now += self.pause_ms;
            for _ in 0..self.keys_per_line {
                presses.push(now);
                now += self.gap_ms.0 + (self.gap_ms.1 - self.gap_ms.0) * unit(&mut rng);
            }
        }
        let mut sends: Vec<(f64, Ev)> = Vec::new();
        let (mut pings, mut trains) = (0, 0);
        let mut i = 0;
        while i < presses.len() {
            if self.chaff == Chaff::Off {
                sends.push((presses[i], Ev::Key { units: 1 }));
                i += 1;
                continue;
            }
            // A train: the key at once, then a slot every ~20 ms until 1.5 s after the last key.
            trains += 1;
            sends.push((presses[i], Ev::Key { units: 1 }));
            i += 1;
            let mut slot = presses[i - 1];
            let mut last_key = presses[i - 1];
            loop {
                slot += GRID_MS * (0.9 + 0.2 * unit(&mut rng));
                if i < presses.len() && presses[i] <= slot {
                    // A key waiting for this slot.
                    let units = if self.chaff == Chaff::KeyWithPing { 2 } else { 1 };
                    if units == 2 {
                        pings += 1;
                    }
                    sends.push((slot, Ev::Key { units }));
                    last_key = presses[i];
                    i += 1;
                } else if slot > last_key + CHAFF_AFTER_LAST_KEY_MS {
                    break;
                } else {
                    sends.push((slot, Ev::Ping));
                    pings += 1;
                }
            }
        }
        // Every send and its answer, in time order.
        let mut events: Vec<(f64, Dir, usize)> = Vec::new();
        for (ts, ev) in sends {
            let answer = ts + 2.0 * self.server_ms;
            match ev {
                Ev::Key { units } => {
                    events.push((ts, Dir::C2S, units * UNIT));
                    events.push((answer + self.echo_ms, Dir::S2C, units * UNIT));
                }
                Ev::Ping => {
                    events.push((ts, Dir::C2S, UNIT));
                    events.push((answer + self.pong_ms, Dir::S2C, UNIT));
                }
            }
        }
        events.sort_by(|a, b| a.0.total_cmp(&b.0));
        let mut last = 0.0;
        for (ts, dir, len) in events {
            cv.data(dir, at(ts), len);
            last = ts;
        }
        cv.close(at(last + 500.0));
        Session {
            packets: cv.packets(),
            typed: presses.len() as u64,
            pings,
            trains,
            client_version: self.client_version,
        }
    }
}

/// Uniform in [0, 1).
fn unit(r: &mut Rng) -> f64 {
    (r.next() >> 11) as f64 / (1u64 << 53) as f64
}
