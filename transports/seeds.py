"""Seed addresses: normalisation and DNS resolution, done by the runtime, never the kernel.

A seed may be ``tcp://host:port``, ``host:port`` or a bare ``host`` (default port 7946); any
``ipc://`` endpoint is kept as it is. When the host is a DNS name, the runtime resolves it
every time the kernel sends it a join (first try and every retry with backoff), and sends
the join to every address the name has, so a name that fronts several members (round-robin
DNS, a headless service) or that moves to a new address after a restart still works.
"""
from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Iterable

DEFAULT_PORT = 7946


def normalize_seed(text: str, default_port: int = DEFAULT_PORT) -> str:
    """Complete the address part of a seed spec; an `ID@` prefix and a `#KEY` suffix (the
    curve security plugin's `[ID@]ADDRESS[#KEY]`) are kept as they are."""
    text = text.strip()
    prefix = suffix = ""
    if len(text) > 41 and text[-41] == "#":
        text, suffix = text[:-41], text[-41:]
    at, scheme = text.find("@"), text.find("://")
    if at != -1 and (scheme == -1 or at < scheme):
        prefix, text = text[:at + 1], text[at + 1:]
    if "://" not in text:
        host, sep, port = text.rpartition(":")
        if not sep or not port.isdigit() or (host.count(":") and not host.startswith("[")):
            host, port = text, str(default_port)   # bare host (or a bare IPv6 literal)
        text = f"tcp://{host}:{port}"
    return prefix + text + suffix


def split_tcp(address: str) -> tuple[str, int] | None:
    """("host", port) of a tcp:// address, None for other transports or malformed ones."""
    if not address.startswith("tcp://"):
        return None
    host, _, port = address[len("tcp://"):].rpartition(":")
    if not port.isdigit() or not host:
        return None
    return host.strip("[]"), int(port)


def is_dns_name(address: str) -> bool:
    parts = split_tcp(address)
    if parts is None or parts[0] in ("*", ""):
        return False
    try:
        ipaddress.ip_address(parts[0])
    except ValueError:
        return True
    return False


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
