"""docs/embedding.md keeps its promises: its example is examples/embed_two_agents.py verbatim, under
30 lines, runs (two agents, real sockets) and prints exactly what the page shows; every public name
of `Agent` is documented there."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from gossipmq import Agent
from tests.helpers import free_ports

ROOT = Path(__file__).resolve().parents[1]
DOC = (ROOT / "docs" / "embedding.md").read_text()
EXAMPLE = ROOT / "examples" / "embed_two_agents.py"


def block(language: str, index: int = 0) -> str:
    return re.findall(rf"^```{language}\n(.*?)^```", DOC, re.M | re.S)[index]


def test_the_doc_shows_the_example_file_verbatim_and_it_is_short() -> None:
    assert block("python") == EXAMPLE.read_text()
    assert len(EXAMPLE.read_text().splitlines()) < 30


def test_the_example_runs_and_prints_what_the_doc_says() -> None:
    console = block("console").splitlines()
    assert console[0].startswith("$ python examples/embed_two_agents.py")
    port_a, port_b = free_ports(2)
    out = subprocess.run([sys.executable, str(EXAMPLE), str(port_a), str(port_b)], capture_output=True, text=True,
                         timeout=60, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == console[1:]


def test_every_public_name_of_agent_is_documented() -> None:
    public = {name for name in dir(Agent) if not name.startswith("_")}
    missing = sorted(name for name in public if f"{name}(" not in DOC and f"`agent.{name}`" not in DOC
                     and f"`{name}`" not in DOC)
    assert not missing, f"docs/embedding.md does not mention Agent.{missing}"
