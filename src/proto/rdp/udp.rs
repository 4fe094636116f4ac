//! RDP's UDP transport (MS-RDPEUDP), in clear before its TLS or DTLS: the
//! SYN / SYN+ACK exchange, then datagrams numbered by their source sequence
//! number and acknowledged by the peer's `snSourceAck` (the highest sequence
//! number it received). As TCP's data/ACK pairs: A's datagram numbered N
//! seen at t0, B's first datagram acknowledging N at t1: t1 − t0 is the
//! round trip on B's side of the sensor.
//!
//! Every datagram starts with RDPUDP_FEC_HEADER (big-endian): snSourceAck
//! (32 bits), uReceiveWindowSize (16), uFlags (16). A SYN (snSourceAck −1)
//! carries RDPUDP_SYNDATA_PAYLOAD (snInitialSequenceNumber, two MTUs), then
//! an optional correlation id (32 bytes) and RDPUDP_SYNDATAEX_PAYLOAD
//! (flags, uUdpVer). The SYN+ACK acknowledges the SYN's sequence number.
//! Version 3 (0x0101) in the SYN+ACK hands the data phase to MS-RDPEUDP2,
//! whose packets are another format: only its handshake is timed.
//! A later datagram: the header, an ACK vector (ACK flag: size, elements,
//! padding to 4 bytes), an ack-of-acks sequence number (ACK_OF_ACKS flag),
//! and with DATA (not FEC) RDPUDP_SOURCE_PAYLOAD_HEADER: snCoded,
//! snSourceStart.

use crate::analysis::seq;
use crate::analysis::{RttSample, SampleKind};
use crate::side::Side;
use crate::time::Ts;
use std::collections::VecDeque;

pub const FLAG_SYN: u16 = 0x0001;
pub const FLAG_ACK: u16 = 0x0004;
pub const FLAG_DATA: u16 = 0x0008;
pub const FLAG_FEC: u16 = 0x0010;
pub const FLAG_ACK_OF_ACKS: u16 = 0x0100;
pub const FLAG_ACK_DELAYED: u16 = 0x0400;
pub const FLAG_CORRELATION_ID: u16 = 0x0800;
pub const FLAG_SYNEX: u16 = 0x1000;
/// uUdpVer of MS-RDPEUDP2.
pub const VERSION_3: u16 = 0x0101;
/// Datagrams remembered per direction while awaiting their acknowledgement.
const MAX_OUTSTANDING: usize = 64;

/// The SYN part of a SYN or SYN+ACK.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Syn {
    pub initial_seq: u32,
    /// uUdpVer, when RDPUDP_SYNDATAEX_PAYLOAD is there.
    pub version: Option<u16>,
}

/// One RDPEUDP datagram, as far as timing needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Datagram {
    /// snSourceAck: the highest sequence number the sender received (−1 in a SYN).
    pub ack: u32,
    pub flags: u16,
    pub syn: Option<Syn>,
    /// snSourceStart of a source (data) datagram.
    pub source: Option<u32>,
    /// Where a source datagram's data (a TLS record, encrypted) begins.
    pub data_at: usize,
}

/// A source datagram's place and size, for the desktop analysis: its
/// sequence number, the sender's snSourceAck (the highest of the peer's it
/// received) and the length of its data (from the UDP length: a short
/// snap length does not shorten it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Source {
    pub sn: u32,
    pub ack: u32,
    pub len: u32,
}

impl Datagram {
    fn has(&self, flag: u16) -> bool {
        self.flags & flag != 0
    }
}

fn be16(p: &[u8], i: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*p.get(i)?, *p.get(i + 1)?]))
}

fn be32(p: &[u8], i: usize) -> Option<u32> {
    Some(u32::from_be_bytes(p.get(i..i + 4)?.try_into().ok()?))
}

/// Read an RDPEUDP (version 1 or 2) datagram; None for anything else or a
/// datagram cut before the fields it announces.
pub fn parse(p: &[u8]) -> Option<Datagram> {
    let ack = be32(p, 0)?;
    let flags = be16(p, 6)?;
    if flags & 0xE000 != 0 {
        return None;
    }
    let mut d = Datagram { ack, flags, syn: None, source: None, data_at: 0 };
    if d.has(FLAG_SYN) {
        let initial_seq = be32(p, 8)?;
        let mtus = [be16(p, 12)?, be16(p, 14)?];
        // A SYN's snSourceAck is −1; a SYN+ACK's is the SYN's number.
        if (!d.has(FLAG_ACK) && ack != u32::MAX) || mtus.iter().any(|m| !(1132..=1232).contains(m)) {
            return None;
        }
        let mut off = 16;
        if d.has(FLAG_CORRELATION_ID) {
            off += 32;
        }
        let version = if d.has(FLAG_SYNEX) { Some(be16(p, off + 2)?) } else { None };
        d.syn = Some(Syn { initial_seq, version });
        return Some(d);
    }
    let mut off = 8;
    if d.has(FLAG_ACK) {
        let size = be16(p, off)? as usize;
        if size > 2048 {
            return None;
        }
        off += (2 + size).div_ceil(4) * 4;
    }
    if d.has(FLAG_ACK_OF_ACKS) {
        off += 4;
    }
    if d.has(FLAG_DATA) && !d.has(FLAG_FEC) {
        d.source = Some(be32(p, off + 4)?);
        d.data_at = off + 8;
    }
    Some(d)
}

/// A SYN datagram (the client's first): proves RDP over UDP.
pub fn is_syn(p: &[u8]) -> bool {
    parse(p).is_some_and(|d| d.syn.is_some() && !d.has(FLAG_ACK))
}

#[derive(Debug, Clone, Copy)]
struct Sent {
    sn: u32,
    ts: Ts,
    retransmitted: bool,
}

/// Round trips of one RDPEUDP flow, from its handshake and its data/ACK pairs.
#[derive(Debug, Default)]
pub struct UdpTimer {
    /// The SYN's and the SYN+ACK's sequence numbers and times (the latest sent).
    syn: Option<(u32, Ts)>,
    synack: Option<(u32, Ts)>,
    /// uUdpVer of the SYN+ACK (1 when it has none).
    pub version: Option<u16>,
    handshake_done: [bool; 2],
    /// Each side's source datagrams awaiting their acknowledgement.
    sent: [VecDeque<Sent>; 2],
    /// The highest snSourceAck seen from each side.
    acked: [Option<u32>; 2],
}

impl UdpTimer {
    /// The data phase's protocol: "rdpeudp" (versions 1 and 2) or
    /// "rdpeudp2" (version 3); None until a SYN+ACK was seen.
    pub fn protocol(&self) -> Option<&'static str> {
        self.version.map(|v| if v == VERSION_3 { "rdpeudp2" } else { "rdpeudp" })
    }

    /// A datagram from `from` at `ts`: the round-trip samples it gives.
    pub fn on_datagram(&mut self, ts: Ts, from: Side, p: &[u8]) -> [Option<RttSample>; 2] {
        match parse(p) {
            Some(d) => self.on_parsed(ts, from, &d),
            None => [None, None],
        }
    }

    /// A source datagram of the data phase (versions 1 and 2) whose data is
    /// `wire_len` − its headers long: what the desktop analysis reads.
    pub fn source(&self, d: &Datagram, wire_len: usize) -> Option<Source> {
        if self.version.is_none_or(|v| v == VERSION_3) {
            return None;
        }
        let len = u32::try_from(wire_len.checked_sub(d.data_at)?).ok().filter(|&l| l > 0)?;
        Some(Source { sn: d.source?, ack: d.ack, len })
    }

    /// A parsed datagram from `from` at `ts`: the round-trip samples it gives.
    pub fn on_parsed(&mut self, ts: Ts, from: Side, d: &Datagram) -> [Option<RttSample>; 2] {
        let mut out = [None, None];
        let d = *d;
        let sample = |leg, kind, t0: Ts| (ts >= t0).then_some(RttSample { leg, kind, ns: ts - t0 });
        if let Some(syn) = d.syn {
            match (from, d.has(FLAG_ACK)) {
                (Side::Client, false) => self.syn = Some((syn.initial_seq, ts)),
                (Side::Server, true) => {
                    if let Some((isn, t0)) = self.syn
                        && d.ack == isn
                        && !self.handshake_done[1]
                    {
                        self.handshake_done[1] = true;
                        out[0] = sample(Side::Server, SampleKind::Handshake, t0);
                    }
                    self.synack = Some((syn.initial_seq, ts));
                    self.version = Some(syn.version.unwrap_or(1));
                }
                _ => {}
            }
            return out;
        }
        // Only a flow whose handshake chose versions 1 or 2 is read further.
        if self.version.is_none_or(|v| v == VERSION_3) {
            return out;
        }
        let i = from as usize;
        // The client's first acknowledgement of the SYN+ACK: the client leg.
        if from == Side::Client
            && !self.handshake_done[0]
            && let Some((isn, t0)) = self.synack
        {
            self.handshake_done[0] = true;
            if d.has(FLAG_ACK) && d.ack == isn && !d.has(FLAG_DATA) {
                out[0] = sample(Side::Client, SampleKind::Handshake, t0);
            }
        }
        if d.has(FLAG_ACK) && out[0].is_none() {
            out[0] = self.on_ack(ts, from, &d);
        }
        if let Some(sn) = d.source {
            let sent = &mut self.sent[i];
            if let Some(s) = sent.iter_mut().find(|s| s.sn == sn) {
                s.retransmitted = true;
            } else if sent.back().is_none_or(|b| seq::lt(b.sn, sn)) {
                if sent.len() == MAX_OUTSTANDING {
                    sent.pop_front();
                }
                sent.push_back(Sent { sn, ts, retransmitted: false });
            }
        }
        out
    }

    /// An acknowledgement from `from`: a sample on its leg when it newly
    /// reaches exactly a datagram of the other side sent once, and is a pure
    /// ACK sent at once (no data of its own, not flagged as delayed).
    fn on_ack(&mut self, ts: Ts, from: Side, d: &Datagram) -> Option<RttSample> {
        let i = from as usize;
        if self.acked[i].is_some_and(|a| !seq::lt(a, d.ack)) {
            return None;
        }
        self.acked[i] = Some(d.ack);
        let sent = &mut self.sent[1 - i];
        let mut found = None;
        while let Some(f) = sent.front() {
            if !seq::le(f.sn, d.ack) {
                break;
            }
            found = sent.pop_front();
        }
        let f = found.filter(|f| f.sn == d.ack && !f.retransmitted)?;
        if d.has(FLAG_DATA) || d.has(FLAG_ACK_DELAYED) || ts < f.ts {
            return None;
        }
        Some(RttSample { leg: from, kind: SampleKind::Ack, ns: ts - f.ts })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(ack: u32, flags: u16) -> Vec<u8> {
        let mut v = ack.to_be_bytes().to_vec();
        v.extend_from_slice(&64u16.to_be_bytes());
        v.extend_from_slice(&flags.to_be_bytes());
        v
    }

    pub(crate) fn syn(ack: u32, flags: u16, isn: u32, version: Option<u16>) -> Vec<u8> {
        let mut v = header(ack, flags | if version.is_some() { FLAG_SYNEX } else { 0 });
        v.extend_from_slice(&isn.to_be_bytes());
        v.extend_from_slice(&[0x04, 0xD0, 0x04, 0xD0]);
        if let Some(ver) = version {
            v.extend_from_slice(&1u16.to_be_bytes());
            v.extend_from_slice(&ver.to_be_bytes());
        }
        v
    }

    /// An ACK (with a one-element vector) and, with `source`, data.
    fn data(ack: u32, source: Option<u32>, extra: u16) -> Vec<u8> {
        let flags = FLAG_ACK | extra | if source.is_some() { FLAG_DATA } else { 0 };
        let mut v = header(ack, flags);
        v.extend_from_slice(&[0, 1, 0x41, 0]); // one element, padded to 4
        if let Some(sn) = source {
            v.extend_from_slice(&sn.wrapping_add(7).to_be_bytes());
            v.extend_from_slice(&sn.to_be_bytes());
            v.extend_from_slice(b"payload");
        }
        v
    }

    /// The client's SYN of pcaps/public/zeek/rdpeudp2-handshake-success.pcap (first 96 bytes).
    const RDPEUDP2_SYN: [u8; 52] = [
        0xff, 0xff, 0xff, 0xff, 0x00, 0x40, 0x18, 0x01, 0xa7, 0xeb, 0x5d, 0xa4, 0x04, 0xd0, 0x04, 0xd0, 0xa2, 0xe2,
        0xc8, 0x18, 0x6d, 0xe3, 0x4f, 0x1e, 0x8d, 0x0f, 0x91, 0x75, 0xe4, 0xcd, 0x00, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        0, 0, 0, 0, 0, 0, 0, 0x00, 0x01, 0x01, 0x01,
    ];

    #[test]
    fn parses_syns_and_data() {
        let d = parse(&RDPEUDP2_SYN).unwrap();
        assert_eq!(d.syn, Some(Syn { initial_seq: 0xa7eb5da4, version: Some(VERSION_3) }));
        assert!(is_syn(&RDPEUDP2_SYN));
        assert_eq!(
            parse(&syn(5, FLAG_SYN | FLAG_ACK, 9, None)).unwrap().syn,
            Some(Syn { initial_seq: 9, version: None })
        );
        let d = parse(&data(100, Some(200), 0)).unwrap();
        assert_eq!((d.ack, d.source), (100, Some(200)));
        let d = parse(&data(100, None, FLAG_ACK_OF_ACKS)).unwrap();
        assert_eq!(d.source, None);
    }

    #[test]
    fn truncated_or_garbage_datagrams_yield_nothing() {
        for cut in 0..RDPEUDP2_SYN.len() {
            assert_eq!(parse(&RDPEUDP2_SYN[..cut]), None, "cut {cut}");
        }
        let d = data(1, Some(2), 0);
        for cut in 0..16 {
            assert_eq!(parse(&d[..cut]).and_then(|d| d.source), None, "cut {cut}");
        }
        // A SYN whose snSourceAck is not −1, MTUs out of range, unknown flags.
        assert!(!is_syn(&syn(7, FLAG_SYN, 1, None)));
        let mut bad = syn(u32::MAX, FLAG_SYN, 1, None);
        bad[12] = 0x10;
        assert_eq!(parse(&bad), None);
        assert_eq!(parse(&header(0, 0x8000)), None);
        assert!(!is_syn(b"\x16\xfe\xfd\x00\x00\x00\x00\x00\x00\x00\x01\x00\x10"));
    }

    #[test]
    fn times_the_handshake_and_data_ack_pairs() {
        let ms = 1_000_000;
        let mut t = UdpTimer::default();
        let leg = |s: [Option<RttSample>; 2]| s[0].map(|x| (x.leg, x.kind, x.ns));
        assert_eq!(leg(t.on_datagram(0, Side::Client, &syn(u32::MAX, FLAG_SYN, 1000, Some(2)))), None);
        let synack = syn(1000, FLAG_SYN | FLAG_ACK, 5000, Some(2));
        assert_eq!(
            leg(t.on_datagram(40 * ms, Side::Server, &synack)),
            Some((Side::Server, SampleKind::Handshake, 40 * ms))
        );
        assert_eq!(t.protocol(), Some("rdpeudp"));
        assert_eq!(
            leg(t.on_datagram(50 * ms, Side::Client, &data(5000, None, 0))),
            Some((Side::Client, SampleKind::Handshake, 10 * ms))
        );
        // Server data 5001, client ACK 10 ms later: the client leg.
        t.on_datagram(60 * ms, Side::Server, &data(1000, Some(5001), 0));
        assert_eq!(
            leg(t.on_datagram(70 * ms, Side::Client, &data(5001, None, 0))),
            Some((Side::Client, SampleKind::Ack, 10 * ms))
        );
        // Client data 1001, server ACK 40 ms later: the server leg.
        t.on_datagram(80 * ms, Side::Client, &data(5001, Some(1001), 0));
        assert_eq!(
            leg(t.on_datagram(120 * ms, Side::Server, &data(1001, None, 0))),
            Some((Side::Server, SampleKind::Ack, 40 * ms))
        );
        // A retransmitted datagram, an ACK riding on data, a delayed ACK: no sample.
        t.on_datagram(130 * ms, Side::Server, &data(1001, Some(5002), 0));
        t.on_datagram(140 * ms, Side::Server, &data(1001, Some(5002), 0));
        assert_eq!(leg(t.on_datagram(150 * ms, Side::Client, &data(5002, None, 0))), None);
        t.on_datagram(160 * ms, Side::Server, &data(1001, Some(5003), 0));
        assert_eq!(leg(t.on_datagram(170 * ms, Side::Client, &data(5003, Some(1002), 0))), None);
        t.on_datagram(180 * ms, Side::Server, &data(1002, Some(5004), 0));
        assert_eq!(leg(t.on_datagram(190 * ms, Side::Client, &data(5004, None, FLAG_ACK_DELAYED))), None);
        // An old acknowledgement again: nothing.
        assert_eq!(leg(t.on_datagram(200 * ms, Side::Client, &data(5004, None, 0))), None);
    }

    #[test]
    fn a_source_datagrams_data_is_measured_past_its_headers() {
        let mut t = UdpTimer::default();
        t.on_datagram(0, Side::Client, &syn(u32::MAX, FLAG_SYN, 1000, Some(2)));
        let before = data(1000, Some(5001), 0);
        let d = parse(&before).unwrap();
        // Before the SYN+ACK chose the data phase's version, nothing is read.
        assert_eq!(t.source(&d, before.len()), None);
        t.on_datagram(1, Side::Server, &syn(1000, FLAG_SYN | FLAG_ACK, 5000, Some(2)));
        // Header 8 + ACK vector 4 + source payload header 8: 7 bytes of data.
        assert_eq!(t.source(&d, before.len()), Some(Source { sn: 5001, ack: 1000, len: 7 }));
        // An ack of acks moves the data 4 bytes on; a capture cut after the
        // headers still has the length on the wire.
        let mut aoa = data(1000, Some(5002), FLAG_ACK_OF_ACKS);
        aoa.splice(12..12, [0, 0, 0x13, 0x88]); // snAckOfAcksSeqNum after the ACK vector
        let d = parse(&aoa).unwrap();
        assert_eq!(d.data_at, 24);
        assert_eq!(t.source(&d, 24 + 41), Some(Source { sn: 5002, ack: 1000, len: 41 }));
        // A pure ACK, or a datagram with nothing past its headers, carries no data.
        assert_eq!(t.source(&parse(&data(1000, None, 0)).unwrap(), 12), None);
        assert_eq!(t.source(&d, 24), None);
        assert_eq!(t.source(&d, 10), None);
    }

    #[test]
    fn a_windows_source_datagrams_data_is_its_tls_record() {
        // The client's first datagram after the SYN+ACK in zeek's
        // rdpeudp-handshake-success.pcap (203 bytes of UDP payload, first 40
        // here): ACK | DATA, an empty ACK vector (its size, padded: 4 bytes), snCoded and
        // snSourceStart 0x0b127f16, then a TLS record (0x16 0x03 0x03).
        const FIRST: [u8; 40] = [
            0x0f, 0x94, 0xea, 0x0b, 0x04, 0x00, 0x00, 0x0c, 0x00, 0x00, 0x00, 0x00, 0x0b, 0x12, 0x7f, 0x16, 0x0b, 0x12,
            0x7f, 0x16, 0x16, 0x03, 0x03, 0x00, 0xb2, 0x01, 0x00, 0x00, 0xae, 0x03, 0x03, 0x5d, 0x40, 0xb9, 0x50, 0x2b,
            0x7a, 0x9d, 0x71, 0x26,
        ];
        let d = parse(&FIRST).unwrap();
        assert_eq!(&FIRST[d.data_at..d.data_at + 3], &[0x16, 0x03, 0x03]);
        let t = UdpTimer { version: Some(2), ..UdpTimer::default() };
        assert_eq!(t.source(&d, 203), Some(Source { sn: 0x0b12_7f16, ack: 0x0f94_ea0b, len: 183 }));
    }

    #[test]
    fn version_3_times_the_handshake_only() {
        let mut t = UdpTimer::default();
        t.on_datagram(0, Side::Client, &RDPEUDP2_SYN);
        let s = t.on_datagram(2_518_000, Side::Server, &syn(0xa7eb5da4, FLAG_SYN | FLAG_ACK, 77, Some(VERSION_3)));
        assert_eq!(s[0].map(|x| (x.leg, x.ns)), Some((Side::Server, 2_518_000)));
        assert_eq!(t.protocol(), Some("rdpeudp2"));
        assert_eq!(t.on_datagram(3_000_000, Side::Client, &data(77, None, 0)), [None, None]);
    }
}
