//! Hostile input from real captures: every public capture and one lab set,
//! with bytes of their packets changed, lengths lied about, or the file cut
//! short. echoloc must never panic, must write valid JSON Lines, must exit 0
//! when only packet bytes changed (bad packets are counted and skipped, the
//! file is still a file) and 0 or 2 otherwise, and must not count a packet
//! twice.

mod common;

use common::pcap::{PcapRecords, pcap_records};
use common::rng::Rng;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Mutants made of each capture.
const PER_FILE: u64 = 6;

fn captures() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("pcaps");
    let mut out = Vec::new();
    let mut dirs = vec![root.join("public"), root.join("lab/jump-tr30-rs7.5")];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).unwrap_or_else(|e| panic!("{}: {e}", d.display())) {
            let p = e.unwrap().path();
            if p.is_dir() {
                dirs.push(p);
            } else if p.extension().is_some_and(|x| x == "pcap") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

#[derive(Debug, Clone, Copy)]
enum Mutation {
    /// Random bytes in the first 80 bytes of packets (the headers).
    Flip,
    /// Headers zeroed or filled with 0xff.
    Zero,
    Ones,
    /// The record's original length lied about (0, 1, huge, a little more).
    OrigLen,
    /// The file cut at a random byte.
    Cut,
}

fn mutate(data: &[u8], recs: &PcapRecords, m: Mutation, rng: &mut Rng) -> Vec<u8> {
    let mut b = data.to_vec();
    if let Mutation::Cut = m {
        b.truncate(24 + rng.below((data.len() - 24) as u64) as usize);
        return b;
    }
    for _ in 0..1 + rng.below(40) {
        let (off, len) = recs.data[rng.below(recs.data.len() as u64) as usize];
        if len == 0 {
            continue;
        }
        let i = off + rng.below(len.min(80) as u64) as usize;
        match m {
            Mutation::Flip => b[i] = rng.next() as u8,
            Mutation::Zero => b[i] = 0,
            Mutation::Ones => b[i] = 0xff,
            Mutation::OrigLen => {
                let v = [0, 1, u32::MAX, len as u32 + rng.below(70_000) as u32][rng.below(4) as usize];
                let bytes = if recs.little_endian { v.to_le_bytes() } else { v.to_be_bytes() };
                b[off - 4..off].copy_from_slice(&bytes);
            }
            Mutation::Cut => unreachable!(),
        }
    }
    b
}

#[test]
fn mutated_real_captures_never_panic_nor_double_count() {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = Rng(0xEC40_10C0_F022);
    let files = captures();
    assert!(files.len() >= 20, "captures found: {files:?}");
    let mut runs = 0;
    for f in &files {
        let data = std::fs::read(f).unwrap();
        let Some(recs) = pcap_records(&data) else { continue };
        if recs.data.is_empty() {
            continue;
        }
        for k in 0..PER_FILE {
            let m = [Mutation::Flip, Mutation::Flip, Mutation::Zero, Mutation::Ones, Mutation::OrigLen, Mutation::Cut]
                [(k % 6) as usize];
            let b = mutate(&data, &recs, m, &mut rng);
            let path = dir.path().join(format!("m{runs}.pcap"));
            std::fs::write(&path, &b).unwrap();
            let args = ["replay".to_string(), "--format".into(), "json".into(), path.display().to_string()];
            // No panic, every line JSON: checked by the runner.
            let run = common::run_with_timeout(&args, Duration::from_secs(60));
            let what = format!("{m:?} mutant {k} of {} ({})", f.display(), path.display());
            match m {
                Mutation::Flip | Mutation::Zero | Mutation::Ones => {
                    assert_eq!(run.code, Some(0), "{what}: {}", run.stderr)
                }
                Mutation::OrigLen | Mutation::Cut => {
                    assert!(matches!(run.code, Some(0 | 2)), "{what}: {:?} {}", run.code, run.stderr);
                    if run.code == Some(2) {
                        // Alerts are logged too; the fault is one line that names the file.
                        let errors: Vec<&str> = run.stderr.lines().filter(|l| l.starts_with("echoloc: ")).collect();
                        assert_eq!(errors.len(), 1, "{what}: {}", run.stderr);
                        assert!(errors[0].contains(&path.display().to_string()), "{what}: {}", errors[0]);
                    }
                }
            }
            let counted: u64 = run
                .records
                .iter()
                .map(|r| r["packets"]["client"].as_u64().unwrap() + r["packets"]["server"].as_u64().unwrap())
                .sum();
            assert!(
                counted <= recs.data.len() as u64,
                "{what}: {counted} packets in records, {} in the file",
                recs.data.len()
            );
            runs += 1;
        }
    }
    assert!(runs >= 100, "{runs} mutants");
}
