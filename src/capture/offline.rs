//! Replay of capture files, several in a row, in the order given (a
//! directory's files in the order of their first packets). Files that
//! continue each other in time form one timeline (the engine's
//! `start_file`).

use super::Receiver;
use crate::decode::LinkType;
use crate::time::Ts;
use pcap::{Capture, Offline};
use std::ffi::{CStr, c_char};
use std::os::fd::{AsFd, IntoRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::ptr::NonNull;

/// A file that could not be read to its end.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {cause}")]
pub struct ReplayError {
    pub path: String,
    pub cause: String,
}

/// An input that gives no file to read: a directory that cannot be listed,
/// or that holds no capture file.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    #[error("{0}")]
    Unreadable(ReplayError),
    #[error("no capture files in {}", .0.display())]
    NoCaptures(PathBuf),
}

/// Expand directories: their capture files (`.pcap`, `.pcapng`, `.cap`,
/// `.dmp`, and the numbered files of a `tcpdump -C` rotation, `.pcap1`…),
/// in the order of their first packets (then by name): a rotated series comes in time order whatever
/// its names. Files whose first packet cannot be read come last (their
/// error is reported when they are read). Returns the files, and the
/// inputs that gave none.
pub fn expand(paths: &[PathBuf]) -> (Vec<PathBuf>, Vec<InputError>) {
    let mut out = Vec::new();
    let mut errors = Vec::new();
    for p in paths {
        if p.is_dir() {
            let rd = match std::fs::read_dir(p) {
                Ok(rd) => rd,
                Err(e) => {
                    errors.push(InputError::Unreadable(err(p, os_cause(&e))));
                    continue;
                }
            };
            let mut files: Vec<(Ts, PathBuf)> = rd
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|f| f.is_file() && is_capture_name(f))
                .map(|f| (first_ts(&f).unwrap_or(Ts::MAX), f))
                .collect();
            if files.is_empty() {
                errors.push(InputError::NoCaptures(p.clone()));
            }
            files.sort();
            out.extend(files.into_iter().map(|(_, f)| f));
        } else {
            out.push(p.clone());
        }
    }
    (out, errors)
}

/// A capture file's name: `.pcap`, `.pcapng`, `.cap` or `.dmp`, maybe
/// followed by a rotation number.
fn is_capture_name(f: &Path) -> bool {
    let ext = f.extension().and_then(|x| x.to_str()).unwrap_or("");
    matches!(ext.trim_end_matches(|c: char| c.is_ascii_digit()), "pcap" | "pcapng" | "cap" | "dmp")
}

/// The timestamp of a file's first packet, if it has one and can be read.
fn first_ts(path: &Path) -> Option<Ts> {
    let mut cap = open(path).ok()?;
    let pkt = cap.next_packet().ok()?;
    Some(super::packet_ts(&pkt))
}

/// Total size of the files, for progress.
pub fn total_bytes(files: &[PathBuf]) -> u64 {
    files.iter().filter_map(|f| std::fs::metadata(f).ok()).map(|m| m.len()).sum()
}

/// Read one file, its frames to `to`. `progress` is called with bytes read.
pub fn replay_file<R: Receiver>(path: &Path, to: &mut R, progress: &mut dyn FnMut(u64)) -> Result<(), ReplayError> {
    let mut cap = open(path).map_err(|cause| err(path, cause))?;
    let dl = cap.get_datalink().0;
    let link = LinkType::from_pcap(dl);
    let mut pending: u64 = 0;
    let mut first = true;
    loop {
        match cap.next_packet() {
            Ok(pkt) => {
                if first {
                    first = false;
                    to.file_start(path, super::packet_ts(&pkt));
                }
                to.frame(&super::frame(link, &pkt));
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

/// The stdio buffer libpcap reads a capture file through. libpcap reads
/// each record with two `fread`s; glibc's default buffer (the file system's
/// block, 4 KiB) costs a `read` system call every ~50 header-only packets,
/// about 20 ns a packet. 64 KiB reads nearly as fast as 1 MiB (`dd`) and,
/// unlike 1 MiB (the size of the L2 cache), leaves the cache to session state.
const READ_BUFFER: usize = 1 << 16;
const PCAP_TSTAMP_PRECISION_NANO: u32 = 1;

unsafe extern "C" {
    /// libpcap's own opener for a stream the caller opened (libpcap ≥ 1.5).
    fn pcap_fopen_offline_with_tstamp_precision(fp: *mut libc::FILE, precision: u32, errbuf: *mut c_char) -> *mut u8;
}

/// A capture file open for libpcap, with the buffer its stream reads into.
pub struct CaptureFile {
    /// Dropped first: libpcap closes the stream...
    cap: Capture<Offline>,
    /// ...and only then is its buffer freed.
    _buf: Box<[u8]>,
}

impl std::ops::Deref for CaptureFile {
    type Target = Capture<Offline>;
    fn deref(&self) -> &Capture<Offline> {
        &self.cap
    }
}

impl std::ops::DerefMut for CaptureFile {
    fn deref_mut(&mut self) -> &mut Capture<Offline> {
        &mut self.cap
    }
}

/// Open a pcap or pcapng file for libpcap, as `pcap_open_offline` does
/// (nanosecond timestamps), but through a [`READ_BUFFER`] stdio buffer.
/// The error is the cause alone: the caller names the file.
pub fn open(path: &Path) -> Result<CaptureFile, String> {
    // "-" is standard input, as for libpcap (`tcpdump -w - | echoloc replay -`);
    // a copy of it, since the stream is closed at the end.
    let fd = if path == Path::new("-") {
        std::io::stdin().as_fd().try_clone_to_owned()
    } else {
        std::fs::File::open(path).map(OwnedFd::from)
    }
    .map_err(|e| os_cause(&e))?
    .into_raw_fd();
    let mut buf = vec![0u8; READ_BUFFER].into_boxed_slice();
    // SAFETY: `fd` is ours and open; `fdopen` takes it over, and `fclose`
    // closes it (libpcap's, when the capture is dropped, or ours on failure).
    // `setvbuf` comes before any read of the stream, as it must, and `buf`
    // outlives the stream (see `CaptureFile`; the heap block does not move).
    unsafe {
        let fp = libc::fdopen(fd, c"rb".as_ptr());
        if fp.is_null() {
            let e = std::io::Error::last_os_error();
            libc::close(fd);
            return Err(os_cause(&e));
        }
        libc::setvbuf(fp, buf.as_mut_ptr().cast(), libc::_IOFBF, buf.len());
        let mut errbuf = [0 as c_char; 256]; // PCAP_ERRBUF_SIZE
        let p = pcap_fopen_offline_with_tstamp_precision(fp, PCAP_TSTAMP_PRECISION_NANO, errbuf.as_mut_ptr());
        match NonNull::new(p) {
            // The pcap crate takes over the handle (and closes it on drop).
            Some(p) => Ok(CaptureFile { cap: Capture::from(p.cast()), _buf: buf }),
            None => {
                libc::fclose(fp);
                Err(CStr::from_ptr(errbuf.as_ptr()).to_string_lossy().into_owned())
            }
        }
    }
}

/// An I/O error's cause as libpcap words it ("No such file or directory").
fn os_cause(e: &std::io::Error) -> String {
    let s = e.to_string();
    match s.find(" (os error") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
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
