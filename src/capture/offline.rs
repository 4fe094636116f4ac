//! Replay of capture files, several in a row, in the order given.

use crate::decode::LinkType;
use crate::engine::{Engine, RecordSink};
use pcap::{Capture, Precision};
use std::path::{Path, PathBuf};

/// A file that could not be read to its end.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {cause}")]
pub struct ReplayError {
    pub path: String,
    pub cause: String,
}

/// Expand directories (their .pcap/.pcapng/.cap files, sorted by name).
pub fn expand(paths: &[PathBuf]) -> Result<Vec<PathBuf>, ReplayError> {
    let mut out = Vec::new();
    for p in paths {
        if p.is_dir() {
            let rd = std::fs::read_dir(p).map_err(|e| err(p, e.to_string()))?;
            let mut files: Vec<PathBuf> = rd
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|f| {
                    f.is_file()
                        && matches!(f.extension().and_then(|x| x.to_str()), Some("pcap" | "pcapng" | "cap" | "dmp"))
                })
                .collect();
            files.sort();
            out.extend(files);
        } else {
            out.push(p.clone());
        }
    }
    Ok(out)
}

/// Total size of the files, for progress.
pub fn total_bytes(files: &[PathBuf]) -> u64 {
    files.iter().filter_map(|f| std::fs::metadata(f).ok()).map(|m| m.len()).sum()
}

/// Read one file through the engine. `progress` is called with bytes read.
pub fn replay_file(
    path: &Path,
    engine: &mut Engine,
    out: &mut dyn RecordSink,
    progress: &mut dyn FnMut(u64),
) -> Result<(), ReplayError> {
    let mut cap = Capture::from_file_with_precision(path, Precision::Nano).map_err(|e| err(path, cause(&e)))?;
    let dl = cap.get_datalink().0;
    let link = LinkType::from_pcap(dl);
    let mut pending: u64 = 0;
    loop {
        match cap.next_packet() {
            Ok(pkt) => {
                super::feed(engine, link, &pkt, out);
                pending += 16 + pkt.header.caplen as u64;
                if pending >= 1 << 20 {
                    progress(pending);
                    pending = 0;
                }
            }
            Err(pcap::Error::NoMorePackets) => break,
            Err(e) => {
                progress(pending);
                return Err(err(path, cause(&e)));
            }
        }
    }
    progress(pending);
    if link.is_none() {
        tracing::warn!(file = %path.display(), linktype = dl, "link type not supported; packets counted and skipped");
    }
    Ok(())
}

fn cause(e: &pcap::Error) -> String {
    match e {
        pcap::Error::PcapError(s) => s.clone(),
        other => other.to_string(),
    }
}

fn err(path: &Path, cause: String) -> ReplayError {
    let path = path.display().to_string();
    // libpcap names the file itself in some messages: say it once.
    let cause = cause.strip_prefix(&format!("{path}: ")).map(String::from).unwrap_or(cause);
    ReplayError { path, cause }
}
