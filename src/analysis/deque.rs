//! A queue that keeps its first `N` elements in place and moves to the heap
//! only when more are queued at once.
//!
//! Per-connection queues are nearly always short (one keystroke awaiting its
//! echo, two segments awaiting their ACK). Held inside the session they share
//! its cache lines, and no pointer has to be followed to reach them: with
//! thousands of sessions open, each such pointer is one more cache miss that
//! must wait for the one before.

use std::collections::VecDeque;
use std::ops::Range;

/// In declaration order (`repr(C)`): where the elements are, then the
/// elements, so the front of a short queue is next to its length.
#[derive(Debug, Clone)]
#[repr(C)]
pub struct InlineDeque<T, const N: usize> {
    head: u8,
    len: u8,
    /// The elements are in `spill`: more than `N` were queued at once, and
    /// the queue has not been empty since.
    on_heap: bool,
    /// Kept once allocated, for the next burst. Boxed: a pointer takes 8
    /// bytes of the session's cache lines, an empty `VecDeque` 32.
    #[allow(clippy::box_collection)]
    spill: Option<Box<VecDeque<T>>>,
    /// A ring of `len` elements from `head`, while nothing has spilled.
    inline: [T; N],
}

impl<T: Copy + Default, const N: usize> Default for InlineDeque<T, N> {
    fn default() -> Self {
        const { assert!(N > 0 && N < 128) };
        InlineDeque { inline: [T::default(); N], head: 0, len: 0, on_heap: false, spill: None }
    }
}

impl<T: Copy + Default, const N: usize> InlineDeque<T, N> {
    /// The heap queue, while the elements are there.
    /// The flag first: the pointer may lie on the next cache line, which a
    /// queue that never spilled need not read.
    fn heap(&self) -> Option<&VecDeque<T>> {
        if self.on_heap { self.spill.as_deref() } else { None }
    }

    fn heap_mut(&mut self) -> Option<&mut VecDeque<T>> {
        if self.on_heap { self.spill.as_deref_mut() } else { None }
    }

    pub fn len(&self) -> usize {
        match self.heap() {
            Some(v) => v.len(),
            None => self.len as usize,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn front(&self) -> Option<&T> {
        match self.heap() {
            Some(v) => v.front(),
            None => (self.len > 0).then(|| &self.inline[self.head as usize]),
        }
    }

    pub fn clear(&mut self) {
        while self.pop_front().is_some() {}
    }

    pub fn pop_front(&mut self) -> Option<T> {
        if let Some(v) = self.heap_mut() {
            let x = v.pop_front();
            // Drained: back in place, until the next burst.
            self.on_heap = !v.is_empty();
            return x;
        }
        if self.len == 0 {
            return None;
        }
        let x = self.inline[self.head as usize];
        self.head = ((self.head as usize + 1) % N) as u8;
        self.len -= 1;
        Some(x)
    }

    pub fn push_back(&mut self, x: T) {
        if let Some(v) = self.heap_mut() {
            v.push_back(x);
            return;
        }
        if (self.len as usize) < N {
            self.inline[(self.head as usize + self.len as usize) % N] = x;
            self.len += 1;
            return;
        }
        let v = self.spill.get_or_insert_with(|| Box::new(VecDeque::with_capacity((2 * N).max(8))));
        v.clear();
        v.extend((0..N).map(|i| self.inline[(self.head as usize + i) % N]));
        v.push_back(x);
        (self.head, self.len, self.on_heap) = (0, 0, true);
    }

    /// Where the in-place elements are: from `head` on, then wrapped to the start.
    fn inline_runs(&self) -> (Range<usize>, Range<usize>) {
        let (h, end) = (self.head as usize, self.head as usize + self.len as usize);
        if end <= N { (h..end, 0..0) } else { (h..N, 0..end - N) }
    }

    /// The elements, oldest first, as two runs.
    pub fn as_slices(&self) -> (&[T], &[T]) {
        if let Some(v) = self.heap() {
            return v.as_slices();
        }
        let (a, b) = self.inline_runs();
        (&self.inline[a], &self.inline[b])
    }

    pub fn as_mut_slices(&mut self) -> (&mut [T], &mut [T]) {
        let (a, b) = self.inline_runs();
        if self.on_heap
            && let Some(v) = self.spill.as_deref_mut()
        {
            return v.as_mut_slices();
        }
        // The wrapped run lies before `head`: split there.
        let (before, from_head) = self.inline.split_at_mut(a.start);
        (&mut from_head[..a.len()], &mut before[b])
    }

    pub fn iter(&self) -> impl Iterator<Item = &T> {
        let (a, b) = self.as_slices();
        a.iter().chain(b)
    }

    pub fn iter_mut(&mut self) -> impl Iterator<Item = &mut T> {
        let (a, b) = self.as_mut_slices();
        a.iter_mut().chain(b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The same operations on an `InlineDeque` and a `VecDeque` give the same
    /// contents, across wrap-around, spilling and draining.
    #[test]
    fn behaves_like_a_vecdeque() {
        let mut d: InlineDeque<u32, 3> = InlineDeque::default();
        let mut v: VecDeque<u32> = VecDeque::new();
        let mut rng = 0x2545_F491_4F6C_DD1Du64;
        for i in 0..20_000u32 {
            crate::analysis::stats::xorshift64(&mut rng);
            // Mostly short queues, now and then a burst that spills.
            let burst = i % 5000 > 4900;
            match rng % 10 {
                0..=4 => {
                    d.push_back(i);
                    v.push_back(i);
                }
                5..=7 if !burst => assert_eq!(d.pop_front(), v.pop_front()),
                8 => {
                    for (a, b) in d.iter_mut().zip(v.iter_mut()) {
                        *a += 1;
                        *b += 1;
                    }
                }
                _ => {}
            }
            assert_eq!(d.len(), v.len());
            assert_eq!(d.front(), v.front());
            assert!(d.iter().eq(v.iter()), "step {i}");
        }
        assert!(d.spill.is_some(), "the bursts spilled to the heap");
    }

    #[test]
    fn stays_in_place_up_to_n() {
        let mut d: InlineDeque<u8, 2> = InlineDeque::default();
        for round in 0..100u8 {
            d.push_back(round);
            d.push_back(round.wrapping_add(1));
            assert_eq!(d.iter().copied().collect::<Vec<_>>(), [round, round.wrapping_add(1)]);
            assert_eq!(d.pop_front(), Some(round));
            assert_eq!(d.pop_front(), Some(round.wrapping_add(1)));
            assert_eq!(d.pop_front(), None);
            assert!(d.is_empty());
        }
        assert!(d.spill.is_none());
        d.push_back(1);
        d.push_back(2);
        d.push_back(3);
        assert!(d.on_heap);
        assert_eq!(d.iter().copied().collect::<Vec<_>>(), [1, 2, 3]);
        // Drained, it is back in place, and keeps its order through the next burst.
        assert_eq!((d.pop_front(), d.pop_front(), d.pop_front()), (Some(1), Some(2), Some(3)));
        assert!(!d.on_heap);
        d.push_back(4);
        assert!(!d.on_heap);
        d.push_back(5);
        d.push_back(6);
        assert_eq!(d.iter().copied().collect::<Vec<_>>(), [4, 5, 6]);
        assert_eq!(d.front(), Some(&4));
    }
}
