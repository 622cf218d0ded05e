"""Alias kept for old commands: the 20-node LAN benchmark is now b21_idle_membership.py.

    python benchmarks/lan20.py ...   ==   python benchmarks/b21_idle_membership.py ...
"""
from __future__ import annotations

import runpy
from pathlib import Path

if __name__ == "__main__":
    runpy.run_path(str(Path(__file__).with_name("b21_idle_membership.py")), run_name="__main__")
