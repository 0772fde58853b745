"""Run Python code in a fresh interpreter whose audit hook turns any network access into an exit, from the
first import on: how the learned detectors' tests prove that loading and scanning never touch a network."""

from __future__ import annotations

import subprocess
import sys

PRELUDE = """
import sys
NET = {"socket.connect", "socket.getaddrinfo", "socket.bind", "socket.sendto", "socket.__new__", "urllib.Request"}
def hook(event, args):
    if event in NET:
        raise SystemExit("network access: " + event)
sys.addaudithook(hook)
"""


def run_without_network(code: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", PRELUDE + code, *args], capture_output=True, text=True, timeout=120, check=False
    )
