//! Latency levels of answers, and how fast the client software answers by itself.

/// Slack around the client's usual answer time, ms: a busy client host
/// answers a few ms late.
const AUTO_SLACK_MS: f64 = 2.0;
/// What a pty and a shell add to an echo at most, ms.
const PTY_MS: f32 = 10.0;
/// A span this short is the client beside the sensor.
const TIGHT_MS: f32 = 5.0;

/// How fast the client software answers a server packet by itself, ms after it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AutoAnswer {
    /// The span of its fastest level of authentication answers, with
    /// tolerance (empty when the answers form no level).
    span: [f32; 2],
    /// Before the first keystroke: the answer time (that level's slowest, else
    /// the median answer) plus a person's reaction time.
    reach: f32,
}

impl AutoAnswer {
    pub fn from_turnarounds(answers: &[f64], reaction_ms: f64) -> Option<AutoAnswer> {
        if answers.len() < 3 {
            return None;
        }
        let mut v = answers.to_vec();
        v.sort_by(f64::total_cmp);
        let level = levels(&v, 3).first().copied();
        let span = level.map_or([f32::INFINITY, f32::NEG_INFINITY], |l| {
            [(l.min * 0.8 - AUTO_SLACK_MS) as f32, (l.max * 1.2 + AUTO_SLACK_MS) as f32]
        });
        let usual = level.map_or(v[v.len() / 2], |l| l.max);
        Some(AutoAnswer { span, reach: (usual + reaction_ms) as f32 })
    }

    /// The client answers within a few ms: it sits beside the sensor.
    pub fn tight(&self) -> bool {
        self.span[1] <= TIGHT_MS
    }

    /// Is an answer `d` ms after the server's packet the client echoing a
    /// key through its pty (the software's span, and up to [`PTY_MS`] more)?
    pub fn covers_echo(&self, d: f64) -> bool {
        let d = d as f32;
        d >= self.span[0] && d <= self.span[1] + PTY_MS
    }

    /// Is an answer `d` ms after the server's packet the software's? Once the
    /// person has typed, only within the span; before, anything up to `reach`.
    pub fn covers(&self, d: f64, typed: bool) -> bool {
        let d = d as f32;
        if typed { (self.span[0]..=self.span[1]).contains(&d) } else { d <= self.reach }
    }
}

/// A latency level of answers: values no more than 15 % + 2 ms apart.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AnswerLevel {
    /// Robust floor (20th percentile).
    pub floor: f64,
    pub min: f64,
    pub max: f64,
    pub count: usize,
}

/// The latency levels of sorted answers (at least `least` answers each), lowest first.
pub fn levels(sorted: &[f64], least: usize) -> Vec<AnswerLevel> {
    let mut levels = Vec::new();
    let mut start = 0;
    for i in 1..=sorted.len() {
        if i == sorted.len() || sorted[i] > sorted[i - 1] * 1.15 + 2.0 {
            let run = &sorted[start..i];
            if run.len() >= least.max(1) {
                levels.push(AnswerLevel {
                    floor: low_percentile(run),
                    min: run[0],
                    max: run[run.len() - 1],
                    count: run.len(),
                });
            }
            start = i;
        }
    }
    levels
}

/// 20th percentile (nearest rank) of sorted values: robust to one fast outlier.
pub fn low_percentile(sorted: &[f64]) -> f64 {
    let i = ((0.2 * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

/// The count of size class `size` in a per-size table (0 when absent).
pub fn count_of<N: Copy + Default>(table: &[(u32, N)], size: u32) -> N {
    table.iter().find(|(s, _)| *s == size).map_or(N::default(), |e| e.1)
}

/// Count one more of `size` in a small bounded table of size classes.
pub fn bump<N: From<u8> + std::ops::AddAssign>(table: &mut Vec<(u32, N)>, size: u32) {
    let full = table.len() >= 16;
    match table.iter_mut().find(|(s, _)| *s == size) {
        Some(e) => e.1 += N::from(1),
        None if !full => table.push((size, N::from(1))),
        None => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_group_close_answers() {
        let v = [10.0, 10.5, 11.0, 30.0, 30.2, 31.0, 90.0];
        let l = levels(&v, 3);
        assert_eq!(l.len(), 2);
        assert_eq!((l[0].min, l[1].max, l[1].count), (10.0, 31.0, 3));
        assert_eq!(levels(&v, 1).len(), 3);
    }
}
