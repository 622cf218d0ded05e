"""`gossipctl simulate`: N kernels over the in-memory network in virtual time (transports/simulator.py)."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from .common import fail, load


def simulate(
    config: Annotated[Path, typer.Option("--config", "-c", help="TOML config (its [node] table is ignored).")],
    nodes: Annotated[int, typer.Option("--nodes", "-n", min=2, help="Simulated nodes.")] = 1000,
    rounds: Annotated[int, typer.Option("--rounds", "-r", min=1, help="Gossip rounds to run.")] = 40,
    loss: Annotated[float, typer.Option(min=0.0, max=1.0, help="Probability that a message is lost.")] = 0.0,
    latency_ms: Annotated[str, typer.Option("--latency-ms", help="One-way latency: MS or MIN..MAX.")] = "5",
    partition: Annotated[str | None, typer.Option(
        help="GROUPS[@FROM[..TO]]: split into equal groups from round FROM, heal at round TO.")] = None,
    crash: Annotated[float, typer.Option(min=0.0, max=0.99, help="Fraction of nodes crashed before the "
                                                                 "update (never the source).")] = 0.0,
    seed: Annotated[int, typer.Option(help="Same seed, same result.")] = 0,
    updates: Annotated[int, typer.Option(min=1, help="Updates injected at round 0, each on its own node.")] = 1,
    zones: Annotated[int, typer.Option(min=1, help="Zones: node i in zone i % ZONES (tag zone=z<k>).")] = 1,
    cross_zone_ms: Annotated[str | None, typer.Option(
        "--cross-zone-ms", help="One-way latency between zones: MS or MIN..MAX (--latency-ms is within one).")] = None,
    detector: Annotated[bool, typer.Option("--detector", help="Run the configured failure detector "
                                                              "(default: static, none).")] = False,
    warmup_rounds: Annotated[int, typer.Option("--warmup-rounds", min=0, help="Rounds run before the updates, "
                                                                             "not reported.")] = 0,
    warmup_updates: Annotated[int, typer.Option("--warmup-updates", min=0, help="Writes spread during the warm-up "
                                                                               "(they build Plumtree's tree).")] = 0,
    out: Annotated[Path | None, typer.Option(help="Write rounds.csv, summary.json and informed.png here.")] = None,
    no_bytes: Annotated[bool, typer.Option("--no-bytes", help="Skip byte counting (a little faster).")] = False,
    json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Run N real kernels with the configured plugins in virtual time; report per-round spread."""
    import orjson
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
    from rich.table import Table

    from gossipmq.transports.sim_report import write_outputs
    from gossipmq.transports.simulator import Scenario, Simulation, parse_latency, parse_partition

    _, registry, cfg = load(config)
    try:
        scenario = Scenario(nodes=nodes, rounds=rounds, loss=loss, latency_ms=parse_latency(latency_ms),
                            partition=parse_partition(partition) if partition else None, crash=crash,
                            seed=seed, updates=updates, count_bytes=not no_bytes, zones=zones,
                            cross_zone_ms=parse_latency(cross_zone_ms) if cross_zone_ms else None,
                            detector=detector, warmup_rounds=warmup_rounds, warmup_updates=warmup_updates)
    except ValueError as exc:
        fail(str(exc))
    console = Console(stderr=True)
    if cfg.strategies["failure_detection"].name != "static" and not detector:
        console.print(f"note: the simulator uses the 'static' failure detector, not "
                      f"{cfg.strategies['failure_detection'].name!r} (--detector keeps it; docs/simulator.md)")
    with Progress(TextColumn("[bold]simulate"), BarColumn(), MofNCompleteColumn(), TextColumn("rounds"),
                  TimeElapsedColumn(), console=console, transient=True, disable=json) as progress:
        task = progress.add_task("build", total=rounds)
        try:
            sim = Simulation(cfg, registry, scenario)
        except ValueError as exc:
            fail(str(exc))
        result = sim.run(progress=lambda r: progress.update(task, completed=r), release=False)   # we exit next
    written, notes = write_outputs(result, str(out)) if out is not None else ([], [])
    for note in notes:
        console.print(f"note: {note}")
    summary = result.summary()
    if json:
        typer.echo(orjson.dumps({**summary, "files": written, "notes": notes}).decode())
        return
    table = Table("round", "informed", "theory", "copies/node", "contacts/node", "messages", "bytes")
    for row in result.rows:
        table.add_row(str(row["round"]), f"{row['informed']:.4f}", f"{row['theory']:.4f}",
                      f"{row['payload_copies']:.3f}", f"{row['contacts']:.2f}", str(row["messages"]),
                      str(row["bytes"]))
    Console().print(table)
    done = result.rounds_to_all
    typer.echo(f"{summary['mode']}, fanout {summary['fanout']}, n = {nodes} ({summary['live']} live): "
               + (f"all informed after round {done}" if done else
                  f"{result.rows[-1]['informed']:.4f} informed after {rounds} rounds")
               + f"; {summary['messages']} messages, {summary['bytes']} bytes"
               + (f", {summary['cross_zone_bytes']} across zones" if zones > 1 else "")
               + f"; per node {summary['payload_copies_per_node']} copies, {summary['messages_per_node']} messages, "
               f"{summary['bytes_per_node']:.0f} bytes"
               + (f"; last node after {summary['ms_to_all']:.1f} ms" if summary["ms_to_all"] is not None else "")
               + f"; {summary['wall_s']:.1f} s wall ({result.build_s:.1f} s to build {nodes} nodes, "
               f"{summary['overlay']} overlay)")
    for path in written:
        typer.echo(f"wrote {path}")
