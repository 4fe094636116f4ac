"""A scripted person at an xterm, for lab/messy.py (Python 3.11 standard library only).

`Person` drives a client program (ssh, plink, dbclient, ...) through a pty of 80x24 with TERM=xterm-256color,
types with human gaps, and plays the terminal: it answers the queries that full-screen programs write (device
attributes, cursor position, colours, XTVERSION, XTGETTCAP, DECRQM, ...) at once, the way xterm 354 would, and
logs every query with the reply it sent (or that it ignored it). Every key press is logged with CLOCK_REALTIME
ns taken at its write() to the pty, comparable with pcap timestamps; a paste is one write() of many bytes and is
logged apart (not keystrokes). Terminal replies are not keystrokes either.
"""

import fcntl
import os
import pty
import signal
import struct
import termios
import time

from messy_common import runlab

ESC = 0x1B
ROWS, COLS = 24, 80

# Keys that are not printable characters: name -> bytes (arrows: normal cursor mode; see Person.key_bytes)
SPECIAL_KEYS = {
    "Enter": b"\r",
    "Backspace": b"\x7f",
    "ESC": b"\x1b",
    "Tab": b"\t",
    "Ctrl-C": b"\x03",
    "Ctrl-B": b"\x02",
    "Ctrl-D": b"\x04",
    "Up": b"\x1b[A",
    "Down": b"\x1b[B",
    "Right": b"\x1b[C",
    "Left": b"\x1b[D",
}
ARROW_FINAL = {"Up": b"A", "Down": b"B", "Right": b"C", "Left": b"D"}

# xterm's answers to XTGETTCAP (DCS + q <hex termcap name> ST) for the names vim asks; value = the bytes xterm
# itself sends or reports (colours: "256" with TERM=xterm-256color)
XTGETTCAP = {
    "Co": b"256",
    "TN": b"xterm-256color",
    "ku": b"\x1bOA", "kd": b"\x1bOB", "kr": b"\x1bOC", "kl": b"\x1bOD",
    "#2": b"\x1b[1;2H", "#4": b"\x1b[1;2D", "%i": b"\x1b[1;2C", "*7": b"\x1b[1;2F",
    "k1": b"\x1bOP", "k2": b"\x1bOQ", "k3": b"\x1bOR", "k4": b"\x1bOS",
    "kh": b"\x1bOH", "@7": b"\x1bOF", "kI": b"\x1b[2~", "kD": b"\x1b[3~", "kP": b"\x1b[5~", "kN": b"\x1b[6~",
}
# DEC private modes xterm 354 knows (DECRQM answers 1 = set or 2 = reset for these, 0 = unknown for others)
XTERM_PRIVATE_MODES = {1, 3, 4, 5, 6, 7, 8, 9, 12, 25, 40, 45, 47, 66, 67, 69, 1000, 1001, 1002, 1003, 1004, 1005,
                       1006, 1007, 1015, 1034, 1035, 1036, 1039, 1042, 1043, 1047, 1048, 1049, 2004}
XTERM_DEFAULT_SET = {7, 25}  # autowrap and cursor visible are on in a fresh xterm
COLOURS = {"10": "rgb:0000/0000/0000", "11": "rgb:ffff/ffff/ffff", "12": "rgb:0000/0000/0000"}  # fg, bg, cursor


def visible(b):
    """Terminal bytes spelled out for the truth: ESC [ ? 6 4 ; 1 ; 2 c."""
    names = {0x1B: "ESC", 0x07: "BEL", 0x0D: "CR", 0x0A: "LF", 0x09: "TAB", 0x20: "SP"}
    out = []
    for c in b:
        out.append(names.get(c) or (chr(c) if 0x20 < c < 0x7F else f"\\x{c:02x}"))
    return " ".join(out)


class LabError(Exception):
    pass


class Person:
    """One person at one xterm: a client program on a pty; keys, pastes and terminal replies logged."""

    def __init__(self, argv, rng, typed_by="client_person", conn="ssh-1", home="/tmp", env_extra=None,
                 gap=(0.12, 0.35), think=(0.45, 0.9), label="typist"):
        self.rng, self.gap, self.think = rng, gap, think
        self.typed_by, self.conn, self.label = typed_by, conn, label
        env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "TERM": "xterm-256color", "HOME": str(home), "LANG": "C",
               "USER": "root", "LOGNAME": "root"}
        env.update(env_extra or {})
        pid, fd = pty.fork()
        if pid == 0:
            try:
                fcntl.ioctl(0, termios.TIOCSWINSZ, struct.pack("HHHH", ROWS, COLS, 0, 0))
                os.setpriority(os.PRIO_PROCESS, 0, -15)  # the client keeps its timing on a busy machine
                os.execvpe(argv[0], argv, env)
            finally:
                os._exit(127)
        self.pid, self.fd = pid, fd
        fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", ROWS, COLS, 0, 0))
        self.started_ns = time.time_ns()
        self.buf = bytearray()
        self.scan = 0  # next byte of buf not yet looked at for terminal queries
        self.mark = 0  # expect() searches from here
        self.modes = {}  # DEC private modes the program set (True) or reset (False)
        self.eof = False
        self.status = None
        self.keys, self.queries, self.pastes, self.commands = [], [], [], []
        self.pending = None  # last key whose first output is not yet seen
        self.tags = {}  # extra fields added to each key (e.g. during_bulk)

    # ---------------------------------------------------------------------------------------------- output side

    def _read_once(self, timeout):
        now = runlab.read_pty(self, timeout)
        if now is None:
            return
        self.last_output_ns = now
        self._scan_terminal(now)

    def _scan_terminal(self, now):
        """Find complete escape sequences from self.scan on; track modes and answer queries like xterm."""
        buf = self.buf
        while True:
            i = buf.find(b"\x1b", self.scan)
            if i < 0 or i + 1 >= len(buf):
                self.scan = len(buf) if i < 0 else i
                return
            kind = buf[i + 1]
            if kind == ord("["):
                j = i + 2
                while j < len(buf) and not 0x40 <= buf[j] <= 0x7E:
                    j += 1
                if j >= len(buf):
                    self.scan = i  # incomplete: wait for more output
                    return
                self._csi(bytes(buf[i:j + 1]), now)
                self.scan = j + 1
            elif kind in (ord("]"), ord("P")):
                end = self._string_end(buf, i + 2)
                if end is None:
                    if len(buf) - i > 8192:  # runaway string: give up on it
                        self.scan = i + 2
                        continue
                    self.scan = i
                    return
                seq = bytes(buf[i:end])
                (self._osc if kind == ord("]") else self._dcs)(seq, now)
                self.scan = end
            else:
                self.scan = i + 1

    @staticmethod
    def _string_end(buf, start):
        """End (exclusive) of an OSC/DCS string started before `start`: BEL or ESC \\ (ST)."""
        for j in range(start, len(buf)):
            if buf[j] == 0x07:
                return j + 1
            if buf[j] == ESC:
                if j + 1 >= len(buf):
                    return None
                if buf[j + 1] == ord("\\"):
                    return j + 2
        return None

    def _csi(self, seq, now):
        body, final = seq[2:-1].decode("latin-1"), chr(seq[-1])
        prefix = body[0] if body[:1] in ("?", ">", "=", "<") else ""
        rest = body[len(prefix):]
        inter = "".join(c for c in rest if " " <= c <= "/")
        params = "".join(c for c in rest if not " " <= c <= "/")
        if prefix == "?" and final in "hl" and not inter:
            for p in params.split(";"):
                if p.isdigit():
                    self.modes[int(p)] = final == "h"
            return
        name = reply = None
        if final == "c" and not inter and params in ("", "0") and prefix in ("", ">"):
            if prefix == "":
                name, reply = "primary device attributes (DA1)", b"\x1b[?64;1;2c"
            else:
                name, reply = "secondary device attributes (DA2)", b"\x1b[>41;354;0c"
        elif final == "n" and prefix == "" and params == "6":
            name, reply = "cursor position report (CPR)", f"\x1b[{ROWS};1R".encode()
        elif final == "n" and prefix == "" and params == "5":
            name, reply = "device status report (DSR)", b"\x1b[0n"
        elif final == "q" and prefix == ">" and params in ("", "0"):
            name, reply = "XTVERSION", b"\x1bP>|XTerm(354)\x1b\\"
        elif final == "p" and inter == "$":
            mode = int(params) if params.isdigit() else -1
            if prefix == "?":
                if mode in self.modes:
                    v = 1 if self.modes[mode] else 2
                elif mode in XTERM_PRIVATE_MODES:
                    v = 1 if mode in XTERM_DEFAULT_SET else 2
                else:
                    v = 0
                name, reply = f"DECRQM private mode {mode}", f"\x1b[?{mode};{v}$y".encode()
            else:
                name, reply = f"DECRQM ANSI mode {mode}", f"\x1b[{mode};0$y".encode()
        elif final == "t" and prefix == "" and params == "18":
            name, reply = "text area size in characters (XTWINOPS 18)", f"\x1b[8;{ROWS};{COLS}t".encode()
        elif final == "u" and prefix == "?":
            name = "kitty keyboard protocol query (xterm 354 does not answer)"
        elif final == "m" and prefix == "?":
            name = "XTQMODKEYS (xterm 354 predates it: not answered)"
        elif final == "t" and prefix == "" and params in ("14", "16", "19", "21", "11", "13"):
            name = f"XTWINOPS {params} (window ops disallowed in xterm by default: not answered)"
        if name:
            self._reply(name, seq, reply, now)

    def _osc(self, seq, now):
        term = b"\x07" if seq.endswith(b"\x07") else b"\x1b\\"
        body = seq[2:-len(term)].decode("latin-1")
        parts = body.split(";")
        if parts[-1] != "?":
            return
        if parts[0] in COLOURS and len(parts) == 2:
            reply = f"\x1b]{parts[0]};{COLOURS[parts[0]]}".encode() + term
            self._reply(f"OSC {parts[0]} colour query", seq, reply, now)
        else:
            self._reply(f"OSC {parts[0]} query (not answered)", seq, None, now)

    def _dcs(self, seq, now):
        body = seq[2:-2].decode("latin-1")
        if body.startswith("+q"):
            names = [bytes.fromhex(h).decode("latin-1") if _is_hex(h) else None for h in body[2:].split(";")]
            answers = []
            for hx, nm in zip(body[2:].split(";"), names):
                val = XTGETTCAP.get(nm) if nm is not None else None
                if val is None:  # xterm stops at the first name it does not know
                    reply = b"\x1bP0+r" + hx.encode() + b"\x1b\\"
                    break
                answers.append(hx + "=" + val.hex())
            else:
                reply = b"\x1bP1+r" + ";".join(answers).encode() + b"\x1b\\"
            self._reply(f"XTGETTCAP {','.join(n or '?' for n in names)}", seq, reply, now)
        elif body.startswith("$q"):
            self._reply("DECRQSS (not answered)", seq, None, now)

    def _reply(self, name, query, reply, seen_ns):
        t = None
        if reply is not None:
            t = time.time_ns()
            os.write(self.fd, reply)
        self.queries.append({
            "query": visible(query), "what": name,
            "reply": visible(reply) if reply is not None else None,
            "reply_bytes": len(reply) if reply is not None else 0,
            "answered": reply is not None,
            "query_seen_ns": seen_ns, "reply_sent_ns": t,
            "typed_by": self.typed_by, "conn": self.conn,
        })

    # ------------------------------------------------------------------------------------------------ waiting

    def pump_until(self, deadline_mono):
        while True:
            left = deadline_mono - time.monotonic()
            if left <= 0:
                return
            self._read_once(min(left, 0.5))

    def pump_for(self, seconds):
        self.pump_until(time.monotonic() + seconds)

    def expect(self, pat, timeout=30.0):
        pat = pat.encode() if isinstance(pat, str) else pat
        deadline = time.monotonic() + timeout
        while True:
            i = self.buf.find(pat, self.mark)
            if i >= 0:
                self.mark = i + len(pat)
                return time.time_ns()
            if self.eof or time.monotonic() > deadline:
                raise LabError(f"{self.label}: no {pat!r} within {timeout}s; last output: {bytes(self.buf[-300:])!r}")
            self._read_once(min(0.05, max(0.0, deadline - time.monotonic())))

    def settle(self, quiet=0.5, timeout=10.0):
        """Wait until the program has written nothing for `quiet` seconds (full-screen programs)."""
        deadline = time.monotonic() + timeout
        n = len(self.buf)
        calm = time.monotonic() + quiet
        while time.monotonic() < min(calm, deadline):
            self._read_once(min(0.05, calm - time.monotonic()))
            if len(self.buf) != n:
                n = len(self.buf)
                calm = time.monotonic() + quiet
        self.mark = len(self.buf)
        return time.time_ns()

    def wait_exit(self, timeout=30.0):
        deadline = time.monotonic() + timeout
        while not self.eof and time.monotonic() < deadline:
            self._read_once(min(0.05, deadline - time.monotonic()))
        while time.monotonic() < deadline:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.status = os.waitstatus_to_exitcode(status)
                return time.time_ns()
            time.sleep(0.02)
        raise LabError(f"{self.label}: client did not exit")

    # ---------------------------------------------------------------------------------------------- input side

    def key_bytes(self, name):
        if name in ARROW_FINAL and self.modes.get(1):  # DECCKM set: application cursor keys, as xterm sends
            return b"\x1bO" + ARROW_FINAL[name]
        if name in SPECIAL_KEYS:
            return SPECIAL_KEYS[name]
        if name == "Space":
            return b" "
        return name.encode()

    def key(self, name):
        """Press one key (a character or a SPECIAL_KEYS name): one write(), logged as one keystroke."""
        data = self.key_bytes(name)
        t = time.time_ns()
        os.write(self.fd, data)
        self.keys.append({"key": name, "bytes": len(data), "sent": visible(data), "t_ns": t,
                          "typed_by": self.typed_by, "conn": self.conn, **self.tags})
        self.pending = len(self.keys) - 1
        return t

    def press(self, *names, gap=True):
        """Several keys, each followed by a human gap."""
        for n in names:
            self.key(n)
            self.pump_for(self.rng.uniform(*self.gap) if gap else 0.0)

    def pause(self):
        """A think pause before a line."""
        self.pump_for(self.rng.uniform(*self.think))

    def type(self, text):
        """Type characters with human gaps (no Enter)."""
        for ch in text:
            self.key(ch)
            self.pump_for(self.rng.uniform(*self.gap))

    def line(self, text, expect="server$ ", timeout=30.0, note=None):
        """Think, type `text`, Enter, then wait for `expect` (a prompt), for quiet output (expect=None) or for the
        client to exit (expect="EXIT"). Logged as one command in self.commands."""
        self.pause()
        t0 = time.time_ns()
        self.type(text)
        self.mark = len(self.buf)
        t_enter = self.key("Enter")
        if expect == "EXIT":
            t_end = self.wait_exit(timeout)
        elif expect is None:
            t_end = self.settle(timeout=timeout)
        else:
            t_end = self.expect(expect, timeout)
        self.commands.append({"what": "command", "text": text, "typed_by": self.typed_by, "conn": self.conn,
                              "start_ns": t0, "enter_ns": t_enter, "end_ns": t_end, **({"note": note} if note else {})})
        return t_end

    def paste(self, text):
        """A paste: one write() of the whole text (newlines as CR, like xterm), bracketed when the program asked
        for bracketed paste (mode 2004). Not keystrokes."""
        data = text.replace("\n", "\r").encode()
        bracketed = bool(self.modes.get(2004))
        if bracketed:
            data = b"\x1b[200~" + data + b"\x1b[201~"
        t = time.time_ns()
        os.write(self.fd, data)
        self.pastes.append({"t_ns": t, "bytes": len(data), "text_bytes": len(text.encode()), "bracketed": bracketed,
                            "typed_by": self.typed_by, "conn": self.conn})
        return t

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


def _is_hex(s):
    try:
        bytes.fromhex(s)
        return len(s) % 2 == 0 and s != ""
    except ValueError:
        return False
