//! Replay of capture files, several in a row, in the order given (a
//! directory's files in the order of their first packets). Files that
//! continue each other in time form one timeline (the engine's
//! `start_file`).

use super::Receiver;
use crate::decode::LinkType;
use crate::time::Ts;
use pcap::{Capture, Offline};
use std::ffi::{CStr, c_char};
use std::io::{Read, Write};
use std::os::fd::{AsFd, FromRawFd, IntoRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

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
/// `.dmp`, the numbered files of a `tcpdump -C` rotation, `.pcap1`…, and
/// each of these gzip-compressed, `.gz`), in the order of their first
/// packets (then by name): a rotated series comes in time order whatever
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
/// followed by a rotation number, maybe then `.gz`.
fn is_capture_name(f: &Path) -> bool {
    let name = f.file_name().and_then(|n| n.to_str()).unwrap_or("");
    let name = name.strip_suffix(".gz").unwrap_or(name);
    let ext = Path::new(name).extension().and_then(|x| x.to_str()).unwrap_or("");
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

/// Read one file, its frames to `to`. `progress` is called with bytes read
/// (of a compressed file, compressed bytes).
pub fn replay_file<R: Receiver>(path: &Path, to: &mut R, progress: &mut dyn FnMut(u64)) -> Result<(), ReplayError> {
    let mut cap = open(path).map_err(|cause| err(path, cause))?;
    let dl = cap.get_datalink().0;
    let link = LinkType::from_pcap(dl);
    let compressed = cap.gzip.as_ref().map(|g| g.read.clone());
    let mut reported: u64 = 0;
    let mut report = |pending: u64| match &compressed {
        Some(c) => {
            let now = c.load(Ordering::Relaxed);
            progress(now.saturating_sub(reported));
            reported = now;
        }
        None => progress(pending),
    };
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
                    report(pending);
                    pending = 0;
                }
            }
            Err(pcap::Error::NoMorePackets) => break,
            Err(e) => {
                report(pending);
                // A decompression error explains the fault.
                return Err(err(path, cap.stream_error().unwrap_or_else(|| cause(&e))));
            }
        }
    }
    report(pending);
    // A compressed file may end cleanly for libpcap yet be cut short.
    if let Some(cause) = cap.stream_error() {
        return Err(err(path, cause));
    }
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
    /// A gzip-compressed file: libpcap reads a pipe that a thread fills.
    gzip: Option<Gunzip>,
}

impl CaptureFile {
    /// Of a compressed file that libpcap stopped reading (at its end or at
    /// a fault): whether decompression failed, and why (a corrupt or cut
    /// gzip file). What libpcap left unread is decompressed first (a fault
    /// it found may come from corrupt data the decompressor has yet to
    /// find wrong), so the answer does not depend on timing.
    pub fn stream_error(&self) -> Option<String> {
        self.gzip.as_ref().and_then(Gunzip::finish)
    }
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
/// (nanosecond timestamps), but through a [`READ_BUFFER`] stdio buffer. A
/// gzip-compressed file (found by its first byte, whatever its name; also on
/// standard input) is decompressed on its own thread into a pipe that
/// libpcap reads. The error is the cause alone: the caller names the file.
pub fn open(path: &Path) -> Result<CaptureFile, String> {
    // "-" is standard input, as for libpcap (`tcpdump -w - | echoloc replay -`);
    // a copy of it, since the stream is closed at the end.
    let fd = if path == Path::new("-") {
        std::io::stdin().as_fd().try_clone_to_owned()
    } else {
        std::fs::File::open(path).map(OwnedFd::from)
    }
    .map_err(|e| os_cause(&e))?;
    let mut buf = vec![0u8; READ_BUFFER].into_boxed_slice();
    let fp = buffered_stream(fd, &mut buf)?;
    // SAFETY: `fp` is a stream open for reading. A byte read and pushed back
    // is read again (glibc keeps it in the buffer).
    let first = unsafe {
        let c = libc::fgetc(fp);
        if c != libc::EOF {
            libc::ungetc(c, fp);
        }
        c
    };
    // 0x1f begins a gzip stream, and no capture format.
    if first == 0x1f {
        return gunzip(Source { fp, _buf: buf, read: Arc::new(AtomicU64::new(0)) });
    }
    // SAFETY: `fp` is open, reads into `buf`, and is handed over with it.
    unsafe { open_stream(fp, buf) }
}

/// `fd` as a stdio stream reading through `buf` (which must outlive the
/// stream and not move: a heap block kept with it). On failure `fd` is closed.
fn buffered_stream(fd: OwnedFd, buf: &mut [u8]) -> Result<*mut libc::FILE, String> {
    let fd = fd.into_raw_fd();
    // SAFETY: `fd` is ours and open; `fdopen` takes it over (it is closed by
    // `fclose` of the stream), or we close it on failure. `setvbuf` comes
    // before any read of the stream, as it must.
    unsafe {
        let fp = libc::fdopen(fd, c"rb".as_ptr());
        if fp.is_null() {
            let e = std::io::Error::last_os_error();
            libc::close(fd);
            return Err(os_cause(&e));
        }
        libc::setvbuf(fp, buf.as_mut_ptr().cast(), libc::_IOFBF, buf.len());
        Ok(fp)
    }
}

/// Hand the stream `fp`, reading through `buf`, to libpcap.
///
/// # Safety
/// `fp` is an open stream, reading through `buf` (or its own buffer), that
/// no one else closes: libpcap closes it when the capture is dropped, or
/// this function on failure.
unsafe fn open_stream(fp: *mut libc::FILE, buf: Box<[u8]>) -> Result<CaptureFile, String> {
    let mut errbuf = [0 as c_char; 256]; // PCAP_ERRBUF_SIZE
    // SAFETY: as the caller promised; `errbuf` has libpcap's size.
    unsafe {
        let p = pcap_fopen_offline_with_tstamp_precision(fp, PCAP_TSTAMP_PRECISION_NANO, errbuf.as_mut_ptr());
        match NonNull::new(p) {
            // The pcap crate takes over the handle (and closes it on drop).
            Some(p) => Ok(CaptureFile { cap: Capture::from(p.cast()), _buf: buf, gzip: None }),
            None => {
                libc::fclose(fp);
                Err(CStr::from_ptr(errbuf.as_ptr()).to_string_lossy().into_owned())
            }
        }
    }
}

/// The compressed file, read through its stdio stream (whose first byte
/// was peeked at), counting the bytes read.
struct Source {
    fp: *mut libc::FILE,
    /// Freed after the stream is closed (`Drop` runs before fields drop).
    _buf: Box<[u8]>,
    read: Arc<AtomicU64>,
}

// SAFETY: the stream is used by one thread at a time (the decompressing
// thread, once handed over), and stdio streams may change threads.
unsafe impl Send for Source {}

impl Read for Source {
    fn read(&mut self, b: &mut [u8]) -> std::io::Result<usize> {
        // SAFETY: `fp` is open for reading; `b` is writable for its length.
        let n = unsafe { libc::fread(b.as_mut_ptr().cast(), 1, b.len(), self.fp) };
        if n == 0 && unsafe { libc::ferror(self.fp) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        self.read.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

impl Drop for Source {
    fn drop(&mut self) {
        // SAFETY: the stream is open and closed only here.
        unsafe { libc::fclose(self.fp) };
    }
}

/// A decompressing thread's state: compressed bytes read, and why it
/// stopped early (set before libpcap can see the stream end).
struct Gunzip {
    read: Arc<AtomicU64>,
    error: Arc<Mutex<Option<String>>>,
    /// The pipe's reading end, a second handle to it (libpcap's stream is
    /// the other): to read what libpcap leaves to the end.
    pipe: std::fs::File,
}

impl Gunzip {
    /// Read the pipe to its end, then say why decompression failed, if it did.
    fn finish(&self) -> Option<String> {
        let mut rest = [0u8; 1 << 14];
        while match (&self.pipe).read(&mut rest) {
            Ok(n) => n > 0,
            Err(e) => e.kind() == std::io::ErrorKind::Interrupted,
        } {}
        self.error.lock().ok().and_then(|e| e.clone())
    }
}

/// Decompress `src` on a thread of its own into a pipe, and open the pipe's
/// other end for libpcap. The thread ends at the end of the input, on a
/// corrupt one (recorded), or when the reader closes the pipe.
fn gunzip(src: Source) -> Result<CaptureFile, String> {
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for the two descriptors.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(os_cause(&std::io::Error::last_os_error()));
    }
    // SAFETY: both descriptors were just opened, and are owned here alone.
    let (r, w) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    let pipe = r.try_clone().map_err(|e| os_cause(&e))?.into();
    let state = Gunzip { read: src.read.clone(), error: Arc::new(Mutex::new(None)), pipe };
    let error = state.error.clone();
    std::thread::Builder::new()
        .name("gunzip".into())
        .spawn(move || {
            let mut w = std::fs::File::from(w);
            let mut dec = flate2::read::MultiGzDecoder::new(src);
            let mut chunk = vec![0u8; READ_BUFFER];
            loop {
                match dec.read(&mut chunk) {
                    Ok(0) => break,
                    // The reader stopped (it closed the pipe): nothing to report.
                    Ok(n) => {
                        if w.write_all(&chunk[..n]).is_err() {
                            break;
                        }
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        if let Ok(mut slot) = error.lock() {
                            *slot = Some(gzip_cause(&e));
                        }
                        break;
                    }
                }
            }
            // The pipe closes here, after any error is recorded.
            drop(w);
        })
        .map_err(|e| format!("cannot start decompressing: {}", os_cause(&e)))?;
    let mut buf = vec![0u8; READ_BUFFER].into_boxed_slice();
    let fp = buffered_stream(r, &mut buf)?;
    // SAFETY: `fp` is open, reads into `buf`, and is handed over with it.
    match unsafe { open_stream(fp, buf) } {
        Ok(mut cap) => {
            cap.gzip = Some(state);
            Ok(cap)
        }
        Err(e) => Err(state.finish().unwrap_or(e)),
    }
}

/// A decompression error as a cause.
fn gzip_cause(e: &std::io::Error) -> String {
    if e.kind() == std::io::ErrorKind::UnexpectedEof {
        "gzip: compressed data cut short".to_string()
    } else {
        format!("gzip: {}", os_cause(e))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capture_names_plain_rotated_and_compressed() {
        for n in ["a.pcap", "a.pcapng", "a.cap", "a.dmp", "a.pcap12", "a.pcap.gz", "a.pcapng.gz", "a.pcap3.gz"] {
            assert!(is_capture_name(Path::new(n)), "{n}");
        }
        for n in ["a.txt", "a.gz", "a.tar.gz", "pcap", "a.pcap.bz2", "a.json"] {
            assert!(!is_capture_name(Path::new(n)), "{n}");
        }
    }
}
