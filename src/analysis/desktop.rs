//! A remote desktop's input and screen (RDP after its security handshake):
//! keystrokes, their screen echoes and the client's frame
//! acknowledgements, from the sizes, times and TCP positions of its
//! encrypted records. Keys are never read, only counted and timed.
//!
//! - Nothing is taken for keys before the desktop is up (the server sent
//!   its first screen): the connection sequence before it is request/answer
//!   lockstep. Its small pairs (MCS Attach User and Channel Join requests
//!   and their confirms) are answered at once by the RDP server itself, past
//!   any port forwarder: each is the server side's application round trip.
//!   A Windows server answers them within 0.1 ms of the TCP round trip
//!   (public captures `rdp-to-ssl`, `RDP-003`), xrdp as fast. Larger
//!   exchanges (the MCS connect, CredSSP, licensing, capabilities) carry the
//!   server's work and are left out, as is the X.224 pair (timed as the
//!   handshake, [`crate::proto::rdp`]).
//! - A key press and its release leave the client as one record each, of
//!   one size: the smallest size class the client sends often that is not
//!   sent at a pointer's rate (pointer moves come every few ms, and are
//!   larger than key events in every client measured). Presses and
//!   releases alternate; a key record long after the last one is a press.
//!   A release draws nothing: a class whose "releases" the server answers
//!   (frame acknowledgements where nobody types) is not keys. A port
//!   forwarder may join a release to a frame acknowledgement in one segment
//!   (FreeRDP's shadow server behind socat): a segment of the two sizes
//!   together is read as both, while such segments stay rare.
//! - A press's echo is the first segment of the server's first burst whose
//!   TCP acknowledgement covers it (causality: a segment sent before the
//!   key reached the server cannot show it, nor can the rest of a burst
//!   under way when it arrived). A key pressed while a large update is
//!   being sent is counted but not timed. Its delay includes the server's
//!   render time (xrdp: 4.5-6 ms), which no path explains, so echoes are
//!   reported but not used as a round trip.
//! - A frame acknowledgement (RemoteFX Frame Acknowledge, the graphics
//!   pipeline's) is the client's answer to each frame it drew: a record
//!   of one size, larger than a key event by the PDU headers (or, in a
//!   session nobody typed in, than a pointer event), sent once per server
//!   frame. The real client sends it, behind any port forwarder or TLS
//!   relay: the time from the frame's last segment to it is the client's
//!   application round trip. A sample is taken only when it cannot be
//!   another frame's answer: exactly one frame since the previous
//!   acknowledgement (bursts within [`FRAME_GAP`] of each other are one:
//!   xrdp sends a pointer update just before the frame it goes with), and
//!   the acknowledgement's TCP ack ends exactly where that frame ended
//!   (nothing sent since reached the client's side of the sensor).

use super::deque::InlineDeque;
// A server segment of BULK_SEGMENT bytes within BULK_WINDOW means a large
// update is being sent: its segments come as the client's TCP
// acknowledgements let them, gaps and all, so a key pressed then is not
// timed. ECHO_BOUND: the longest key → echo and frame → acknowledgement paired.
use super::interactive::{BULK_SEGMENT, BULK_WINDOW, ECHO_BOUND, MIN_ECHOED};
use super::seq;
use crate::side::Side;
use crate::time::{Ts, ms};

/// Client records up to this size can be key events, pointer events or acknowledgements.
const SMALL: u32 = 160;
/// A key event's record is at most this large (fast-path keyboard event in
/// TLS 1.3: 27 bytes, TLS 1.2 GCM: 33, TLS CBC-SHA1: 37 or 53, Standard
/// RDP Security: 12).
const KEY_MAX: u32 = 64;
/// Records of one size this close together come from a pointer (or a program), not a person's keys.
const POINTER_GAP: Ts = 20_000_000;
/// Server segments this close together are one burst (one frame, one update).
const BURST_GAP: Ts = 3_000_000;
/// Bursts this close together are one frame to acknowledge (xrdp sends a
/// pointer update 5 ms before the frame it goes with).
const FRAME_GAP: Ts = 10_000_000;
/// Records of a size class before it may be taken for keys or acknowledgements.
const MIN_CLASS: u32 = 6;
/// An acknowledgement is larger than a key event by at least its PDU headers.
const ACK_ABOVE_KEY: u32 = 12;
/// A key record this long after a press is a new press (no key is held so long while typing).
const HOLD_MAX: Ts = 2_000_000_000;
/// Server bytes before the desktop is up: the connection sequence (channel
/// joins, capabilities, licensing) is a lockstep of small records that
/// nobody typed (xrdp: 2.2 KB with the TLS handshake); the first screen
/// brings the total past this (xrdp with a small xterm: 11 KB).
const DESKTOP_UP: u64 = 4 * 1024;
/// A connection-sequence request answered at once, and its answer, are at
/// most this large (Channel Join: 12 bytes in clear, 15 for its confirm; 34
/// and 37 under TLS 1.3, 53 under TLS 1.0 CBC, up to 85 under TLS 1.2 CBC).
const CONNECT_PAIR_MAX: u32 = 96;
/// Segments of an acknowledgement's and a key's size together are read as
/// the two joined while they are fewer than one in this many key records
/// (a port forwarder joins a few; a record type of that size would be common).
const JOINED_RARE: u32 = 8;
/// Size classes tracked.
const MAX_CLASSES: usize = 16;

/// One client record size and how its records came.
#[derive(Debug, Clone, Copy, Default)]
struct Class {
    size: u32,
    count: u32,
    /// Records sent within [`POINTER_GAP`] of the previous one of this size.
    fast: u32,
    /// Records sent after at least one server burst since the previous one of this size.
    after_burst: u32,
    last: Ts,
    /// Server bursts seen when the previous record of this size was sent.
    bursts_then: u64,
}

impl Class {
    fn pointer_like(&self) -> bool {
        self.fast * 2 >= self.count
    }

    /// Sent at a person's pace: at most one record in four follows the
    /// previous one of its size within [`POINTER_GAP`] (rolled keys).
    fn paced(&self) -> bool {
        self.fast * 4 <= self.count
    }
}

/// What one data segment was, for the caller's keystroke analysis.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Event {
    /// A key press (its release is [`Event::Other`]).
    Press,
    /// A keystroke's echo, with its delay (ms).
    Echo(f64),
    /// A frame acknowledgement paired with its frame: the client's round trip (ms).
    FrameAck(f64),
    /// The server's answer to a small request of the connection sequence: its round trip (ms).
    ConnectAnswer(f64),
    Other,
}

#[derive(Debug, Default)]
pub struct Desktop {
    classes: Vec<Class>,
    key: Option<u32>,
    ack: Option<u32>,
    /// The last key record: when, and whether it was a press.
    last_key: Option<(Ts, bool)>,
    /// Presses awaiting their echo: (time, end of its bytes in the client's stream).
    pending: InlineDeque<(Ts, u32), 4>,
    /// Server bursts so far, and the last one: its last segment's time and where its bytes end.
    bursts: u64,
    burst: Option<(Ts, u32)>,
    /// Frames (bursts within [`FRAME_GAP`] of the one before are one) so
    /// far, and when the last acknowledgement was sent.
    frames: u64,
    frames_at_ack: u64,
    /// Presses answered by an echo.
    pub echoed: u64,
    /// Releases, and those the server answered (a burst whose acknowledgement
    /// covers it, before the next key record): keys' releases draw nothing,
    /// while a class of automatic answers taken for keys draws each time.
    releases: u64,
    releases_answered: u64,
    /// Where the last release ends, until answered or the next key record.
    release_open: Option<u32>,
    /// Segments read as an acknowledgement and a key record joined.
    joined: u32,
    server_bytes: u64,
    last_bulk: Option<Ts>,
    /// Client data segments of the connection sequence so far (the first is the X.224 request).
    connect_segments: u32,
    /// The last of them, when small: when it was sent and where its bytes end.
    connect_request: Option<(Ts, u32)>,
}

impl Desktop {
    /// Feed one new data segment: `end` is where its bytes end in its
    /// sender's stream, `ack` what it acknowledges of the other's.
    pub fn on_data(&mut self, ts: Ts, from: Side, len: u32, end: u32, ack: Option<u32>) -> Event {
        match from {
            Side::Client if self.server_bytes < DESKTOP_UP => {
                self.connect_segments += 1;
                self.connect_request = (self.connect_segments > 1 && len <= CONNECT_PAIR_MAX).then_some((ts, end));
                Event::Other
            }
            Side::Client => self.on_client(ts, len, end, ack),
            Side::Server => {
                let answer = self.connect_answer(ts, len, ack);
                self.server_bytes += u64::from(len);
                if len >= BULK_SEGMENT {
                    self.last_bulk = Some(ts);
                }
                let event = self.on_server(ts, end, ack);
                answer.map_or(event, Event::ConnectAnswer)
            }
        }
    }

    /// The client sent data again (a retransmission): the request under
    /// way, if any, gives no sample (Karn's rule).
    pub fn on_client_repeat(&mut self) {
        self.connect_request = None;
    }

    /// The server's first data after a small request of the connection
    /// sequence answers it, when small itself and its TCP ack ends exactly
    /// where the request ended (the last client data: with two requests
    /// outstanding the time from the later one errs low, never high).
    fn connect_answer(&mut self, ts: Ts, len: u32, ack: Option<u32>) -> Option<f64> {
        let (t, end) = self.connect_request.take()?;
        (self.server_bytes < DESKTOP_UP
            && len <= CONNECT_PAIR_MAX
            && ack == Some(end)
            && (0..=ECHO_BOUND).contains(&(ts - t)))
        .then(|| ms(ts - t))
    }

    /// Key presses in the session: half the key records (a press and a
    /// release each), once keys drew echoes; else none.
    pub fn keystrokes(&self) -> u64 {
        match self.key {
            Some(k) if self.echoed >= MIN_ECHOED && self.releases_answered * 4 <= self.releases * 3 => {
                self.classes.iter().find(|c| c.size == k).map_or(0, |c| u64::from(c.count).div_ceil(2))
            }
            _ => 0,
        }
    }

    /// The key record size and the acknowledgement size, where learnt.
    pub fn sizes(&self) -> (Option<u32>, Option<u32>) {
        (self.key, self.ack)
    }

    fn on_client(&mut self, ts: Ts, len: u32, end: u32, ack: Option<u32>) -> Event {
        if len > SMALL {
            return Event::Other;
        }
        if let (Some(k), Some(a)) = (self.key, self.ack)
            && len == k + a
            && self.joined * JOINED_RARE < self.classes.iter().find(|c| c.size == k).map_or(0, |c| c.count)
        {
            // A frame acknowledgement and a key record in one segment (a
            // port forwarder read both at once): each counted, neither timed.
            self.joined += 1;
            self.frames_at_ack = self.frames;
            self.count(ts, k);
            return match self.key_record(ts, end, false) {
                Event::Press => Event::Press,
                _ => Event::Other,
            };
        }
        let key_before = self.key;
        self.count(ts, len);
        if self.key != key_before && Some(len) == self.key {
            // The class was learnt on this record: an even count makes it a release.
            let n = self.classes.iter().find(|c| c.size == len).map_or(0, |c| c.count);
            self.last_key = n.is_multiple_of(2).then_some((ts, true));
        }
        if Some(len) == self.ack {
            let paired = self.frame_ack(ts, ack);
            self.frames_at_ack = self.frames;
            if let Some(d) = paired {
                return Event::FrameAck(d);
            }
            return Event::Other;
        }
        if Some(len) != self.key {
            return Event::Other;
        }
        self.key_record(ts, end, true)
    }

    /// A key record (of the key size) ending at `end`: a press or a
    /// release, the press awaiting its echo when `timed` (and no large
    /// update is being sent).
    fn key_record(&mut self, ts: Ts, end: u32, timed: bool) -> Event {
        let press = match self.last_key {
            Some((t, true)) => ts - t > HOLD_MAX,
            _ => true,
        };
        self.last_key = Some((ts, press));
        self.release_open = (!press).then_some(end);
        if !press {
            self.releases += 1;
            return Event::Other;
        }
        if !timed || self.last_bulk.is_some_and(|b| ts - b < BULK_WINDOW) {
            return Event::Press;
        }
        if self.pending.len() == 8 {
            self.pending.pop_front();
        }
        self.pending.push_back((ts, end));
        Event::Press
    }

    /// The acknowledgement of the one burst since the last, if its TCP ack
    /// ends exactly where that burst ended.
    fn frame_ack(&mut self, ts: Ts, ack: Option<u32>) -> Option<f64> {
        let (t, end) = self.burst?;
        (self.frames == self.frames_at_ack + 1 && ack == Some(end) && (0..=ECHO_BOUND).contains(&(ts - t)))
            .then(|| ms(ts - t))
    }

    fn on_server(&mut self, ts: Ts, end: u32, ack: Option<u32>) -> Event {
        let new_burst = self.burst.is_none_or(|(t, _)| ts - t > BURST_GAP);
        if new_burst {
            self.bursts += 1;
        }
        if self.burst.is_none_or(|(t, _)| ts - t > FRAME_GAP) {
            self.frames += 1;
        }
        self.burst = Some((ts, end));
        // The rest of a burst under way when a key arrived is not its echo.
        let Some(ack) = ack.filter(|_| new_burst) else { return Event::Other };
        if self.release_open.take_if(|e| seq::le(*e, ack)).is_some() {
            self.releases_answered += 1;
        }
        // The newest press this segment's acknowledgement covers is what it
        // shows; older ones covered drew no echo of their own.
        let mut newest = None;
        while let Some(&(t, e)) = self.pending.front() {
            if !seq::le(e, ack) {
                break;
            }
            newest = Some(t);
            self.pending.pop_front();
        }
        match newest {
            Some(t) if (0..=ECHO_BOUND).contains(&(ts - t)) => {
                self.echoed += 1;
                Event::Echo(ms(ts - t))
            }
            _ => Event::Other,
        }
    }

    /// Count a small client record in its size class, and work out the key
    /// and acknowledgement sizes again.
    fn count(&mut self, ts: Ts, len: u32) {
        let bursts = self.bursts;
        let c = match self.classes.iter_mut().position(|c| c.size == len) {
            Some(i) => &mut self.classes[i],
            None if self.classes.len() < MAX_CLASSES => {
                self.classes.push(Class { size: len, last: ts, bursts_then: bursts, ..Class::default() });
                let c = self.classes.last_mut().expect("just pushed");
                c.count = 1;
                return;
            }
            None => return,
        };
        c.count += 1;
        if ts - c.last < POINTER_GAP {
            c.fast += 1;
        }
        if bursts > c.bursts_then {
            c.after_burst += 1;
        }
        (c.last, c.bursts_then) = (ts, bursts);
        self.learn();
    }

    fn learn(&mut self) {
        let steady = |c: &&Class| c.count >= MIN_CLASS && !c.pointer_like();
        // A key event is never larger than a pointer event.
        let pointer = self.classes.iter().filter(|c| c.count >= MIN_CLASS && c.pointer_like()).map(|c| c.size).min();
        let key = self
            .classes
            .iter()
            .filter(|c| c.count >= MIN_CLASS && c.paced() && c.size <= KEY_MAX)
            .map(|c| c.size)
            .filter(|&s| pointer.is_none_or(|p| s <= p))
            .min();
        if key != self.key {
            self.key = key;
            self.last_key = None;
            self.pending.clear();
        }
        // An acknowledgement follows a server burst (two may follow two bursts
        // in a row when the round trip exceeds the time between frames), and
        // is larger than a key event, or, while nobody has typed, than a
        // pointer event (a session driven by the mouse). With neither known,
        // a key's release could be taken for one: none.
        let floor = match (key, pointer) {
            (Some(k), _) => Some(k + ACK_ABOVE_KEY),
            (None, Some(p)) => Some(p + 1),
            (None, None) => None,
        };
        self.ack = floor.and_then(|f| {
            self.classes
                .iter()
                .filter(steady)
                .filter(|c| c.size >= f && c.after_burst * 3 >= (c.count - 1) * 2)
                .max_by_key(|c| (c.count, u32::MAX - c.size))
                .map(|c| c.size)
        });
        if let (Some(k), Some(a)) = (self.key, self.ack) {
            self.fold_early_joins(k, a);
        }
    }

    /// Segments of a joined acknowledgement and key record sent before both
    /// sizes were known sit in a class of their own: while rare, each is a
    /// key record after all (and an odd number of them turns the order of
    /// presses and releases the other way).
    fn fold_early_joins(&mut self, k: u32, a: u32) {
        let Some(i) = self.classes.iter().position(|c| c.size == k + a) else { return };
        let j = self.classes[i].count;
        let keys = self.classes.iter().find(|c| c.size == k).map_or(0, |c| c.count);
        if (self.joined + j) * JOINED_RARE >= keys {
            return;
        }
        self.classes.swap_remove(i);
        self.joined += j;
        if let Some(c) = self.classes.iter_mut().find(|c| c.size == k) {
            c.count += j;
        }
        if j % 2 == 1 {
            self.last_key = self.last_key.map(|(t, press)| (t, !press));
        }
    }
}

#[cfg(test)]
mod tests;
