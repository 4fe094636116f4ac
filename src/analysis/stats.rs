//! A bounded summary of samples: exact min/max/count, percentiles from a
//! reservoir of at most [`RESERVOIR`] samples (deterministic replacement, so
//! a replay gives the same answer every time).

use serde::Serialize;

pub const RESERVOIR: usize = 256;

/// Samples held in the summary itself before they go to the reservoir.
const STAGE: usize = 4;

/// Exact count, min and max, and a reservoir for percentiles. New samples
/// wait in a small array in place and enter the reservoir four at a time:
/// the reservoir is a separate allocation, and with thousands of sessions
/// open, each visit to it is a cache miss. The result is the same as adding
/// them one by one. What a sample writes fits in 56 bytes, within one cache
/// line where the holder aligns it so: the reservoir and its draw state are
/// behind one pointer.
#[derive(Debug, Clone, Default)]
pub struct Summary {
    count: u64,
    min: f64,
    max: f64,
    stage: [f32; STAGE],
    staged: u8,
    /// Allocated at the first flush of the stage.
    reservoir: Option<Box<Reservoir>>,
}

/// The samples kept for percentiles (the first `count - staged` samples'
/// draw) and the state of the draw.
#[derive(Debug, Clone, Default)]
struct Reservoir {
    samples: Vec<f32>,
    rng: u64,
}

/// Quantiles of a summary, in the unit the samples were added in.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Quantiles {
    pub min: f64,
    pub p50: f64,
    pub p90: f64,
    pub max: f64,
    pub samples: u64,
    /// Median of the lowest cluster (samples within 1.5 × min + 0.5).
    pub floor: f64,
}

impl Summary {
    #[inline]
    pub fn add(&mut self, v: f64) {
        if self.count == 0 || v < self.min {
            self.min = v;
        }
        if self.count == 0 || v > self.max {
            self.max = v;
        }
        self.count += 1;
        self.stage[self.staged as usize] = v as f32;
        self.staged += 1;
        if self.staged as usize == STAGE {
            self.flush();
        }
    }

    /// The staged samples into the reservoir.
    fn flush(&mut self) {
        let first = self.count - STAGE as u64 + 1;
        let r = self.reservoir.get_or_insert_default();
        place(&mut r.samples, &mut r.rng, first, &self.stage);
        self.staged = 0;
    }

    pub fn count(&self) -> u64 {
        self.count
    }

    pub fn min(&self) -> Option<f64> {
        (self.count > 0).then_some(self.min)
    }

    /// Quantiles and floor, from one sorted copy of the reservoir. The floor
    /// is the median of the samples within 1.5 × min + 0.5 (the lowest
    /// cluster): jitter spreads a path's samples around its true value;
    /// delayed ACKs and queueing add a tail that it leaves out.
    pub fn quantiles(&self) -> Option<Quantiles> {
        if self.count == 0 {
            return None;
        }
        // The reservoir as it would be with the staged samples placed, built
        // as sort keys (the order of `f32::total_cmp`, compared as integers)
        // in a buffer on the stack: no copy of the reservoir is allocated.
        let (held, mut rng) = self.reservoir.as_ref().map_or((&[][..], 0), |r| (&r.samples[..], r.rng));
        let mut buf = [0u32; RESERVOIR];
        buf[..held.len()].iter_mut().zip(held).for_each(|(k, &x)| *k = sort_key(x));
        let staged = &self.stage[..self.staged as usize];
        let first = self.count - staged.len() as u64 + 1;
        let len = place_by(held.len(), &mut rng, first, staged, |i, x| buf[i] = sort_key(x));
        let keys = &mut buf[..len];
        keys.sort_unstable();
        let lim = self.min * 1.5 + 0.5;
        let low = keys.partition_point(|&k| (from_sort_key(k) as f64) <= lim);
        let floor = if low == 0 { self.min } else { rank(&keys[..low], 0.5).max(self.min) };
        Some(Quantiles {
            min: self.min,
            p50: rank(keys, 0.5).clamp(self.min, self.max),
            p90: rank(keys, 0.9).clamp(self.min, self.max),
            max: self.max,
            samples: self.count,
            floor,
        })
    }
}

/// Algorithm R: put `vs`, the samples numbered `first`, `first + 1`… (from
/// 1), into the reservoir. A fixed-seed xorshift draws the replacements, so
/// the same input keeps the same samples.
fn place(reservoir: &mut Vec<f32>, rng: &mut u64, first: u64, vs: &[f32]) {
    place_by(reservoir.len(), rng, first, vs, |i, v| {
        if i < reservoir.len() {
            reservoir[i] = v;
            return;
        }
        if reservoir.len() == reservoir.capacity() {
            // Grow by 16, 32, 64… samples: fewer reallocations than from 4.
            reservoir.reserve_exact(reservoir.len().max(16));
        }
        reservoir.push(v);
    });
}

/// Algorithm R's steps for `vs` over a reservoir now holding `len` samples:
/// `put(i, v)` keeps `v` in slot `i` (`i` equal to the length: appended).
/// Returns the reservoir's new length. [`place`] keeps the reservoir itself;
/// [`Summary::quantiles`] places the staged samples into a sorted-key copy.
fn place_by(mut len: usize, rng: &mut u64, first: u64, vs: &[f32], mut put: impl FnMut(usize, f32)) -> usize {
    for (n, &v) in (first..).zip(vs) {
        if len < RESERVOIR {
            put(len, v);
            len += 1;
        } else if let Some(j) = draw(rng, n) {
            put(j, v);
        }
    }
    len
}

/// Algorithm R's draw for sample number `n` (from 1) once the reservoir is
/// full: the slot it replaces, if any.
fn draw(rng: &mut u64, n: u64) -> Option<usize> {
    *rng = if *rng == 0 { 0x9E37_79B9_7F4A_7C15 } else { *rng };
    let j = xorshift64(rng) % n;
    ((j as usize) < RESERVOIR).then_some(j as usize)
}

/// The densest cluster of `values`: the window, `width(low end)` wide,
/// with the most values per unit of width (the values in it, as
/// quantiles), where at least `min` values are given. Wrong pairings smear
/// out over many lags; the true one is shared by every pair. A window that
/// widens with the lag is scored by its density, so a wide window far out
/// does not win by its width alone.
pub fn densest(values: &[f32], width: impl Fn(f32) -> f32, min: usize) -> Option<Quantiles> {
    if values.len() < min.max(1) {
        return None;
    }
    let mut v = values.to_vec();
    v.sort_unstable_by(|a, b| a.total_cmp(b));
    let (mut best, mut at, mut n, mut j) = (0.0f32, 0, 0, 0);
    for i in 0..v.len() {
        while v[i] - v[j] > width(v[j]) {
            j += 1;
        }
        let score = (i + 1 - j) as f32 / width(v[j]);
        if score > best {
            (best, at, n) = (score, j, i + 1 - j);
        }
    }
    let mut sum = Summary::default();
    v[at..at + n].iter().for_each(|&x| sum.add(x as f64));
    sum.quantiles()
}

/// One step of Marsaglia's xorshift64 (state never 0): a fixed sequence for
/// a fixed seed, so replays and tests draw the same numbers every time.
pub fn xorshift64(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

/// Nearest-rank quantile `q` of sorted keys (see [`sort_key`]).
fn rank(sorted: &[u32], q: f64) -> f64 {
    let n = sorted.len();
    let i = ((q * n as f64).ceil() as usize).clamp(1, n) - 1;
    from_sort_key(sorted[i]) as f64
}

/// A float's bits as an integer that sorts as `f32::total_cmp` does:
/// negative numbers (sign bit set) have all bits flipped, the others only
/// the sign bit.
fn sort_key(x: f32) -> u32 {
    let b = x.to_bits();
    if b >> 31 == 1 { !b } else { b | 1 << 31 }
}

fn from_sort_key(k: u32) -> f32 {
    f32::from_bits(if k >> 31 == 1 { k & !(1 << 31) } else { !k })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_is_none() {
        assert!(Summary::default().quantiles().is_none());
    }

    #[test]
    fn nearest_rank_percentiles() {
        let mut s = Summary::default();
        for v in 1..=10 {
            s.add(v as f64);
        }
        let q = s.quantiles().unwrap();
        assert_eq!((q.min, q.p50, q.p90, q.max, q.samples), (1.0, 5.0, 9.0, 10.0, 10));
        // Lowest cluster: 1.0 and 2.0 (≤ 1.5 × 1 + 0.5): its median.
        assert_eq!(q.floor, 1.0);
    }

    #[test]
    fn staged_samples_give_the_same_figures_as_one_at_a_time() {
        // The reference places each sample in the reservoir as it comes.
        let (mut reservoir, mut rng) = (Vec::new(), 0u64);
        let mut s = Summary::default();
        let mut x = 7u64;
        for n in 1..=700u64 {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let v = ((x >> 33) % 10_000) as f64 / 100.0;
            s.add(v);
            place(&mut reservoir, &mut rng, n, &[v as f32]);
            // Every count, so also between flushes and across the reservoir's bound.
            let mut sorted = reservoir.clone();
            sorted.sort_unstable_by(|a, b| a.total_cmp(b));
            let nearest =
                |q: f64| sorted[((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1] as f64;
            let q = s.quantiles().unwrap();
            assert_eq!(q.samples, n);
            assert_eq!(q.p50, nearest(0.5).clamp(q.min, q.max), "p50 after {n}");
            assert_eq!(q.p90, nearest(0.9).clamp(q.min, q.max), "p90 after {n}");
        }
        assert_eq!(s.reservoir.as_ref().map(|r| r.samples.len()), Some(RESERVOIR));
    }

    #[test]
    fn sort_keys_order_floats_as_total_cmp_does() {
        let mut xs = vec![0.0f32, -0.0, 1.5, -1.5, 1e-30, -1e-30, 3e38, -3e38, f32::INFINITY, f32::NEG_INFINITY, 0.25];
        xs.extend((0..200).map(|i| ((i * 7919) % 1000) as f32 / 7.0 - 60.0));
        let mut by_cmp = xs.clone();
        by_cmp.sort_by(|a, b| a.total_cmp(b));
        let mut keys: Vec<u32> = xs.iter().map(|&x| sort_key(x)).collect();
        keys.sort_unstable();
        let by_key: Vec<u32> = keys.iter().map(|&k| from_sort_key(k).to_bits()).collect();
        assert_eq!(by_key, by_cmp.iter().map(|x| x.to_bits()).collect::<Vec<_>>());
    }

    #[test]
    fn reservoir_is_bounded_and_exact_at_extremes() {
        let mut s = Summary::default();
        for v in 0..100_000 {
            s.add((v % 1000) as f64);
        }
        assert_eq!(s.reservoir.as_ref().map(|r| r.samples.len()), Some(RESERVOIR));
        let q = s.quantiles().unwrap();
        assert_eq!((q.min, q.max, q.samples), (0.0, 999.0, 100_000));
        assert!((q.p50 - 500.0).abs() < 100.0, "p50 {}", q.p50);
    }
}
