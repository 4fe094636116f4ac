//! Putting the measurements of one session together: hidden latency and
//! relay verdict per side, the typist's round trip and distance, alerts.

use super::interactive::Interactive;
use super::relay::{Level, Relay, Thresholds, level_shifts, max_distance_km, verdict};
use crate::flow::Side;

/// Robust floor and spread of application turnarounds of one side, ms.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct AppRtt {
    pub min: f64,
    pub p50: f64,
    pub samples: u64,
    /// The robust floor used for hidden latency: 20th percentile.
    pub floor: f64,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Assessment {
    pub app_rtt: [Option<AppRtt>; 2],
    pub hidden_ms: [Option<f64>; 2],
    pub relay: [Option<Relay>; 2],
    pub terminal_rtt_ms: Option<f64>,
    pub typist_rtt_ms: Option<f64>,
    pub max_distance_km: Option<f64>,
}

/// `transport[i]`: the transport RTT floor (min) of leg i, ms.
pub fn assess(transport: [Option<f64>; 2], inter: Option<&Interactive>, t: &Thresholds) -> Assessment {
    let mut a = Assessment::default();
    let Some(inter) = inter else {
        a.typist_rtt_ms = transport[0];
        a.max_distance_km = transport[0].map(max_distance_km);
        return a;
    };
    for side in [Side::Client, Side::Server] {
        let i = side as usize;
        if let Some((floor, sum)) = inter.app_floor(side, transport[i])
            && let Some(q) = sum.quantiles()
        {
            a.app_rtt[i] = Some(AppRtt { min: q.min, p50: q.p50, samples: q.samples, floor });
        }
    }
    a.terminal_rtt_ms = inter.terminal.min();
    let echo_levels = inter.echo_levels();
    for side in [Side::Client, Side::Server] {
        let i = side as usize;
        let Some(tr) = transport[i] else { continue };
        let mut levels = Vec::new();
        if let Some(app) = a.app_rtt[i] {
            levels.push(Level { name: "app_rtt", ms: app.floor });
        }
        let mut shifts = 0;
        match side {
            Side::Client => {
                if let Some(term) = a.terminal_rtt_ms {
                    levels.push(Level { name: "terminal_rtt", ms: term });
                }
            }
            Side::Server => {
                // Echoes come from the far end's pty: the server side's deepest responder.
                if let Some(&last) = echo_levels.last() {
                    levels.push(Level { name: "echo", ms: last });
                    shifts = level_shifts(&echo_levels, t);
                }
            }
        }
        if levels.is_empty() {
            continue;
        }
        let (hidden, relay) = verdict(tr, &levels, shifts, t);
        a.hidden_ms[i] = hidden;
        a.relay[i] = Some(relay);
    }
    // The typist is on the client side: its deepest responder is the person's own machine.
    let candidates = [transport[0], a.app_rtt[0].map(|x| x.floor), a.terminal_rtt_ms];
    a.typist_rtt_ms = candidates.into_iter().flatten().fold(None, |m: Option<f64>, v| Some(m.map_or(v, |m| m.max(v))));
    a.max_distance_km = a.typist_rtt_ms.map(max_distance_km);
    a
}
