"""Seed addresses: normalisation and DNS resolution, done by the runtime, never the kernel.

A seed may be ``tcp://host:port``, ``host:port`` or a bare ``host`` (default port 7946); any
``ipc://`` endpoint is kept as it is. When the host is a DNS name, the runtime resolves it
every time the kernel sends it a join (first try and every retry with backoff), and sends
the join to every address the name has, so a name that fronts several members (round-robin
DNS, a headless service) or that moves to a new address after a restart still works.
"""
from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterable

from gossipmq.core.addresses import DEFAULT_PORT, is_dns_name, normalize_seed, split_tcp

__all__ = ["DEFAULT_PORT", "SeedResolver", "is_dns_name", "normalize_seed", "split_tcp"]


class SeedResolver:
    """Resolves the seeds that are DNS names; excludes the node's own addresses."""

    def __init__(self, seeds: Iterable[str], own: Iterable[str] = ()) -> None:
        self.names = {s for s in seeds if is_dns_name(s)}
        self.own = set(own)

    async def resolve(self, address: str) -> list[str]:
        parts = split_tcp(address)
        assert parts is not None
        host, port = parts
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
        out: list[str] = []
        if any(info[0] == socket.AF_INET for info in infos):
            # Our sockets do not enable ZMQ_IPV6: use the IPv4 addresses when a name has both.
            infos = [info for info in infos if info[0] == socket.AF_INET]
        for family, _, _, _, sockaddr in infos:
            ip = sockaddr[0]
            resolved = f"tcp://[{ip}]:{port}" if family == socket.AF_INET6 else f"tcp://{ip}:{port}"
            if resolved not in out and resolved not in self.own:
                out.append(resolved)
        return out
