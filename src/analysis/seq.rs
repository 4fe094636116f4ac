//! Wrap-safe TCP sequence arithmetic (RFC 1982 style).

/// a < b in sequence space.
pub fn lt(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) < 0
}

/// a <= b in sequence space.
pub fn le(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) <= 0
}

/// Where a data segment falls in one direction's byte stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Continuity {
    /// All of it was seen before (a retransmission).
    Old,
    /// New data continuing exactly where the stream left off (or the first segment).
    InOrder,
    /// New data after a gap, or overlapping old data.
    Gap,
}

/// Follow a byte stream: classify the segment and move `next` past it.
pub fn follow(next: &mut Option<u32>, seq: u32, len: u32) -> Continuity {
    let end = seq.wrapping_add(len);
    let c = match *next {
        Some(n) if le(end, n) => return Continuity::Old,
        Some(n) if seq != n => Continuity::Gap,
        _ => Continuity::InOrder,
    };
    *next = Some(end);
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compares_across_the_wrap() {
        assert!(lt(u32::MAX - 10, 5));
        assert!(!lt(5, u32::MAX - 10));
        assert!(le(7, 7));
        assert!(lt(1, 2));
    }

    #[test]
    fn follows_a_stream() {
        let mut n = None;
        assert_eq!(follow(&mut n, u32::MAX - 1, 4), Continuity::InOrder);
        assert_eq!(follow(&mut n, 2, 4), Continuity::InOrder);
        assert_eq!(follow(&mut n, 2, 4), Continuity::Old);
        assert_eq!(follow(&mut n, 10, 4), Continuity::Gap);
    }
}
