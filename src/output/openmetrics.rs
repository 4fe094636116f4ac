//! The OpenMetrics text format (what Prometheus asks for first), from the
//! Prometheus text exposition: a counter family is named without its
//! `_total` suffix in `# HELP` and `# TYPE` (its samples keep it), quotes in
//! help are escaped, and the exposition ends with `# EOF`. Gauges and
//! histograms read the same in both.

/// The content type of [`from_text`]'s output.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Whether a scrape's `Accept` header asks for OpenMetrics.
pub fn wanted(accept: &str) -> bool {
    accept.split(',').any(|part| {
        let mut params = part.split(';').map(str::trim);
        let is_om = params.next() == Some("application/openmetrics-text");
        // A zero quality refuses it.
        is_om && !params.any(|p| p.replace(' ', "") == "q=0" || p.replace(' ', "") == "q=0.0")
    })
}

/// The OpenMetrics form of a Prometheus text exposition.
pub fn from_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 16);
    let mut help: Option<&str> = None;
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            help = Some(rest);
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap_or((rest, "untyped"));
            let family = match kind {
                "counter" => name.strip_suffix("_total").unwrap_or(name),
                _ => name,
            };
            let kind = if kind == "untyped" { "unknown" } else { kind };
            if let Some(h) = help.take() {
                let text = h.split_once(' ').map_or("", |(_, t)| t);
                out.push_str(&format!("# HELP {family} {}\n", text.replace('"', "\\\"")));
            }
            out.push_str(&format!("# TYPE {family} {kind}\n"));
            continue;
        }
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    out.push_str("# EOF\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_lose_total_in_their_family_name_and_the_text_ends_with_eof() {
        let text = "# HELP echoloc_packets_total Packets read.\n# TYPE echoloc_packets_total counter\n\
                    echoloc_packets_total 7\n# HELP g A \"quoted\" gauge.\n# TYPE g gauge\ng{a=\"x\"} 1.5\n";
        assert_eq!(
            from_text(text),
            "# HELP echoloc_packets Packets read.\n# TYPE echoloc_packets counter\necholoc_packets_total 7\n\
             # HELP g A \\\"quoted\\\" gauge.\n# TYPE g gauge\ng{a=\"x\"} 1.5\n# EOF\n"
        );
    }

    #[test]
    fn prometheus_accept_header_asks_for_it() {
        // Prometheus 2.42's scrape Accept header.
        assert!(wanted(
            "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
        ));
        assert!(!wanted("text/plain;version=0.0.4"));
        assert!(!wanted("*/*"));
        assert!(!wanted("application/openmetrics-text;q=0"));
    }
}
