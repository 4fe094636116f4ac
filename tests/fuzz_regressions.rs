//! Every input that once made a fuzz target fail (`fuzz/regressions/<target>/`)
//! goes through that target's entry point again (`echoloc::fuzzing`), so a
//! fixed bug stays fixed without cargo-fuzz. Also: the fuzz crate has one
//! target per entry point, and every committed input belongs to one.

use echoloc::fuzzing::TARGETS;
use std::path::Path;

fn fuzz_dir() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/fuzz"))
}

#[test]
fn regression_inputs_pass() {
    let mut replayed = 0;
    for (name, target) in TARGETS {
        let dir = fuzz_dir().join("regressions").join(name);
        let Ok(rd) = std::fs::read_dir(&dir) else { continue };
        let mut files: Vec<_> = rd.map(|e| e.unwrap().path()).filter(|p| p.is_file()).collect();
        files.sort();
        for f in files {
            let data = std::fs::read(&f).unwrap();
            eprintln!("{name}: {}", f.display());
            target(&data);
            replayed += 1;
        }
    }
    assert!(replayed > 0, "no regression inputs found under {}", fuzz_dir().join("regressions").display());
}

#[test]
fn one_fuzz_target_per_entry_point() {
    let mut files: Vec<String> = std::fs::read_dir(fuzz_dir().join("fuzz_targets"))
        .unwrap()
        .map(|e| e.unwrap().path().file_stem().unwrap().to_string_lossy().into_owned())
        .collect();
    files.sort();
    let mut names: Vec<String> = TARGETS.iter().map(|(n, _)| n.to_string()).collect();
    names.sort();
    assert_eq!(files, names);
    for d in std::fs::read_dir(fuzz_dir().join("regressions")).unwrap() {
        let d = d.unwrap().file_name().to_string_lossy().into_owned();
        assert!(names.contains(&d), "fuzz/regressions/{d} is no target's");
    }
}

/// The entry points take anything: empty and tiny inputs included.
#[test]
fn entry_points_take_any_bytes() {
    for (_, target) in TARGETS {
        for data in [&[][..], &[0], &[0xff; 3], &[0x80, 0, 0, 0, 0, 4, 1, 2, 3, 4]] {
            target(data);
        }
    }
}
