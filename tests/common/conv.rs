//! [`Conversation`]: a TCP connection between a client and a server, seen by a
//! sensor in the middle.
//!
//! ```text
//!   client <--- c (one way) ---> sensor <--- s (one way) ---> server
//! ```
//!
//! Every time given to or returned by this module is the time at which the
//! *sensor* sees the packet (ns since the epoch). A packet the client sends
//! that the sensor sees at `t` reaches the server at `t + s`; a packet the
//! server sends that the sensor sees at `t` reaches the client at `t + c`. So
//! the client-leg RTT (sensor<->client) is `2c` and the server-leg RTT
//! (sensor<->server) is `2s`.
//!
//! Sequence and acknowledgement numbers are computed, not typed in: every
//! segment sent is remembered with the time it reaches the peer (or never,
//! when lost). A packet an endpoint sends that the sensor sees at `t` left
//! that endpoint at `t - its one-way delay`, and its ACK number (and SACK
//! blocks, and TSecr) reflect exactly the peer segments that had arrived by
//! then. So a test only chooses *when* each endpoint sends, and the numbers
//! are consistent with the delays, including after losses.
//!
//! Offsets: a side's sequence space is counted from its ISN as an unbounded
//! `u64` offset (the SYN is offset 0, the first data byte offset 1) and turned
//! into a wrapping `u32` sequence number only when a packet is built.

use super::pcap::{ACK, FIN, PSH, Packet, RST, SYN, Tcp, TcpOpt};
use std::net::SocketAddr;

/// Who sends a segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dir {
    /// Client to server.
    C2S,
    /// Server to client.
    S2C,
}

impl Dir {
    fn idx(self) -> usize {
        match self {
            Dir::C2S => 0,
            Dir::S2C => 1,
        }
    }
    pub fn other(self) -> Dir {
        match self {
            Dir::C2S => Dir::S2C,
            Dir::S2C => Dir::C2S,
        }
    }
}

/// What happens to a segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fate {
    /// The sensor sees it and the peer receives it.
    Delivered,
    /// The sensor sees it but it is lost on the way to the peer.
    LostAfterSensor,
    /// Lost before the sensor: not in the capture, never received.
    LostBeforeSensor,
}

#[derive(Clone, Debug)]
struct Sent {
    start: u64,
    end: u64,
    /// Time the peer receives it (None: lost).
    arrive: Option<u64>,
    tsval: Option<u32>,
    payload: Vec<u8>,
    syn: bool,
    fin: bool,
}

#[derive(Clone, Debug)]
struct Side {
    isn: u32,
    /// Next new offset to send.
    next: u64,
    sent: Vec<Sent>,
    ts_base: u32,
}

/// A handle on a segment that was sent (to retransmit it, or to compute
/// times from it).
#[derive(Clone, Copy, Debug)]
pub struct Seg {
    pub dir: Dir,
    /// Offset of the first sequence number (see module doc).
    pub start: u64,
    /// Offset one past the last sequence number.
    pub end: u64,
    /// Sensor time.
    pub t: u64,
    idx: usize,
}

/// A simulated TCP connection; see the module documentation.
#[derive(Clone, Debug)]
pub struct Conversation {
    pub client: SocketAddr,
    pub server: SocketAddr,
    /// One-way delay client <-> sensor, ns.
    pub c: u64,
    /// One-way delay sensor <-> server, ns.
    pub s: u64,
    /// SACK-permitted in the SYNs, and SACK blocks on ACKs when there is a
    /// hole.
    pub sack: bool,
    /// TCP timestamps option on every segment (but RSTs).
    pub timestamps: bool,
    /// One TSval tick, ns (default 1 ms).
    pub ts_tick: u64,
    /// MSS option value in SYNs.
    pub mss: u16,
    /// Window scale option in SYNs.
    pub wscale: Option<u8>,
    pub window: u16,
    sides: [Side; 2],
    packets: Vec<Packet>,
}

/// Default payload byte at a sequence offset: lowercase letters.
fn pattern(start: u64, len: usize) -> Vec<u8> {
    (0..len as u64).map(|i| b'a' + ((start + i) % 26) as u8).collect()
}

impl Conversation {
    /// `c` and `s` are the one-way delays in ns. Default ISNs are 1000 (client)
    /// and 5000 (server); options: MSS 1460 only.
    pub fn new(client: SocketAddr, server: SocketAddr, c: u64, s: u64) -> Conversation {
        let side = |isn, ts_base| Side { isn, next: 0, sent: Vec::new(), ts_base };
        Conversation {
            client,
            server,
            c,
            s,
            sack: false,
            timestamps: false,
            ts_tick: 1_000_000,
            mss: 1460,
            wscale: None,
            window: 64240,
            sides: [side(1000, 100_000), side(5000, 900_000)],
            packets: Vec::new(),
        }
    }

    /// Set the initial sequence numbers.
    pub fn isns(mut self, client: u32, server: u32) -> Conversation {
        self.sides[0].isn = client;
        self.sides[1].isn = server;
        self
    }

    pub fn with_sack(mut self) -> Conversation {
        self.sack = true;
        self
    }

    pub fn with_timestamps(mut self) -> Conversation {
        self.timestamps = true;
        self
    }

    pub fn with_wscale(mut self, ws: u8) -> Conversation {
        self.wscale = Some(ws);
        self
    }

    /// The connection was set up before the capture began: both SYNs count
    /// as sent and received long ago, and no packet is emitted for them.
    pub fn established(mut self) -> Conversation {
        for side in &mut self.sides {
            assert!(side.sent.is_empty());
            side.sent.push(Sent {
                start: 0,
                end: 1,
                arrive: Some(0),
                tsval: None,
                payload: Vec::new(),
                syn: true,
                fin: false,
            });
            side.next = 1;
        }
        self
    }

    /// Client-leg RTT in ms (2c).
    pub fn client_leg_ms(&self) -> f64 {
        (2 * self.c) as f64 / 1e6
    }

    /// Server-leg RTT in ms (2s).
    pub fn server_leg_ms(&self) -> f64 {
        (2 * self.s) as f64 / 1e6
    }

    /// One-way delay between the sensor and the sender of `dir`.
    fn sender_delay(&self, dir: Dir) -> u64 {
        match dir {
            Dir::C2S => self.c,
            Dir::S2C => self.s,
        }
    }

    /// One-way delay between the sensor and the receiver of `dir`.
    fn receiver_delay(&self, dir: Dir) -> u64 {
        self.sender_delay(dir.other())
    }

    /// Sensor time of an immediate answer to a packet of `dir` seen at `t`:
    /// `t` plus the receiver's leg RTT.
    pub fn answer_time(&self, dir: Dir, t: u64) -> u64 {
        t + 2 * self.receiver_delay(dir)
    }

    /// Sequence number of offset `off` in `dir`'s space.
    pub fn seq(&self, dir: Dir, off: u64) -> u32 {
        self.sides[dir.idx()].isn.wrapping_add(off as u32)
    }

    /// What the sender of `dir` knows at its local time `at` about the
    /// segments its peer sent: cumulative ACK offset (None before the peer's
    /// SYN arrived), SACK blocks (most recent first) and the TSval to echo.
    fn receive_state(&self, dir: Dir, at: u64) -> (Option<u64>, Vec<(u64, u64)>, Option<u32>) {
        let peer = &self.sides[dir.other().idx()];
        let mut arrived: Vec<(usize, &Sent)> =
            peer.sent.iter().enumerate().filter(|(_, s)| s.arrive.is_some_and(|a| a <= at)).collect();
        if !arrived.iter().any(|(_, s)| s.syn) {
            return (None, Vec::new(), None);
        }
        let mut ivs: Vec<(u64, u64)> =
            arrived.iter().filter(|(_, s)| s.end > s.start).map(|(_, s)| (s.start, s.end)).collect();
        ivs.sort();
        let mut merged: Vec<(u64, u64)> = Vec::new();
        for (a, b) in ivs {
            match merged.last_mut() {
                Some(last) if a <= last.1 => last.1 = last.1.max(b),
                _ => merged.push((a, b)),
            }
        }
        let rcv_nxt = match merged.first() {
            Some(&(0, b)) => b,
            _ => 0,
        };
        // SACK blocks: the merged ranges above rcv_nxt, the one holding the
        // most recently arrived segment first.
        let recency = |a: u64, b: u64| {
            arrived
                .iter()
                .filter(|(_, s)| s.end > s.start && s.start >= a && s.end <= b)
                .map(|(i, s)| (s.arrive.unwrap(), *i))
                .max()
        };
        let mut blocks: Vec<((u64, usize), (u64, u64))> =
            merged.iter().filter(|&&(a, _)| a > rcv_nxt).map(|&(a, b)| (recency(a, b).unwrap(), (a, b))).collect();
        blocks.sort_by_key(|b| std::cmp::Reverse(b.0));
        let blocks = blocks.into_iter().map(|(_, r)| r).collect();
        // TSecr: TSval of the latest-arrived peer segment that was not out of
        // order (RFC 7323: TS.Recent is not taken from segments beyond a hole).
        arrived.sort_by_key(|(i, s)| (s.arrive.unwrap(), *i));
        let tsecr =
            arrived.iter().rev().find(|(_, s)| s.start <= rcv_nxt && s.tsval.is_some()).and_then(|(_, s)| s.tsval);
        (Some(rcv_nxt), blocks, tsecr)
    }

    fn emit(&mut self, dir: Dir, t: u64, o: Out) -> Seg {
        let Out { start, end, syn, fin, rst, payload, fate, ack_upto } = o;
        let departure = t.saturating_sub(self.sender_delay(dir));
        let (mut rcv_nxt, blocks, tsecr) = self.receive_state(dir, departure);
        if let Some(upto) = ack_upto {
            let n = rcv_nxt.expect("ack_upto before the peer's SYN arrived");
            assert!(upto <= n, "ack_upto {upto} beyond what arrived ({n})");
            rcv_nxt = Some(upto);
        }
        let (src, dst) = match dir {
            Dir::C2S => (self.client, self.server),
            Dir::S2C => (self.server, self.client),
        };
        let mut flags = 0;
        if syn {
            flags |= SYN;
        }
        if fin {
            flags |= FIN;
        }
        if rst {
            flags |= RST;
        }
        if !payload.is_empty() {
            flags |= PSH;
        }
        let mut tcp = Tcp::new(src, dst, flags);
        tcp.window = self.window;
        tcp.seq = self.seq(dir, start);
        if let Some(n) = rcv_nxt {
            tcp.flags |= ACK;
            tcp.ack = self.seq(dir.other(), n);
        }
        let side = &self.sides[dir.idx()];
        let tsval = (self.timestamps && !rst).then(|| side.ts_base.wrapping_add((departure / self.ts_tick) as u32));
        if syn {
            tcp.options.push(TcpOpt::Mss(self.mss));
            if self.sack {
                tcp.options.push(TcpOpt::SackPermitted);
            }
        }
        if let Some(val) = tsval {
            tcp.options.push(TcpOpt::Timestamps { val, ecr: tsecr.unwrap_or(0) });
        }
        if syn {
            if let Some(ws) = self.wscale {
                tcp.options.push(TcpOpt::WindowScale(ws));
            }
        } else if self.sack && !rst && !blocks.is_empty() {
            let max = if tsval.is_some() { 3 } else { 4 };
            let peer = dir.other();
            tcp.options.push(TcpOpt::Sack(
                blocks.iter().take(max).map(|&(a, b)| (self.seq(peer, a), self.seq(peer, b))).collect(),
            ));
        }
        tcp.payload = payload.clone();
        let arrive = (fate == Fate::Delivered).then(|| t + self.receiver_delay(dir));
        if fate != Fate::LostBeforeSensor {
            self.packets.push(tcp.at(t));
        }
        let side = &mut self.sides[dir.idx()];
        side.sent.push(Sent { start, end, arrive, tsval, payload, syn, fin });
        Seg { dir, start, end, t, idx: side.sent.len() - 1 }
    }

    fn new_segment(&mut self, dir: Dir, t: u64, kind: Kind, fate: Fate) -> Seg {
        let start = self.sides[dir.idx()].next;
        let (end, syn, fin, rst, payload) = match kind {
            Kind::Syn => (start + 1, true, false, false, Vec::new()),
            Kind::Fin => (start + 1, false, true, false, Vec::new()),
            Kind::Data(p) => (start + p.len() as u64, false, false, false, p),
            Kind::Ack => (start, false, false, false, Vec::new()),
            Kind::Rst => (start, false, false, true, Vec::new()),
        };
        if syn {
            assert_eq!(start, 0, "SYN must be the first segment");
        }
        self.sides[dir.idx()].next = end;
        self.emit(dir, t, Out { start, end, syn, fin, rst, payload, fate, ack_upto: None })
    }

    /// Client SYN seen at `t`.
    pub fn syn(&mut self, t: u64) -> Seg {
        self.new_segment(Dir::C2S, t, Kind::Syn, Fate::Delivered)
    }

    /// Client SYN seen at `t`, with a fate.
    pub fn syn_fate(&mut self, t: u64, fate: Fate) -> Seg {
        self.new_segment(Dir::C2S, t, Kind::Syn, fate)
    }

    /// Server SYN/ACK seen at `t`.
    pub fn syn_ack(&mut self, t: u64) -> Seg {
        self.new_segment(Dir::S2C, t, Kind::Syn, Fate::Delivered)
    }

    /// Server SYN/ACK seen at `t`, with a fate.
    pub fn new_syn_ack_fate(&mut self, t: u64, fate: Fate) -> Seg {
        self.new_segment(Dir::S2C, t, Kind::Syn, fate)
    }

    /// The client sends its SYN again (same ISN) at `t`.
    pub fn resend_syn(&mut self, t: u64) -> Seg {
        let idx = self.sides[0].sent.iter().position(|s| s.syn).expect("no SYN sent yet");
        let seg = Seg { dir: Dir::C2S, start: 0, end: 1, t, idx };
        self.retransmit(seg, t)
    }

    /// SYN at `t`, SYN/ACK at `t + 2s`, ACK at `t + 2s + 2c`. Returns the time
    /// of the ACK.
    pub fn handshake(&mut self, t: u64) -> u64 {
        let syn = self.syn(t);
        let sa = self.syn_ack(self.answer_time(Dir::C2S, syn.t));
        let t3 = self.answer_time(Dir::S2C, sa.t);
        self.ack(Dir::C2S, t3);
        t3
    }

    /// `len` bytes of new data from `dir`, seen at `t`.
    pub fn data(&mut self, dir: Dir, t: u64, len: usize) -> Seg {
        self.data_fate(dir, t, len, Fate::Delivered)
    }

    pub fn data_fate(&mut self, dir: Dir, t: u64, len: usize, fate: Fate) -> Seg {
        let start = self.sides[dir.idx()].next;
        self.new_segment(dir, t, Kind::Data(pattern(start, len)), fate)
    }

    /// Given bytes as new data from `dir`, seen at `t`.
    pub fn data_bytes(&mut self, dir: Dir, t: u64, bytes: &[u8]) -> Seg {
        self.new_segment(dir, t, Kind::Data(bytes.to_vec()), Fate::Delivered)
    }

    /// A pure ACK from `dir` seen at `t` (with SACK blocks if enabled and
    /// there is a hole).
    pub fn ack(&mut self, dir: Dir, t: u64) -> Seg {
        self.new_segment(dir, t, Kind::Ack, Fate::Delivered)
    }

    /// A pure ACK from `dir` seen at `t` that acknowledges only up to offset
    /// `upto` of the peer's space (a partial ACK, as a receiver acking each
    /// MSS of a TSO/GRO-sized segment sends), though more has arrived.
    pub fn ack_upto(&mut self, dir: Dir, t: u64, upto: u64) -> Seg {
        let start = self.sides[dir.idx()].next;
        self.emit(
            dir,
            t,
            Out {
                start,
                end: start,
                syn: false,
                fin: false,
                rst: false,
                payload: Vec::new(),
                fate: Fate::Delivered,
                ack_upto: Some(upto),
            },
        )
    }

    /// FIN (with ACK) from `dir` at `t`.
    pub fn fin(&mut self, dir: Dir, t: u64) -> Seg {
        self.new_segment(dir, t, Kind::Fin, Fate::Delivered)
    }

    /// RST (with ACK once the peer's SYN was received) from `dir` at `t`.
    pub fn rst(&mut self, dir: Dir, t: u64) -> Seg {
        self.new_segment(dir, t, Kind::Rst, Fate::Delivered)
    }

    /// Client FIN at `t`, server FIN/ACK at `t + 2s`, client ACK `2c` later.
    /// Returns the time of the last ACK.
    pub fn close(&mut self, t: u64) -> u64 {
        let f = self.fin(Dir::C2S, t);
        let f2 = self.fin(Dir::S2C, self.answer_time(Dir::C2S, f.t));
        let t3 = self.answer_time(Dir::S2C, f2.t);
        self.ack(Dir::C2S, t3);
        t3
    }

    /// Send `seg` again (same sequence range, flags and payload) at `t`.
    pub fn retransmit(&mut self, seg: Seg, t: u64) -> Seg {
        self.retransmit_fate(seg, t, Fate::Delivered)
    }

    pub fn retransmit_fate(&mut self, seg: Seg, t: u64, fate: Fate) -> Seg {
        let orig = self.sides[seg.dir.idx()].sent[seg.idx].clone();
        self.emit(
            seg.dir,
            t,
            Out {
                start: orig.start,
                end: orig.end,
                syn: orig.syn,
                fin: orig.fin,
                rst: false,
                payload: orig.payload,
                fate,
                ack_upto: None,
            },
        )
    }

    /// The packets the sensor saw, sorted by time.
    pub fn packets(&self) -> Vec<Packet> {
        super::pcap::sorted(self.packets.clone())
    }
}

/// What [`Conversation::emit`] sends.
struct Out {
    start: u64,
    end: u64,
    syn: bool,
    fin: bool,
    rst: bool,
    payload: Vec<u8>,
    fate: Fate,
    /// Acknowledge only up to this offset of the peer's space.
    ack_upto: Option<u64>,
}

enum Kind {
    Syn,
    Fin,
    Data(Vec<u8>),
    Ack,
    Rst,
}
