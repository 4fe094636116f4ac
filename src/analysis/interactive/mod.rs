//! Keystrokes, echoes, chaff and application turnarounds of an encrypted
//! interactive session, from the sizes and times of its data segments.
//!
//! - A keystroke is a client→server segment of the session's one-character
//!   size class (negotiated, or learnt when the session is tunnelled), sent
//!   while no bulk transfer is running, not at machine speed (a script), and
//!   not one client turnaround after a server segment (the client software
//!   answering by itself: channel EOF/CLOSE).
//! - Its echo is the next server→client data segment within [`ECHO_BOUND`].
//! - OpenSSH ≥ 9.5 keystroke-timing obfuscation sends chaff of the same size
//!   on a ~20 ms grid; grid-following segments are counted as chaff. Each
//!   chaff PING is answered by a PONG: the one lag all PING → answer pairs
//!   share is the round trip to the server's SSH process.
//! - An application turnaround of a side is the time from the other side's
//!   last data segment to this side's answering data segment, taken in the
//!   authentication phase (before the first keystroke), where every message
//!   demands an answer from the protocol peer.
//! - A terminal reply is a short multi-byte client segment answering a server
//!   segment when no keystroke awaits its echo: the typist's terminal answering
//!   a query (device attributes, cursor position).

use super::deque::InlineDeque;
use super::stats::{Quantiles, Summary};
use crate::flow::Side;
use crate::time::{Ts, ms};

/// The longest keystroke → echo delay paired.
pub const ECHO_BOUND: Ts = 1_500_000_000;
/// Data segments in the authentication phase used for turnarounds.
const AUTH_SEGMENTS: u32 = 80;
/// Chaff grid of ObscureKeystrokeTiming (default 20 ms), with tolerance.
const CHAFF_GRID: (Ts, Ts) = (15_000_000, 25_000_000);
/// A server segment this large, recently, means bulk output is flowing.
const BULK_SEGMENT: u32 = 1000;
const BULK_WINDOW: Ts = 200_000_000;
/// Echo delays per window when looking for level shifts.
pub const LEVEL_WINDOW: usize = 5;
const MAX_PENDING: usize = 64;
/// Chaff packets that show keystroke-timing obfuscation is on.
const MIN_CHAFF: u64 = 10;
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
/// Slack around the client's usual answer time, ms: a busy client host
/// answers a few ms late.
const AUTO_SLACK_MS: f64 = 2.0;
const MAX_TURN: usize = 64;
const MAX_ECHO_LOG: usize = 4096;

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
    /// One server update answers every key pending (VNC framebuffer updates);
    /// otherwise each echo answers the oldest pending key (SSH).
    pub echo_all_pending: bool,
    /// Echo delays measure the round trip to the far responder (an SSH pty
    /// echoes at once). VNC updates wait for the client's next request, so
    /// there they only describe the session, not the path.
    pub echo_is_round_trip: bool,
    /// The last server segment was a keystroke's one-character echo: the
    /// client software does not answer it, so the next client packet is the person's.
    last_echoed: bool,
    last: Option<(Side, Ts, u32)>,
    /// First data segment of the current run of segments from one side.
    run_start: Option<(Side, Ts)>,
    last_bulk: Option<Ts>,
    /// The last small client packet (size, time), for the chaff grid.
    last_small: Option<(u32, Ts)>,
    /// How fast the client software answers by itself: worked out from its
    /// authentication turnarounds each time one is added (none are once
    /// authentication is over), not on every packet.
    auto_answer: Option<AutoAnswer>,
    /// Time of the last client packet taken as an automatic answer.
    auto_burst: Option<Ts>,
    size_counts: Vec<(u32, u32)>,
    /// Keystroke candidates per size class (no bulk running, off the chaff grid),
    /// so keystrokes sent before the size class was learnt still count.
    candidates: Vec<(u32, u64)>,
    pub keystrokes: u64,
    pub chaff: u64,
    /// Keystrokes awaiting their echo, oldest first.
    pending: InlineDeque<Ts, 4>,
    /// Recent chaff PINGs (send times), awaiting PONGs.
    chaff_sent: InlineDeque<Ts, 2>,
    /// Keystroke → echo delays, ms.
    pub echo: Summary,
    /// Echo delays in order (bounded), for level shifts.
    pub echo_log: Vec<f32>,
    /// Grid-following small client packets per size class.
    grid_counts: Vec<(u32, u64)>,
    /// Delays from each recent PING to each PONG-sized answer after it (ms, bounded):
    /// the true PING → PONG delay is the one lag they share.
    pong_lags: Vec<f32>,
    /// Answers from each side during authentication (ms), indexed by [`Side`].
    pub turnaround: [Vec<f64>; 2],
    /// Short client replies to server segments with no keystroke pending (ms).
    pub terminal: Summary,
    /// The same, only where the query was the first segment of the server's run
    /// (a query sent right behind other data can wait for a relay's Nagle timer).
    pub terminal_clean: Summary,
}

impl Interactive {
    pub fn new(keystroke_size: Option<u32>) -> Interactive {
        Interactive { keystroke_size, ks: keystroke_size, echo_is_round_trip: true, ..Default::default() }
    }

    /// One-character packet size from the negotiated cipher, when known.
    pub fn keystroke_size(&self) -> Option<u32> {
        self.keystroke_size
    }

    pub fn set_keystroke_size(&mut self, size: Option<u32>) {
        self.keystroke_size = size;
        self.ks = self.size_class();
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
    /// any sent before that class was learnt.
    pub fn keystroke_count(&self) -> u64 {
        let ks = self.ks_size();
        let late = count_of(&self.candidates, ks);
        self.keystrokes.max(late)
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

    /// A keystroke at `ts` (found by size, or seen in clear as in VNC): it awaits its echo.
    pub fn keystroke(&mut self, ts: Ts) {
        self.keystrokes += 1;
        self.interactive = true;
        if self.pending.len() == MAX_PENDING {
            self.pending.pop_front();
        }
        self.pending.push_back(ts);
    }

    /// Keystroke-timing obfuscation (chaff) was seen: keystrokes sent inside
    /// a chaff train cannot be told from chaff by size or time, so the
    /// keystroke count is then a lower bound (each train's first key).
    pub fn obfuscated(&self) -> bool {
        self.chaff_count() >= MIN_CHAFF
    }

    /// Chaff in the session: grid-following packets of the final size class.
    pub fn chaff_count(&self) -> u64 {
        let ks = self.ks_size();
        let late = count_of(&self.grid_counts, ks);
        self.chaff.max(late)
    }

    /// Feed one encrypted data segment (new data, not a retransmission).
    /// Returns the echo delay (ms) when the segment is a keystroke's echo.
    pub fn on_data(&mut self, ts: Ts, from: Side, len: u32) -> Option<f64> {
        let echo = match from {
            Side::Client => {
                self.on_client(ts, len);
                None
            }
            Side::Server => self.on_server(ts, len),
        };
        if !self.interactive && self.auth_segments < AUTH_SEGMENTS {
            self.auth_segments += 1;
            // The answer is to the first message of the other side's run: the
            // later ones of the run may be unsolicited.
            if let Some((side, t0)) = self.run_start
                && side != from
                && self.turnaround[from as usize].len() < MAX_TURN
            {
                self.turnaround[from as usize].push(ms(ts - t0));
                if from == Side::Client {
                    self.auto_answer = AutoAnswer::from_turnarounds(&self.turnaround[from as usize]);
                }
            }
        }
        if self.run_start.is_none_or(|(side, _)| side != from) {
            self.run_start = Some((from, ts));
        }
        self.last = Some((from, ts, len));
        echo
    }

    fn on_client(&mut self, ts: Ts, len: u32) {
        let small = len <= 128;
        let since_same = self.last_small.filter(|&(l, _)| small && l == len).map(|(_, p)| ts - p);
        // Chaff follows the previous packet of its size on the ~20 ms grid.
        let grid = since_same.is_some_and(|d| (CHAFF_GRID.0..=CHAFF_GRID.1).contains(&d));
        // Characters sent faster than anyone types come from a script (expect, a macro).
        let scripted = since_same.is_some_and(|d| d < CHAFF_GRID.0);
        if small {
            self.last_small = Some((len, ts));
        }
        let typing = self.auth_segments >= 8;
        if small && typing {
            bump(&mut self.size_counts, len);
            self.ks = self.size_class();
        }
        let ks = self.ks_size();
        let bulk = self.last_bulk.is_some_and(|b| ts - b < BULK_WINDOW);
        if grid && !bulk {
            // Counted per size class, so chaff sent before the class was learnt counts too.
            if typing {
                bump(&mut self.grid_counts, len);
            }
            if len == ks {
                self.chaff += 1;
                if self.chaff_sent.len() == MAX_CHAFF_SENT {
                    self.chaff_sent.pop_front();
                }
                self.chaff_sent.push_back(ts);
            }
            return;
        }
        let bulk = bulk || scripted || self.automatic(ts, len);
        if small && !bulk && typing {
            bump(&mut self.candidates, len);
        }
        if len == ks && !bulk {
            self.keystroke(ts);
            return;
        }
        // A short multi-byte answer to a query-sized server segment (a terminal
        // query is a few bytes: ESC [ c, ESC [ 6 n), nothing awaiting an echo.
        if self.interactive
            && len > ks
            && len <= ks + 48
            && self.pending.is_empty()
            && let Some((Side::Server, t0, qlen)) = self.last
            && qlen > ks
            && qlen <= ks + 16
            && ts - t0 <= ECHO_BOUND
        {
            self.terminal.add(ms(ts - t0));
            if self.run_start == Some((Side::Server, t0)) {
                self.terminal_clean.add(ms(ts - t0));
            }
        }
    }

    fn on_server(&mut self, ts: Ts, len: u32) -> Option<f64> {
        if len >= BULK_SEGMENT {
            self.last_bulk = Some(ts);
        }
        let ks = self.ks_size();
        // Several PINGs are in flight at once when the round trip exceeds the
        // grid: every PONG-sized answer is a candidate for each of them.
        if len == ks {
            while self.chaff_sent.front().is_some_and(|&c| ts - c > ECHO_BOUND) {
                self.chaff_sent.pop_front();
            }
            for &c in self.chaff_sent.iter() {
                if self.pong_lags.len() < MAX_PONG_LAGS && ts >= c {
                    self.pong_lags.push(ms(ts - c) as f32);
                }
            }
        }
        let mut echo = None;
        while let Some(k) = self.pending.pop_front() {
            if (0..=ECHO_BOUND).contains(&(ts - k)) {
                let d = ms(ts - k);
                self.echo.add(d);
                if self.echo_log.len() < MAX_ECHO_LOG {
                    self.echo_log.push(d as f32);
                }
                echo = Some(d);
                if !self.echo_all_pending {
                    break;
                }
            }
        }
        // A one-character echo: larger answers (a command's output) may end
        // with the channel's EOF/CLOSE, which the client software answers.
        // Until the size class is learnt keys are not paired: a server segment of
        // a candidate keystroke's size is taken for an echo.
        self.last_echoed = len == ks && echo.is_some() || !self.interactive && count_of(&self.candidates, len) > 0;
        echo
    }

    /// Chaff PING → PONG delays: the lags within the densest 1 ms window.
    /// Wrong pairings fall at multiples of the (randomly fuzzed) grid and
    /// smear out; the true delay is the same for every pair.
    pub fn ping_rtt(&self) -> Option<Quantiles> {
        if self.pong_lags.len() < 3 {
            return None;
        }
        let mut v: Vec<f32> = self.pong_lags.clone();
        v.sort_unstable_by(|a, b| a.total_cmp(b));
        let (mut best, mut at, mut j) = (0, 0, 0);
        for i in 0..v.len() {
            while v[i] - v[j] > 1.0 {
                j += 1;
            }
            if i + 1 - j > best {
                best = i + 1 - j;
                at = j;
            }
        }
        let mut sum = Summary::default();
        v[at..at + best].iter().for_each(|&x| sum.add(x as f64));
        sum.quantiles()
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
        let levels = levels(&v);
        // Answers that need a person (a password prompt) are spread out and form no level.
        let level = if deepest { levels.last() } else { levels.first() };
        Some((level?.floor, sum))
    }

    /// Echo-delay levels: the robust floor of each window of echoes, in order.
    pub fn echo_levels(&self) -> Vec<f64> {
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

/// How fast the client software answers a server packet by itself, ms after it.
#[derive(Debug, Clone, Copy, PartialEq)]
struct AutoAnswer {
    /// The span of its fastest level of authentication answers, with
    /// tolerance (empty when the answers form no level).
    span: [f32; 2],
    /// Before the first keystroke: the answer time (that level's slowest, else
    /// the median answer) plus a person's reaction time.
    reach: f32,
}

impl AutoAnswer {
    fn from_turnarounds(answers: &[f64]) -> Option<AutoAnswer> {
        if answers.len() < 3 {
            return None;
        }
        let mut v = answers.to_vec();
        v.sort_by(f64::total_cmp);
        let level = levels(&v).first().copied();
        let span = level.map_or([f32::INFINITY, f32::NEG_INFINITY], |l| {
            [(l.min * 0.8 - AUTO_SLACK_MS) as f32, (l.max * 1.2 + AUTO_SLACK_MS) as f32]
        });
        let usual = level.map_or(v[v.len() / 2], |l| l.max);
        Some(AutoAnswer { span, reach: (usual + REACTION_MS) as f32 })
    }

    /// Is an answer `d` ms after the server's packet the software's? Once the
    /// person has typed, only within the span; before, anything up to `reach`.
    fn covers(&self, d: f64, typed: bool) -> bool {
        let d = d as f32;
        if typed { (self.span[0]..=self.span[1]).contains(&d) } else { d <= self.reach }
    }
}

/// A latency level of answers: values no more than 15 % + 2 ms apart, at least 3 of them.
#[derive(Debug, Clone, Copy)]
struct AnswerLevel {
    /// Robust floor (20th percentile).
    floor: f64,
    min: f64,
    max: f64,
}

/// The latency levels of sorted answers, lowest first.
fn levels(sorted: &[f64]) -> Vec<AnswerLevel> {
    let mut levels = Vec::new();
    let mut start = 0;
    for i in 1..=sorted.len() {
        if i == sorted.len() || sorted[i] > sorted[i - 1] * 1.15 + 2.0 {
            let run = &sorted[start..i];
            if run.len() >= 3 {
                levels.push(AnswerLevel { floor: low_percentile(run), min: run[0], max: run[run.len() - 1] });
            }
            start = i;
        }
    }
    levels
}

/// The count of size class `size` in a per-size table (0 when absent).
fn count_of<N: Copy + Default>(table: &[(u32, N)], size: u32) -> N {
    table.iter().find(|(s, _)| *s == size).map_or(N::default(), |e| e.1)
}

/// Count one more of `size` in a small bounded table of size classes.
fn bump<N: From<u8> + std::ops::AddAssign>(table: &mut Vec<(u32, N)>, size: u32) {
    let full = table.len() >= 16;
    match table.iter_mut().find(|(s, _)| *s == size) {
        Some(e) => e.1 += N::from(1),
        None if !full => table.push((size, N::from(1))),
        None => {}
    }
}

/// 20th percentile (nearest rank) of sorted values: robust to one fast outlier.
pub fn low_percentile(sorted: &[f64]) -> f64 {
    let i = ((0.2 * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

#[cfg(test)]
mod tests {
    use super::*;
    const MS: Ts = 1_000_000;

    #[test]
    fn automatic_answers_are_not_keystrokes() {
        let mut a = Interactive::new(Some(36));
        // Authentication: the client answers 40 ms after each server message.
        let mut t = 0;
        for _ in 0..6 {
            a.on_data(t, Side::Server, 100);
            t += 40 * MS;
            a.on_data(t, Side::Client, 120);
            t += 10 * MS;
        }
        // A command's end: server EOF/CLOSE, the client's EOF/CLOSE 40 ms later.
        a.on_data(t, Side::Server, 36);
        a.on_data(t + 40 * MS, Side::Client, 36);
        a.on_data(t + 40 * MS + 10_000, Side::Client, 36);
        assert_eq!(a.keystroke_count(), 0);
        // A person typing 300 ms later counts.
        a.on_data(t + 340 * MS, Side::Client, 36);
        assert_eq!(a.keystroke_count(), 1);
    }

    /// Authentication at the server's edge: the client answers `rtt` ms
    /// after each server message (its round trip), give or take `jitter`.
    fn authenticate(a: &mut Interactive, rtt: Ts, jitter: &[Ts]) -> Ts {
        let mut t = 0;
        for j in jitter {
            a.on_data(t, Side::Server, 100);
            t += (rtt + j) * MS;
            a.on_data(t, Side::Client, 120);
            t += MS;
        }
        t
    }

    #[test]
    fn a_late_channel_eof_before_any_typing_is_not_a_keystroke() {
        // `ssh host cmd` with stdin closed, over a jittery path (or from a
        // stalled client host): the channel EOF answers the exec request's
        // reply 31 ms late, far outside the client's usual 20 ms answer.
        let mut a = Interactive::new(Some(36));
        let t = authenticate(&mut a, 20, &[0, 1, 0, 1, 0, 1, 0, 1]);
        a.on_data(t, Side::Server, 72); // exec accepted
        a.on_data(t + 51 * MS, Side::Client, 36); // channel EOF
        a.on_data(t + 250 * MS, Side::Server, 96); // the command's output
        assert_eq!(a.keystroke_count(), 0);
        // A person reacting to what the server showed takes longer: typed.
        a.on_data(t + 600 * MS, Side::Client, 36);
        assert_eq!(a.keystroke_count(), 1);
    }

    #[test]
    fn a_far_typists_keys_after_their_echoes_all_count() {
        // At the server's edge the typist is 150 ms away: the client software
        // answers 150 ms after a server message, and keys typed 120-180 ms
        // apart follow their echoes (sent at once by the server's pty) by the same.
        let mut a = Interactive::new(Some(36));
        let mut t = authenticate(&mut a, 150, &[0, 1, 0, 1, 0, 1, 0, 1]) + 2000 * MS;
        for gap in [160, 150, 140, 170, 155, 145, 180, 150, 120, 165] {
            a.on_data(t, Side::Client, 36);
            a.on_data(t + MS / 2, Side::Server, 36);
            t += gap * MS;
        }
        assert_eq!(a.keystroke_count(), 10);
        // A command's output that ends with the channel's EOF/CLOSE, even when
        // it pairs with the pending Enter: the client's CLOSE answers it.
        a.on_data(t, Side::Client, 36);
        a.on_data(t + MS / 2, Side::Server, 228);
        a.on_data(t + 151 * MS, Side::Client, 36);
        assert_eq!(a.keystroke_count(), 11);
    }

    #[test]
    fn machine_speed_characters_are_not_keystrokes() {
        let mut a = Interactive::new(Some(36));
        for i in 0..5 {
            a.on_data(i * 20 * MS, Side::Server, 100);
            a.on_data(i * 20 * MS + 10 * MS, Side::Client, 140);
        }
        // A script writes 20 characters 2 ms apart, after a first one.
        let t0 = 1000 * MS;
        for i in 0..21 {
            a.on_data(t0 + i * 2 * MS, Side::Client, 36);
        }
        assert_eq!(a.keystroke_count(), 1);
        assert_eq!(a.chaff_count(), 0);
    }

    #[test]
    fn keystrokes_pair_with_echoes() {
        let mut a = Interactive::new(Some(36));
        let mut t = 0;
        for _ in 0..10 {
            t += 200 * MS;
            a.on_data(t, Side::Client, 36);
            a.on_data(t + 30 * MS, Side::Server, 36);
            a.on_data(t + 60 * MS, Side::Client, 0);
        }
        assert_eq!(a.keystrokes, 10);
        let q = a.echo.quantiles().unwrap();
        assert_eq!((q.min, q.max, q.samples), (30.0, 30.0, 10));
    }

    #[test]
    fn bulk_download_window_adjusts_are_not_keystrokes() {
        let mut a = Interactive::new(Some(36));
        for i in 0..1000 {
            a.on_data(i * MS, Side::Server, 32768);
            if i % 10 == 0 {
                a.on_data(i * MS, Side::Client, 36);
            }
        }
        assert_eq!(a.keystrokes, 0);
    }

    #[test]
    fn chaff_on_a_20ms_grid_is_counted_apart_and_pongs_time_the_peer() {
        let mut a = Interactive::new(Some(36));
        a.on_data(0, Side::Client, 36);
        a.on_data(30 * MS, Side::Server, 36); // the key's echo, 30 ms round trip
        for i in 1..=50 {
            a.on_data(i * 20 * MS, Side::Client, 36);
            a.on_data(i * 20 * MS + 30 * MS, Side::Server, 36); // PONG
        }
        assert_eq!((a.keystroke_count(), a.chaff), (1, 50));
        assert!(a.obfuscated());
        assert_eq!(a.echo.count(), 1);
        let q = a.ping_rtt().unwrap();
        assert_eq!((q.min, q.max), (30.0, 30.0));
        assert!(q.samples >= 49, "{q:?}");
    }

    #[test]
    fn learns_the_size_class_without_kexinit() {
        let mut a = Interactive::new(None);
        // Authentication: automatic answers within 10 ms.
        for i in 0..5 {
            a.on_data(i * 20 * MS, Side::Server, 100);
            a.on_data(i * 20 * MS + 10 * MS, Side::Client, 140);
        }
        // Typing, human gaps (irregular).
        let mut t = 200 * MS;
        for i in 0..20 {
            t += (150 + 37 * (i % 5)) * MS;
            a.on_data(t, Side::Client, 52);
            a.on_data(t + 5 * MS, Side::Server, 52);
        }
        assert!(a.keystroke_count() >= 18, "{}", a.keystroke_count());
    }

    #[test]
    fn the_size_class_follows_the_negotiated_size_and_what_is_typed() {
        let auth = |a: &mut Interactive| {
            for i in 0..5 {
                a.on_data(i * 20 * MS, Side::Server, 100);
                a.on_data(i * 20 * MS + 10 * MS, Side::Client, 140);
            }
        };
        let typing = |a: &mut Interactive, size: u32, keys: i64| {
            let mut t = 200 * MS;
            for i in 0..keys {
                t += (150 + 37 * (i % 5)) * MS;
                a.on_data(t, Side::Client, size);
                a.on_data(t + 5 * MS, Side::Server, size);
            }
        };
        // Negotiated once the session is under way: keys count from the first.
        let mut a = Interactive::new(None);
        auth(&mut a);
        a.set_keystroke_size(Some(52));
        assert_eq!(a.keystroke_size(), Some(52));
        typing(&mut a, 52, 3);
        assert_eq!((a.keystrokes, a.echo.count()), (3, 3));
        // A session tunnelled inside this one wraps each key: its size, once
        // it dominates, wins over the negotiated one.
        let mut b = Interactive::new(Some(36));
        auth(&mut b);
        typing(&mut b, 84, 20);
        assert_eq!(b.keystroke_count(), 20);
        assert!(b.keystrokes >= 15, "{}", b.keystrokes);
    }

    #[test]
    fn auth_turnarounds_have_a_robust_floor() {
        let mut a = Interactive::new(Some(36));
        let mut t = 0;
        for d in [150, 151, 153, 152, 400] {
            a.on_data(t, Side::Server, 100);
            t += d * MS;
            a.on_data(t, Side::Client, 100);
            t += 31 * MS;
        }
        let (floor, sum) = a.app_floor(Side::Client, Some(30.0), false).unwrap();
        assert_eq!(floor, 150.0);
        assert_eq!(sum.count(), 5);
    }
}
