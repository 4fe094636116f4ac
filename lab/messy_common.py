"""Shared by lab/messy.py and its helpers: run-lab.py loaded once as a module, and the messy lab's constants."""

import importlib.util
from pathlib import Path

HERE = Path(__file__).resolve().parent
_spec = importlib.util.spec_from_file_location("runlab", HERE / "run-lab.py")
runlab = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(runlab)

SCHEMA = "echoloc-messy-truth/1"
DEFAULT_OUT = HERE.parent / "pcaps" / "messy"
MAX_LATE_FRAMES = 2  # as run-lab.py: frames (packets) allowed > 1 ms late per set
VANTAGES = {"server_edge": ("S", "server-edge.pcap", "S's own veth end (eth0 in namespace S)"),
            "typist_edge": ("T", "typist-edge.pcap", "T's own veth end (eth0 in namespace T)")}


def vantage_pos(run, v):
    """One-way ms from the typist to a vantage on the line T --d1-- . --d2-- S."""
    return 0.0 if v == "typist_edge" else run.st["d1"] + run.st["d2"]
