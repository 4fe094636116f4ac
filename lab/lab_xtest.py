"""The RDP lab's typist: key presses, releases and pointer moves injected into an X display with XTEST (libXtst via
ctypes, the same path xdotool takes), each logged with the time it was flushed to the X server.

Run inside the typist's namespace as `rdp-lab.py _typist --display :N --plan FILE --out FILE`; the plan is a JSON
list of steps made by `plan_session` (one seeded random source, so a run can be repeated)."""

import ctypes
import json
import os
import random
import subprocess
import time

# Keysym names of the characters the typist types (lower case, digits, a few signs: no Shift needed).
KEYSYM = {" ": "space", "\n": "Return", "-": "minus", ".": "period", "/": "slash", "=": "equal"}


PASTE_TEXT = "echo pasted from the client clipboard, forty characters"


def plan_session(lines, seed, gap_s=(0.16, 0.40), hold_s=(0.06, 0.11), think_s=(0.6, 1.1), mouse=False,
                 paste=False):
    """Steps for typing `lines` (each ends with Return) with human-like gaps: a key is held `hold_s`, the next
    press follows `gap_s` after the previous press (never while a key is held) and each line starts after a
    `think_s` pause. With `mouse`, the pointer wanders (12 moves 8 ms apart, a mouse's report rate) before every other
    line; with `paste`, a line of text is put on the client's clipboard and pasted (Shift+Insert, two keys) after
    every other line."""
    rnd = random.Random(seed)
    steps = []
    for i, line in enumerate(lines):
        if mouse and i % 2 == 1:
            x, y = 300, 250
            for _ in range(12):
                x, y = x + rnd.randint(-40, 40), y + rnd.randint(-30, 30)
                steps.append({"op": "move", "x": max(10, min(780, x)), "y": max(10, min(580, y)), "after_s": 0.008})
            steps.append({"op": "move", "x": 400, "y": 300, "after_s": 0.03})
        if paste and i % 2 == 1:
            steps.append({"op": "paste", "text": PASTE_TEXT, "after_s": round(rnd.uniform(*think_s), 4)})
        pause = rnd.uniform(*think_s)
        for ch in line + "\n":
            hold = rnd.uniform(*hold_s)
            gap = rnd.uniform(*gap_s)
            steps.append({"op": "key", "char": ch, "after_s": round(pause, 4), "hold_s": round(hold, 4)})
            pause = max(gap - hold, 0.03)
    return steps


def plan_pointer(seed, bursts=40):
    """Pointer movement only: `bursts` strokes of 12 moves 8 ms apart, 0.3-0.8 s between strokes."""
    rnd = random.Random(seed)
    steps = []
    for _ in range(bursts):
        x, y = rnd.randint(50, 750), rnd.randint(50, 550)
        pause = rnd.uniform(0.3, 0.8)
        for _ in range(12):
            x, y = max(10, min(780, x + rnd.randint(-40, 40))), max(10, min(580, y + rnd.randint(-30, 30)))
            steps.append({"op": "move", "x": x, "y": y, "after_s": round(pause, 4)})
            pause = 0.008
    return steps


class XTest:
    def __init__(self, display):
        self.x11 = ctypes.cdll.LoadLibrary("libX11.so.6")
        self.xtst = ctypes.cdll.LoadLibrary("libXtst.so.6")
        self.x11.XOpenDisplay.restype = ctypes.c_void_p
        self.x11.XOpenDisplay.argtypes = [ctypes.c_char_p]
        self.x11.XStringToKeysym.restype = ctypes.c_ulong
        self.x11.XStringToKeysym.argtypes = [ctypes.c_char_p]
        self.x11.XKeysymToKeycode.restype = ctypes.c_ubyte
        self.x11.XKeysymToKeycode.argtypes = [ctypes.c_void_p, ctypes.c_ulong]
        self.x11.XFlush.argtypes = [ctypes.c_void_p]
        self.x11.XSync.argtypes = [ctypes.c_void_p, ctypes.c_int]
        self.xtst.XTestFakeKeyEvent.argtypes = [ctypes.c_void_p, ctypes.c_uint, ctypes.c_int, ctypes.c_ulong]
        self.xtst.XTestFakeMotionEvent.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_int, ctypes.c_int,
                                                   ctypes.c_ulong]
        self.d = self.x11.XOpenDisplay(display.encode())
        if not self.d:
            raise SystemExit(f"cannot open display {display}")

    def keycode(self, ch):
        sym = self.x11.XStringToKeysym(KEYSYM.get(ch, ch).encode())
        code = self.x11.XKeysymToKeycode(self.d, sym)
        if not code:
            raise SystemExit(f"no keycode for {ch!r}")
        return code

    def key(self, code, down):
        self.xtst.XTestFakeKeyEvent(self.d, code, 1 if down else 0, 0)
        self.x11.XSync(self.d, 0)
        return time.time_ns()

    def move(self, x, y):
        self.xtst.XTestFakeMotionEvent(self.d, -1, x, y, 0)
        self.x11.XSync(self.d, 0)
        return time.time_ns()


def sleep_until(t):
    while True:
        left = t - time.monotonic()
        if left <= 0:
            return
        time.sleep(min(left, 0.002) if left < 0.004 else left - 0.002)


def typist_main(argv):
    import argparse
    ap = argparse.ArgumentParser(prog="rdp-lab.py _typist")
    ap.add_argument("--display", required=True)
    ap.add_argument("--plan", required=True)
    ap.add_argument("--out", required=True)
    a = ap.parse_args(argv)
    steps = json.load(open(a.plan))
    x = XTest(a.display)
    log = []
    t = time.monotonic()
    for s in steps:
        t += s["after_s"]
        sleep_until(t)
        if s["op"] == "move":
            log.append({"op": "move", "t_ns": x.move(s["x"], s["y"])})
            continue
        if s["op"] == "paste":
            # The client's clipboard, then Shift+Insert (the session's xterm pastes CLIPBOARD on it): the
            # client offers the text, the server asks for it, the client sends it in one record.
            # xclip stays to serve the selection: apart from our output, which the lab waits on to end
            clip = subprocess.Popen(["xclip", "-selection", "clipboard", "-i"], stdin=subprocess.PIPE,
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
                                    env=dict(os.environ, DISPLAY=a.display))
            clip.communicate(s["text"].encode())
            t += 0.8
            sleep_until(t)
            shift, insert = x.keycode("Shift_L"), x.keycode("Insert")
            d1 = x.key(shift, True)
            t += 0.05
            sleep_until(t)
            d2 = x.key(insert, True)
            t += 0.08
            sleep_until(t)
            u2 = x.key(insert, False)
            t += 0.04
            sleep_until(t)
            u1 = x.key(shift, False)
            log.append({"op": "key", "down_ns": d1, "up_ns": u1, "combo": True})
            log.append({"op": "key", "down_ns": d2, "up_ns": u2, "combo": True})
            log.append({"op": "paste", "t_ns": d2, "chars": len(s["text"])})
            t += 0.3
            continue
        code = x.keycode(s["char"])
        down = x.key(code, True)
        t += s["hold_s"]
        sleep_until(t)
        up = x.key(code, False)
        # which key is never logged: only that one went down and up, and when
        log.append({"op": "key", "down_ns": down, "up_ns": up})
    with open(a.out, "w") as f:
        json.dump(log, f)
