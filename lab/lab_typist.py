"""The scripted typist: drives `ssh` through a pty like a person at an xterm (answering Device Attributes
queries) and logs every keystroke with CLOCK_REALTIME. read_pty is shared with messy_typist.py."""

import fcntl
import os
import pty
import select
import signal
import struct
import termios
import time

from lab_common import LabError, r3, rfc3339_ns

DA_QUERY = b"\x1b[c"
DA_REPLY = b"\x1b[?64;1;2c"


# --------------------------------------------------------------------------------------------------------------
# Scripted typist
# --------------------------------------------------------------------------------------------------------------


def read_pty(t, timeout):
    """Wait up to `timeout` s for output of a scripted terminal `t` (its fd, eof, buf, keys and pending key): add
    it to t.buf, note it as the first output after the pending key, and return when it was read (None if nothing
    came, or at the end of the output)."""
    if t.eof:
        time.sleep(max(0.0, timeout))
        return None
    r, _, _ = select.select([t.fd], [], [], max(0.0, timeout))
    if not r:
        return None
    try:
        chunk = os.read(t.fd, 65536)
    except OSError:
        chunk = b""
    now = time.time_ns()
    if not chunk:
        t.eof = True
        return None
    t.buf += chunk
    if t.pending is not None:
        k = t.keys[t.pending]
        k["first_output_ns"] = now
        k["first_output_after_ms"] = r3((now - k["t_ns"]) / 1e6)
        t.pending = None
    return now


class Typist:
    """Drives `ssh` through a pty like a person at an xterm; logs every keystroke with CLOCK_REALTIME."""

    def __init__(self, argv, rng, gap=(0.12, 0.35), think=(0.45, 0.9), idle=0.0, path_first=None, timeout=30.0):
        self.rng = rng
        self.gap = gap
        self.think = think
        self.timeout = timeout  # default wait for a prompt or for ssh to exit (far typists log in slowly)
        self.idle = idle  # extra pause before every line but the first (not drawn from rng: same typing pattern)
        path = "/usr/sbin:/usr/bin:/sbin:/bin"
        if path_first:  # e.g. the OpenSSH build's bin: ProxyJump's `ssh -W` is started by name when needed
            path = f"{path_first}:{path}"
        env = {"PATH": path, "TERM": "xterm", "HOME": "/root", "LANG": "C"}
        pid, fd = pty.fork()
        if pid == 0:
            try:
                os.execvpe(argv[0], argv, env)
            finally:
                os._exit(127)
        self.pid, self.fd = pid, fd
        fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
        self.buf = bytearray()
        self.mark = 0
        self.da_scan = 0
        self.eof = False
        self.keys = []
        self.queries = []
        self.pending = None  # index of the last keystroke whose first output is not yet seen
        self.hop = 1
        self.into = "server"
        self.status = None

    def _read_once(self, timeout):
        now = read_pty(self, timeout)
        if now is None:
            return
        while True:  # answer Device Attributes queries the way xterm does
            i = self.buf.find(DA_QUERY, max(0, self.da_scan))
            if i < 0:
                self.da_scan = max(0, len(self.buf) - len(DA_QUERY) + 1)
                break
            self.da_scan = i + len(DA_QUERY)
            t_reply = time.time_ns()
            os.write(self.fd, DA_REPLY)
            self.queries.append({
                "query": "ESC [ c (primary Device Attributes)",
                "reply": "ESC [ ? 6 4 ; 1 ; 2 c",
                "reply_bytes": len(DA_REPLY),
                "hop": self.hop,
                "answered_by": "typist pty (xterm-like)",
                "query_seen_ns": now,
                "query_seen_rfc3339": rfc3339_ns(now),
                "reply_sent_ns": t_reply,
                "reply_sent_rfc3339": rfc3339_ns(t_reply),
            })

    def pump_until(self, deadline_mono):
        while True:
            left = deadline_mono - time.monotonic()
            if left <= 0:
                return
            self._read_once(left)

    def pump_for(self, seconds):
        self.pump_until(time.monotonic() + seconds)

    def expect(self, pat, timeout=None):
        timeout = self.timeout if timeout is None else timeout
        pat = pat.encode()
        deadline = time.monotonic() + timeout
        while True:
            i = self.buf.find(pat, self.mark)
            if i >= 0:
                self.mark = i + len(pat)
                return time.time_ns()
            if self.eof or time.monotonic() > deadline:
                tail = bytes(self.buf[-400:])
                raise LabError(f"typist: no {pat!r} within {timeout}s; last output: {tail!r}")
            self._read_once(min(0.05, deadline - time.monotonic()))

    def wait_exit(self, timeout=None):
        timeout = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        while not self.eof and time.monotonic() < deadline:
            self._read_once(min(0.05, deadline - time.monotonic()))
        while time.monotonic() < deadline:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.status = os.waitstatus_to_exitcode(status)
                return time.time_ns()
            time.sleep(0.02)
        raise LabError("typist: ssh did not exit")

    def key(self, ch):
        t = time.time_ns()
        os.write(self.fd, ch.encode())
        self.keys.append({
            "index": len(self.keys),
            "key": "Enter" if ch == "\r" else ch,
            "bytes": len(ch.encode()),
            "t_ns": t,
            "t_rfc3339": rfc3339_ns(t),
            "t_epoch": t / 1e9,
            "hop": self.hop,
            "typed_into": self.into,
        })
        self.pending = len(self.keys) - 1

    def type_line(self, text, expect=None):
        """Type text with human gaps, press Enter, then wait for `expect` (a prompt) or for ssh to exit."""
        if self.keys and self.idle > 0:
            self.pump_for(self.idle)
        self.pump_for(self.rng.uniform(*self.think))
        for ch in text:
            self.key(ch)
            self.pump_for(self.rng.uniform(*self.gap))
        self.key("\r")
        self.mark = len(self.buf)
        if expect is None:
            return self.wait_exit()
        return self.expect(expect)

    def close(self):
        if self.status is None:
            try:
                os.kill(self.pid, signal.SIGTERM)
                os.waitpid(self.pid, 0)
            except (ProcessLookupError, ChildProcessError):
                pass
        try:
            os.close(self.fd)
        except OSError:
            pass
