//! Wrap-safe TCP sequence arithmetic (RFC 1982 style).

/// a < b in sequence space.
pub fn lt(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) < 0
}

/// a <= b in sequence space.
pub fn le(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) <= 0
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
}
