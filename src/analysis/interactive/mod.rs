//! Keystrokes, echoes, chaff and application turnarounds of an encrypted
//! interactive session, from the sizes, times and TCP positions of its data
//! segments.
//!
//! - A keystroke is a client→server segment of the session's one-character
//!   size class (negotiated, or learnt when the session is tunnelled), sent
//!   while no bulk transfer is running, not at machine speed (a script, a
//!   paste), not as chaff, and not one client turnaround after a server
//!   segment (the client software answering by itself: channel EOF/CLOSE).
//!   Keystrokes count once the session shows typing: [`MIN_ECHOED`] keys
//!   answered by their own one-character echo (file transfers, `ssh host
//!   cmd` and keep-alives send key-sized packets that nothing echoes).
//! - Its echo is found by causality, not by "the next server packet": a
//!   server data segment answers the newest client segment its
//!   acknowledgement covers (a segment sent before a key reached the server
//!   cannot be its echo; a redraw after several keys answers the last). It
//!   is the key's echo when that newest segment is the key and the answer is
//!   one character's size. Several keys in flight (a far typist) pair each
//!   with its own echo; keys that draw no echo of their own (vim commands)
//!   give no sample.
//! - OpenSSH ≥ 9.5 keystroke-timing obfuscation sends chaff in trains (see
//!   [`chaff`]), only where both ends can. Each chaff PING is answered by a
//!   PONG: the one lag all PING → answer pairs share is the round trip to the
//!   server's SSH process.
//! - An application turnaround of a side is the time from the other side's
//!   last data segment to this side's answering data segment, taken in the
//!   authentication phase (before the first keystroke, and only when the
//!   protocol's clear-text start was seen), where every message demands an
//!   answer from the protocol peer.
//! - A terminal reply is a short multi-byte client segment answering a
//!   short server segment that answered no client data (a query the remote
//!   program sent by itself, not an echo) when no keystroke awaits its echo:
//!   the typist's terminal answering a query (device attributes, cursor
//!   position).

mod chaff;
mod levels;

pub use levels::{AnswerLevel, low_percentile};

use super::deque::InlineDeque;
use super::seq;
use super::stats::{Quantiles, Summary};
use crate::side::Side;
use crate::time::{Ts, ms};
use chaff::{Class, Released, Trains};
use levels::{AutoAnswer, bump, count_of, levels};

/// The longest keystroke → echo delay paired.
pub const ECHO_BOUND: Ts = 1_500_000_000;
/// Data segments in the authentication phase used for turnarounds.
const AUTH_SEGMENTS: u32 = 80;
/// Characters sent faster than this after the previous one of their size come from a program.
const MACHINE_GAP: Ts = 15_000_000;
/// A segment this large, recently, means bulk data is flowing.
pub(crate) const BULK_SEGMENT: u32 = 1000;
pub(crate) const BULK_WINDOW: Ts = 200_000_000;
/// Echo delays per window when looking for level shifts.
pub const LEVEL_WINDOW: usize = 5;
/// Client data segments remembered until a server segment answers them.
const MAX_SENT: usize = 64;
/// Echoes one server segment may carry (a relay that held them back).
const MAX_JOINED: usize = 8;
/// Chaff packets that show keystroke-timing obfuscation is on.
const MIN_CHAFF: u64 = 10;
/// Keys answered by their own one-character echo before a session counts as typed in.
pub const MIN_ECHOED: u64 = 3;
/// Chaff PINGs remembered while awaiting PONGs, and PING → answer lags kept.
const MAX_CHAFF_SENT: usize = 128;
const MAX_PONG_LAGS: usize = 16384;
/// Packets of one automatic answer follow each other within this.
const AUTO_BURST: Ts = 2_000_000;
/// The least time a person takes to react to what the server showed, ms.
/// Before the first keystroke, a client packet sooner than this after the
/// client's usual answer time is the client software answering (the channel
/// EOF of `ssh host cmd`), even when a stalled host or a jittery path made
/// that answer late.
const REACTION_MS: f64 = 100.0;
const MAX_TURN: usize = 64;
const MAX_ECHO_LOG: usize = 4096;
/// A query sent this long after the server's previous data waited behind nothing.
const NAGLE_HOLD: Ts = 200_000_000;
/// Terminal replies that agree make a level; one alone may be a person's key.
const MIN_TERMINAL_REPLIES: usize = 2;

/// Where a data segment sits in the TCP byte streams: the end of its own
/// bytes, and the acknowledgement it carries for the other side's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pos {
    pub end: u32,
    pub ack: Option<u32>,
}

/// A client data segment awaiting the server's answer.
#[derive(Debug, Clone, Copy, Default)]
struct Sent {
    ts: Ts,
    end: u32,
    len: u32,
    /// A keystroke whose one-character echo is this many one-key units (0: not a keystroke).
    echo_units: u8,
    /// One chaff unit (a PING) of a train.
    chaff: bool,
    /// The client software answering by itself (an echo of a key typed on the server's side, EOF/CLOSE).
    auto: bool,
}

/// How a session's server shows the keys typed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Echoes {
    /// A terminal echoes each key at once (an SSH pty): echoes are paired
    /// with their keys by causality, and their delays are the round trip to
    /// the far responder.
    #[default]
    Terminal,
    /// One screen update answers every key pending (VNC framebuffer
    /// updates). Updates wait for the client's next request, so their
    /// delays describe the session, not the path.
    Screen,
    /// A remote desktop's screen (RDP): the dissector tells keys and pairs
    /// each press with its echo itself ([`crate::analysis::desktop`]); the
    /// delays include the server's render time, which no path explains.
    Desktop,
    /// A VPN tunnel's inner traffic ([`crate::analysis::tunnel`]): the
    /// analysis tells keys, echoes and the round trip through the tunnel
    /// itself. Echoes time the gateway's inside (the server behind it), not
    /// the path a verdict weighs.
    Tunnel,
}

/// In declaration order (`repr(C)`): what every data segment reads or
/// writes first, so it shares a few cache lines; the per-echo figures and
/// what only the record reads after.
#[derive(Debug, Default)]
#[repr(C)]
pub struct Interactive {
    /// One-character packet size, when known from the negotiated cipher.
    keystroke_size: Option<u32>,
    /// The size class in force (see [`Interactive::ks_size`]), worked out
    /// when the negotiated size or the size counts change, not on every
    /// packet: the counts are a separate allocation, a cache miss away.
    ks: Option<u32>,
    auth_segments: u32,
    interactive: bool,
    /// The protocol's clear-text start was seen: the first data segments are
    /// its authentication exchange, whose turnarounds time each side.
    start_seen: bool,
    /// How the server shows keys: a terminal's echoes or screen updates.
    echoes: Echoes,
    /// The last server segment was a keystroke's one-character echo: the
    /// client software does not answer it, so the next client packet is the person's.
    last_echoed: bool,
    /// The last server segment answered a keystroke (an echo, a redraw): it
    /// is no terminal query, which a program sends by itself.
    answered_key: bool,
    /// ... or may have answered one (see [`Interactive::answer`]): no key typed on the server's side.
    echo_like: bool,
    /// Time since the server's data segment before the last one, ns.
    server_gap: Ts,
    last_server: Option<Ts>,
    last: Option<(Side, Ts, u32)>,
    /// First data segment of the current run of segments from one side.
    run_start: Option<(Side, Ts)>,
    last_bulk: Option<Ts>,
    /// The last small client packet (size, time), for machine-speed characters.
    last_small: Option<(u32, Ts)>,
    /// How fast the client software answers by itself: worked out from its
    /// authentication turnarounds each time one is added (none are once
    /// authentication is over), not on every packet.
    auto_answer: Option<AutoAnswer>,
    /// Time of the last client packet taken as an automatic answer.
    auto_burst: Option<Ts>,
    /// How fast the server software answers by itself (its authentication turnarounds).
    server_auto: Option<AutoAnswer>,
    /// A small server packet that answered nothing by itself: a key typed on
    /// the server's side (a reverse tunnel), if the client echoes it (size, time).
    server_key: Option<(u32, Ts)>,
    /// Keys typed on the server's side and echoed by the client.
    server_keys: u64,
    /// Client data segments not yet answered, oldest first.
    sent: InlineDeque<Sent, 4>,
    size_counts: Vec<(u32, u32)>,
    /// Keystroke candidates per size class (no bulk running, not chaff),
    /// so keystrokes sent before the size class was learnt still count.
    candidates: Vec<(u32, u64)>,
    pub keystrokes: u64,
    /// Keys answered by their own one-character echo.
    echoed: u64,
    /// Chaff units (PINGs) in confirmed trains and provisional runs.
    chaff: u64,
    trains: Trains,
    /// Recent chaff PINGs (send times), awaiting PONGs.
    chaff_sent: InlineDeque<Ts, 2>,
    /// The current train's last PING and the last PONG-sized answer after it.
    train_end: (Option<Ts>, Option<Ts>),
    /// Last PING of each ended train → the last PONG-sized answer before the next
    /// train: the one pairing no other PING in flight can blur (ms).
    ping_clean: Summary,
    /// Keystroke → echo delays, ms.
    pub echo: Summary,
    /// Echo delays in order (bounded), for level shifts.
    pub echo_log: Vec<f32>,
    /// Chaff units per size class, so chaff sent before the class was learnt counts too.
    grid_counts: Vec<(u32, u64)>,
    /// Delays from each recent PING to each PONG-sized answer after it (ms, bounded):
    /// the true PING → PONG delay is the one lag they share.
    pong_lags: Vec<f32>,
    /// In-train units answered exactly (ms): PONGs, and the echoes of keys
    /// that could not be told from chaff, which the pty makes a little later.
    chaff_lags: Vec<f32>,
    /// Answers from each side during authentication (ms), indexed by [`Side`].
    pub turnaround: [Vec<f64>; 2],
    /// Short client replies to server queries with no keystroke pending (ms).
    pub terminal: Summary,
    /// The same, only where the query was the first segment of the server's run
    /// (a query sent right behind other data can wait for a relay's Nagle timer).
    pub terminal_clean: Summary,
    /// Both kinds of replies in order (bounded), for a level of agreeing replies.
    terminal_log: Vec<(f32, bool)>,
}

impl Interactive {
    pub fn new(keystroke_size: Option<u32>) -> Interactive {
        Interactive { keystroke_size, ks: keystroke_size, ..Default::default() }
    }

    /// Keystroke analysis of a session whose server answers keys with
    /// screen updates (keystroke sizes unknown: each key is reported).
    pub fn screen() -> Interactive {
        Interactive { echoes: Echoes::Screen, ..Default::default() }
    }

    /// Keystroke analysis of a remote desktop session: its dissector reports
    /// keys, echoes and the client's answers ([`Interactive::set_keys`],
    /// [`Interactive::add_echo`], [`Interactive::add_turnaround`]).
    pub fn desktop() -> Interactive {
        Interactive { echoes: Echoes::Desktop, ..Default::default() }
    }

    /// A VPN tunnel's inner traffic: keys, echoes and round trips told by
    /// its analysis ([`Interactive::set_keys`], [`Interactive::add_echo`]).
    pub fn tunnel() -> Interactive {
        Interactive { echoes: Echoes::Tunnel, ..Default::default() }
    }

    /// Keys told by the dissector, and how many drew their own echo.
    pub fn set_keys(&mut self, keystrokes: u64, echoed: u64) {
        (self.keystrokes, self.echoed) = (keystrokes, echoed);
        self.interactive |= keystrokes > 0;
    }

    /// An echo paired by the dissector (ms).
    pub fn add_echo(&mut self, d: f64) {
        self.record_echo(d);
    }

    /// An answer of `side`'s real protocol peer found by the dissector
    /// (ms): an application turnaround, as in authentication.
    pub fn add_turnaround(&mut self, side: Side, d: f64) {
        if self.turnaround[side as usize].len() < MAX_TURN {
            self.turnaround[side as usize].push(d);
        }
    }

    /// A session a person drives with a pointer as well as keys (a remote
    /// desktop): its client side is a person's even where nobody typed.
    pub fn pointer_driven(&self) -> bool {
        self.echoes == Echoes::Desktop
    }

    /// Whether the server side's answers may come from peers at several
    /// depths (an SSH session tunnelled through another: the outer and the
    /// inner server authenticate), so its deepest level counts. A desktop's
    /// connection-sequence answers all come from its one server: the lowest
    /// level counts, and a slow answer or two do not make a deeper one.
    pub fn server_answers_nest(&self) -> bool {
        self.echoes == Echoes::Terminal
    }

    /// Whether echo delays are round trips to the far responder.
    pub fn echoes_time_the_path(&self) -> bool {
        self.echoes == Echoes::Terminal
    }

    /// One-character packet size from the negotiated cipher, when known.
    pub fn keystroke_size(&self) -> Option<u32> {
        self.keystroke_size
    }

    pub fn set_keystroke_size(&mut self, size: Option<u32>) {
        self.keystroke_size = size;
        self.ks = self.size_class();
    }

    /// The protocol's clear-text start was seen (its version exchange):
    /// the data segments that follow are its authentication exchange.
    pub fn set_start_seen(&mut self) {
        self.start_seen = true;
    }

    /// Whether both ends can send keystroke-timing chaff (see [`chaff`]), and
    /// whether the client sends a key inside a train together with a PING.
    pub fn set_chaff_capability(&mut self, capable: Option<bool>, key_with_ping: bool) {
        self.trains.set_capability(capable, key_with_ping);
    }

    /// The size class in force; 36 (chacha20-poly1305, AES-GCM) while
    /// nothing is known.
    fn ks_size(&self) -> u32 {
        self.ks.unwrap_or(36)
    }

    /// The size class of a one-character packet: negotiated, else learnt.
    /// Worked out again each time either changes, into `ks`.
    fn size_class(&self) -> Option<u32> {
        let learnt = self.size_counts.iter().filter(|(_, n)| *n >= 5).max_by_key(|(s, n)| (*n, u32::MAX - s));
        match (self.keystroke_size, learnt) {
            // A session carried inside another (ssh -J seen on the outer hop)
            // wraps each keystroke: the learnt class wins when the negotiated one is rare.
            (Some(k), Some(&(s, n))) => {
                let nk = count_of(&self.size_counts, k);
                Some(if nk * 2 < n { s } else { k })
            }
            (Some(k), None) => Some(k),
            (None, Some(&(s, _))) => Some(s),
            (None, None) => None,
        }
    }

    /// Keystrokes in the session: those of the final size class, including
    /// any sent before that class was learnt; none until the session showed
    /// typing (keys answered by their echo, or chaff trains), except where
    /// keys are seen in clear (VNC).
    pub fn keystroke_count(&self) -> u64 {
        // Chaff trains are typing too: the client sends them only while a person types in a tty.
        if self.echoes != Echoes::Screen && self.echoed < MIN_ECHOED && !self.obfuscated() {
            return 0;
        }
        let ks = self.ks_size();
        let late = count_of(&self.candidates, ks);
        self.keystrokes.max(late) + u64::from(self.trains.provisional())
    }

    /// Is a client packet at `ts` the client software answering the server's
    /// last packet by itself (channel EOF/CLOSE, window adjust)? Such answers
    /// come one client turnaround after it, as in authentication; a person's
    /// keystroke lands there only by chance. An echo is never answered so.
    fn automatic(&mut self, ts: Ts, len: u32) -> bool {
        let t0 = match self.last {
            // The rest of an automatic burst (EOF then CLOSE) is automatic too.
            Some((Side::Client, t, _)) => return self.auto_burst.is_some_and(|b| b == t && ts - t <= AUTO_BURST),
            Some((Side::Server, t, _)) if !self.last_echoed => t,
            // After an echo too, where the client answers within a few ms (the
            // sensor beside it): a person's next key lands there about once in
            // a hundred, while the client echoing a key typed on the server's
            // side (a reverse tunnel) always does.
            Some((Side::Server, t, _)) if self.auto_answer.is_some_and(|a| a.tight()) => t,
            _ => return false,
        };
        // Typing has begun once a keystroke, or a candidate of this size, was seen.
        let typed = self.interactive || count_of(&self.candidates, len) > 0;
        let auto = self.auto_answer.is_some_and(|a| a.covers(ms(ts - t0), typed));
        if auto {
            self.auto_burst = Some(ts);
        }
        auto
    }

    /// A keystroke at `ts` (found by size, or seen in clear as in VNC): it
    /// awaits its echo; `end` is where its bytes end in the client's stream.
    pub fn keystroke(&mut self, ts: Ts, end: u32) {
        self.key(ts, end, 1);
    }

    fn key(&mut self, ts: Ts, end: u32, echo_units: u8) {
        self.keystrokes += 1;
        self.interactive = true;
        self.remember(Sent { ts, end, len: 0, echo_units, chaff: false, auto: false });
    }

    fn remember(&mut self, s: Sent) {
        if self.sent.len() == MAX_SENT {
            self.sent.pop_front();
        }
        self.sent.push_back(s);
    }

    /// Past authentication: keys may be typed on either side.
    fn interactive_start(&self) -> bool {
        self.auth_segments >= 8
    }

    /// Keys typed on the server's side of the session (a reverse tunnel,
    /// `ssh -R`, typed into from the far end): server packets that answered
    /// nothing, each echoed by the client software at its own pace. None
    /// until [`MIN_ECHOED`] such echoes were seen.
    pub fn server_keystroke_count(&self) -> u64 {
        if self.server_keys >= MIN_ECHOED { self.server_keys } else { 0 }
    }

    /// Keystroke-timing obfuscation (chaff) was seen: keystrokes sent inside
    /// a chaff train cannot be told from chaff by size or time (OpenSSH 10),
    /// so the keystroke count is then a lower bound.
    pub fn obfuscated(&self) -> bool {
        self.chaff_count() >= MIN_CHAFF && self.trains.trains > 0
    }

    /// Chaff in the session: units of the final size class in trains.
    pub fn chaff_count(&self) -> u64 {
        let ks = self.ks_size();
        let late = count_of(&self.grid_counts, ks);
        self.chaff.max(late).saturating_sub(u64::from(self.trains.provisional()))
    }

    /// Whether both ends are known (from their banners) to send chaff.
    pub fn chaff_capable(&self) -> Option<bool> {
        self.trains.capable()
    }

    /// Feed one encrypted data segment (new data, not a retransmission).
    /// `pos` is its place in the TCP streams (None: unknown, e.g. VNC
    /// updates). Returns the echo delay (ms) when the segment is a keystroke's echo.
    pub fn on_data(&mut self, ts: Ts, from: Side, len: u32, pos: Option<Pos>) -> Option<f64> {
        let echo = match from {
            Side::Client => {
                self.on_client(ts, len, pos.map_or(0, |p| p.end));
                None
            }
            Side::Server => self.on_server(ts, len, pos.and_then(|p| p.ack)),
        };
        if !self.interactive && self.auth_segments < AUTH_SEGMENTS {
            self.auth_segments += 1;
            // The answer is to the first message of the other side's run: the
            // later ones of the run may be unsolicited.
            if self.start_seen
                && let Some((side, t0)) = self.run_start
                && side != from
                && self.turnaround[from as usize].len() < MAX_TURN
            {
                self.turnaround[from as usize].push(ms(ts - t0));
                let auto = AutoAnswer::from_turnarounds(&self.turnaround[from as usize], REACTION_MS);
                match from {
                    Side::Client => self.auto_answer = auto,
                    Side::Server => self.server_auto = auto,
                }
            }
        }
        if self.run_start.is_none_or(|(side, _)| side != from) {
            self.run_start = Some((from, ts));
        }
        self.last = Some((from, ts, len));
        echo
    }

    fn on_client(&mut self, ts: Ts, len: u32, end: u32) {
        let small = len <= 128;
        let since_same = self.last_small.filter(|&(l, _)| small && l == len).map(|(_, p)| ts - p);
        if small {
            self.last_small = Some((len, ts));
        }
        let typing = self.auth_segments >= 8;
        if small && typing {
            bump(&mut self.size_counts, len);
            self.ks = self.size_class();
        }
        let ks = self.ks_size();
        if len >= BULK_SEGMENT {
            self.last_bulk = Some(ts);
        }
        let bulk = self.last_bulk.is_some_and(|b| ts - b < BULK_WINDOW);
        let other = Sent { ts, end, len, echo_units: 0, chaff: false, auto: false };
        if small && typing && !bulk && len.is_multiple_of(ks) && self.trains.possible() {
            let mut released = Released::default();
            let class = self.trains.classify(ts, len / ks, &mut released);
            self.keystrokes += u64::from(released.keys);
            if released.train_ended {
                self.end_train();
            }
            if released.keys > 0 {
                self.interactive = true;
            }
            match class {
                Class::Chaff(units) if !self.automatic_close(ts, len) => {
                    self.on_chaff(ts, units, ks);
                    self.remember(Sent { chaff: units == 1 && len == ks, ..other });
                    return;
                }
                Class::KeyWithPing => {
                    self.on_chaff(ts, 1, ks);
                    bump(&mut self.candidates, ks);
                    self.key(ts, end, 2);
                    return;
                }
                _ => {}
            }
        }
        let machine = since_same.is_some_and(|d| d < MACHINE_GAP);
        // The client software echoing a key typed on the server's side: one
        // client turnaround after it, plus the pty's few ms.
        let server_echo = self.server_key.take().is_some_and(|(l, t)| {
            l == len
                && self.last == Some((Side::Server, t, l))
                && self.auto_answer.is_some_and(|a| a.covers_echo(ms(ts - t)))
        });
        if server_echo {
            self.server_keys += 1;
        }
        let auto = !bulk && !machine && (server_echo || self.automatic(ts, len));
        let bulk = bulk || machine || auto;
        // Packets of another size on the grid are chaff of a class not learnt yet.
        let grid = self.trains.possible() && since_same.is_some_and(chaff::on_grid);
        if small && !bulk && typing && !grid {
            bump(&mut self.candidates, len);
        }
        if len == ks && !bulk {
            self.key(ts, end, 1);
            return;
        }
        // A short multi-byte answer to a query-sized server segment that the
        // program sent by itself (a terminal query is a few bytes: ESC [ c,
        // ESC [ 6 n), nothing awaiting an echo.
        if self.interactive
            && len > ks
            && len <= ks + 48
            && !self.answered_key
            && !self.sent.iter().any(|s| s.echo_units > 0)
            && let Some((Side::Server, t0, qlen)) = self.last
            && qlen > ks
            && qlen <= ks + 16
            && ts - t0 <= ECHO_BOUND
        {
            let d = ms(ts - t0);
            // Nothing went before it that a relay's Nagle timer could hold it behind.
            let clean = self.run_start == Some((Side::Server, t0)) || self.server_gap > NAGLE_HOLD;
            self.terminal.add(d);
            if clean {
                self.terminal_clean.add(d);
            }
            if self.terminal_log.len() < MAX_ECHO_LOG {
                self.terminal_log.push((d as f32, clean));
            }
        }
        self.remember(Sent { auto, ..other });
    }

    /// The client's CHANNEL_CLOSE answering the server's close (a segment
    /// larger than a PONG) inside a train: automatic, not chaff.
    fn automatic_close(&mut self, ts: Ts, len: u32) -> bool {
        let ks = self.ks_size();
        matches!(self.last, Some((Side::Server, _, l)) if l > 2 * ks) && self.automatic(ts, len)
    }

    /// A train ended: its last PING was answered by the last PONG-sized packet since.
    fn end_train(&mut self) {
        if let (Some(ping), Some(pong)) = std::mem::take(&mut self.train_end)
            && (0..=ECHO_BOUND).contains(&(pong - ping))
        {
            self.ping_clean.add(ms(pong - ping));
        }
    }

    fn on_chaff(&mut self, ts: Ts, units: u32, ks: u32) {
        self.train_end = (Some(ts), None);
        self.chaff += u64::from(units);
        for _ in 0..units {
            bump(&mut self.grid_counts, ks);
        }
        if self.chaff_sent.len() == MAX_CHAFF_SENT {
            self.chaff_sent.pop_front();
        }
        self.chaff_sent.push_back(ts);
    }

    fn on_server(&mut self, ts: Ts, len: u32, ack: Option<u32>) -> Option<f64> {
        self.server_gap = self.last_server.map_or(Ts::MAX, |p| ts - p);
        self.last_server = Some(ts);
        if len >= BULK_SEGMENT {
            self.last_bulk = Some(ts);
        }
        let ks = self.ks_size();
        // Several PINGs are in flight at once when the round trip exceeds the
        // grid: every PONG-sized answer is a candidate for each of them.
        // PONGs, or several joined by a relay.
        if self.train_end.0.is_some() && len.is_multiple_of(ks) && len <= 4 * ks {
            self.train_end.1 = Some(ts);
        }
        if len == ks && !self.chaff_sent.is_empty() {
            while self.chaff_sent.front().is_some_and(|&c| ts - c > ECHO_BOUND) {
                self.chaff_sent.pop_front();
            }
            for &c in self.chaff_sent.iter() {
                if self.pong_lags.len() < MAX_PONG_LAGS && ts >= c {
                    self.pong_lags.push(ms(ts - c) as f32);
                }
            }
        }
        let echo = match ack {
            Some(ack) if self.echoes == Echoes::Terminal => self.answer(ts, len, ack),
            _ => self.answer_in_order(ts),
        };
        if let Some(d) = echo {
            self.record_echo(d);
        }
        // A small packet that answered neither a key nor, at the server's own
        // pace, whatever the client sent last: typed on the server's side.
        let by_itself = match self.last {
            Some((Side::Client, t, _)) => self.server_auto.is_some_and(|a| a.covers(ms(ts - t), true)),
            _ => false,
        };
        self.server_key =
            (len <= 128 && !self.echo_like && !by_itself && self.interactive_start()).then_some((len, ts));
        // A one-character echo: larger answers (a command's output) may end
        // with the channel's EOF/CLOSE, which the client software answers.
        // Until the size class is learnt keys are not paired: a server segment of
        // a candidate keystroke's size is taken for an echo.
        self.last_echoed = len == ks && echo.is_some() || !self.interactive && count_of(&self.candidates, len) > 0;
        echo
    }

    /// The causal answer: the client segments `ack` covers that no earlier
    /// server segment answered are what this one answers, the newest last.
    /// They are keystrokes with their echoes when the newest is a keystroke
    /// and the answer holds exactly one echo (of one-key units) for each key
    /// covered, in order (a relay that held echoes back sends several at
    /// once). Otherwise which key it answers is unknown: a key had no echo of
    /// its own (an editor command), or a later key reached a relay before
    /// this answer passed it. No sample then. Returns the last delay.
    fn answer(&mut self, ts: Ts, len: u32, ack: u32) -> Option<f64> {
        let ks = self.ks_size();
        // Smaller than one character's echo: the carrying session's own
        // traffic (a window adjust of the outer hop of `ssh -J`), no answer.
        if len < ks {
            (self.answered_key, self.echo_like) = (false, false);
            return None;
        }
        let covered = self.sent.iter().take_while(|s| seq::le(s.end, ack)).count();
        let (mut keys, mut n, mut units) = ([0 as Ts; MAX_JOINED], 0, 0u32);
        let mut newest = None;
        for _ in 0..covered {
            let Some(s) = self.sent.pop_front() else { break };
            if s.echo_units > 0 {
                if n < MAX_JOINED {
                    keys[n] = s.ts;
                }
                n += 1;
                units += u32::from(s.echo_units);
            }
            newest = Some(s);
        }
        self.answered_key = newest.is_some_and(|s| s.echo_units > 0);
        // A same-sized answer to a client packet that was not automatic may be
        // an echo of a key sent before its size class was learnt.
        self.echo_like = self.answered_key || newest.is_some_and(|s| !s.auto && s.len == len);
        let s = newest?;
        // A PING answered exactly: its PONG, or a key's echo that left on the grid.
        if s.chaff && s.end == ack && len == ks && self.chaff_lags.len() < MAX_PONG_LAGS {
            self.chaff_lags.push(ms(ts - s.ts) as f32);
        }
        if s.echo_units == 0 || len != units * ks || n > MAX_JOINED {
            return None;
        }
        let mut last = None;
        for &k in &keys[..n] {
            if (0..=ECHO_BOUND).contains(&(ts - k)) {
                self.echoed += 1;
                if let Some(earlier) = last.replace(ms(ts - k)) {
                    self.record_echo(earlier);
                }
            }
        }
        last
    }

    fn record_echo(&mut self, d: f64) {
        self.echo.add(d);
        if self.echo_log.len() < MAX_ECHO_LOG {
            self.echo_log.push(d as f32);
        }
    }

    /// Without TCP positions: the oldest keystroke pending (every one, for
    /// VNC's framebuffer updates, each a sample) within the bound. Returns the last delay.
    fn answer_in_order(&mut self, ts: Ts) -> Option<f64> {
        let mut echo = None;
        self.answered_key = self.sent.iter().any(|s| s.echo_units > 0);
        self.echo_like = self.answered_key;
        while let Some(s) = self.sent.pop_front() {
            if s.echo_units == 0 || !(0..=ECHO_BOUND).contains(&(ts - s.ts)) {
                continue;
            }
            self.echoed += 1;
            if let Some(earlier) = echo.replace(ms(ts - s.ts)) {
                self.record_echo(earlier);
            }
            if self.echoes == Echoes::Terminal {
                break;
            }
        }
        echo
    }

    /// Chaff PING → PONG delays: the lags within the densest 1 ms window.
    /// Wrong pairings fall at multiples of the (randomly fuzzed) grid and
    /// smear out; the true delay is the same for every pair. Behind a relay
    /// that re-times the train to its own round trip (a port forwarder's
    /// Nagle timer) a wrong pairing can be as dense: where the last PING of
    /// each train (no other in flight after it) says otherwise, those
    /// pairings are the figure. Only where chaff was seen: PONG-sized answers
    /// are ordinary echoes otherwise.
    pub fn ping_rtt(&self) -> Option<Quantiles> {
        if !self.obfuscated() {
            return None;
        }
        let clean = self.ping_clean.quantiles();
        let dense = self.densest_pong_lag();
        match (dense, clean) {
            (Some(d), Some(c)) if (d.p50 - c.p50).abs() > 2.0_f64.max(0.1 * c.p50) => Some(c),
            (None, c) => c,
            (d, _) => d,
        }
    }

    fn densest_pong_lag(&self) -> Option<Quantiles> {
        super::stats::densest(&self.pong_lags, |_| 1.0, 3)
    }

    /// Keystrokes including an estimate of those hidden in chaff trains
    /// (OpenSSH 10 sends them at the size and on the grid of chaff): sshd
    /// answers a PING at once, while a key's echo passes through the pty and
    /// the shell first, a fraction of a millisecond later. Where the path
    /// keeps that difference apart (the echo delay of the keys seen, minus
    /// the PONG delay, at least four times the PONG delays' own spread), the
    /// in-train answers nearer the echo delay are counted as keys; else
    /// `None` (a jittery path, a relay that re-times packets).
    pub fn keystroke_estimate(&self) -> Option<u64> {
        let seen = self.keystroke_count();
        if !self.obfuscated() {
            return Some(seen);
        }
        let echo = self.echo.quantiles()?;
        if echo.samples < 2 || self.chaff_lags.len() < 10 {
            return None;
        }
        let mut lags: Vec<f64> = self.chaff_lags.iter().map(|&x| x as f64).collect();
        lags.sort_by(f64::total_cmp);
        let pong = lags[lags.len() / 2];
        let mut dev: Vec<f64> = lags.iter().map(|x| (x - pong).abs()).collect();
        dev.sort_by(f64::total_cmp);
        let spread = dev[dev.len() / 2].max(0.005);
        let apart = echo.p50 - pong;
        if apart < 4.0 * spread {
            return None;
        }
        let cut = pong + apart / 2.0;
        let hidden = lags.iter().filter(|&&x| x > cut && x < echo.p50 + apart).count() as u64;
        Some(seen + hidden)
    }

    /// Robust floor of a side's authentication turnarounds. Answers no
    /// faster than `transport_floor` are grouped into latency levels; a
    /// session tunnelled through another (`ssh -J` seen on the outer hop)
    /// shows two on its server side: the outer and the inner peer. With
    /// `deepest`, the floor is that of the deepest level holding at least 3
    /// answers, else of the lowest such level; each floor is a 20th percentile.
    pub fn app_floor(&self, side: Side, transport_floor: Option<f64>, deepest: bool) -> Option<(f64, Summary)> {
        let min_ok = transport_floor.map_or(0.0, |t| t * 0.8);
        let mut v: Vec<f64> = self.turnaround[side as usize].iter().copied().filter(|&x| x >= min_ok).collect();
        let mut sum = Summary::default();
        v.iter().for_each(|&x| sum.add(x));
        if v.len() < 3 {
            return None;
        }
        v.sort_by(f64::total_cmp);
        let levels = levels(&v, 3);
        // Answers that need a person (a password prompt) are spread out and form no level.
        let level = if deepest { levels.last() } else { levels.first() };
        Some((level?.floor, sum))
    }

    /// The typist's terminal answering by itself: the lowest level of at
    /// least two replies that agree, from clean replies (the query was the
    /// first segment of the server's run), else, when `unclean` allows, from
    /// all. A single reply may have been a person's key (an arrow pressed
    /// after a prompt), so it makes no level.
    pub fn terminal_level(&self, unclean: bool) -> Option<AnswerLevel> {
        let pick = |clean_only: bool| {
            let mut v: Vec<f64> =
                self.terminal_log.iter().filter(|(_, c)| *c || !clean_only).map(|&(d, _)| d as f64).collect();
            v.sort_by(f64::total_cmp);
            levels(&v, MIN_TERMINAL_REPLIES).first().copied()
        };
        pick(true).or_else(|| if unclean { pick(false) } else { None })
    }

    /// Echo-delay windows: the robust floor of each window of echoes, in order.
    pub fn echo_windows(&self) -> Vec<f64> {
        self.echo_log
            .chunks(LEVEL_WINDOW)
            .filter(|c| c.len() >= 3)
            .map(|c| {
                let mut v: Vec<f64> = c.iter().map(|&x| x as f64).collect();
                v.sort_by(f64::total_cmp);
                low_percentile(&v)
            })
            .collect()
    }
}

#[cfg(test)]
pub(crate) mod sim;
#[cfg(test)]
mod tests;
