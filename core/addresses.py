"""Endpoints and seed specs: the one place addresses are parsed and checked (no I/O).

An endpoint is ``tcp://HOST:PORT`` (HOST: an IPv4 address, ``[IPv6]`` in brackets, a DNS name,
or for a bind ``*``) or ``ipc://PATH``. A seed spec is ``[ID@]ADDRESS[#KEY]``: the curve
security plugin's member id and 40-character identity key around an address that may also be
written ``host:port`` or a bare ``host`` (default port 7946). Config loading refuses what does
not parse, naming the key; runtimes only ever see normalised endpoints. ``mem://NAME`` and
``sim://NAME`` name nodes of the in-memory runtime and the simulator.
"""
from __future__ import annotations

import ipaddress
from typing import NamedTuple

DEFAULT_PORT = 7946
KEY_CHARS = 40   # a Z85 identity key
IN_PROCESS_SCHEMES = ("mem://", "sim://")


class SeedSpec(NamedTuple):
    address: str          # a normalised endpoint
    node_id: str | None   # "ID@" prefix
    key: str | None       # "#KEY" suffix (40 Z85 characters)


def split_seed(spec: str) -> tuple[str, str | None, str | None]:
    """Seed spec `[ID@]ADDRESS[#KEY]` -> (address as written, node id, identity key)."""
    node_id = key = None
    if len(spec) > KEY_CHARS + 1 and spec[-KEY_CHARS - 1] == "#":
        spec, key = spec[:-KEY_CHARS - 1], spec[-KEY_CHARS:]
    scheme, at = spec.find("://"), spec.find("@")
    if at != -1 and (scheme == -1 or at < scheme):
        node_id, spec = spec[:at], spec[at + 1:]
    return spec, node_id, key


def normalize_address(text: str, default_port: int = DEFAULT_PORT) -> str:
    """``host``, ``host:port`` or ``[v6]:port`` -> ``tcp://host:port``; endpoints with a scheme stay."""
    text = text.strip()
    if "://" in text:
        return text
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or (host.count(":") and not host.startswith("[")):
        host, port = text, str(default_port)   # a bare host (or a bare IPv6 literal)
        if host.count(":") and not host.startswith("["):
            host = f"[{host}]"
    return f"tcp://{host}:{port}"


def parse_seed(text: str) -> SeedSpec:
    address, node_id, key = split_seed(text.strip())
    return SeedSpec(normalize_address(address), node_id, key)


def normalize_seed(text: str) -> str:
    """The seed spec with its address normalised; an ``ID@`` prefix and ``#KEY`` suffix are kept."""
    spec = parse_seed(text)
    return f"{spec.node_id + '@' if spec.node_id is not None else ''}{spec.address}" \
           f"{'#' + spec.key if spec.key is not None else ''}"


def split_tcp(address: str) -> tuple[str, int] | None:
    """("host", port) of a tcp:// address (IPv6 without brackets), None for other transports or malformed."""
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


def endpoint_problem(text: str, *, bind: bool = False) -> str | None:
    """Why `text` is not a usable endpoint, or None. `bind`: a listening address (``*`` allowed)."""
    if not isinstance(text, str) or not text:
        return "empty endpoint"
    if text.startswith(IN_PROCESS_SCHEMES) and len(text) > len("mem://"):
        return None   # the in-memory runtime's and the simulator's node names
    if text.startswith("ipc://"):
        path = text[len("ipc://"):]
        if not path or "\x00" in path:
            return f"{text!r}: ipc:// needs a file path"
        if len(path.encode()) > 107:
            return f"{text!r}: an ipc path may be at most 107 bytes (the unix socket limit)"
        return None
    if not text.startswith("tcp://"):
        return f"{text!r}: use tcp://HOST:PORT or ipc://PATH"
    rest = text[len("tcp://"):]
    host, sep, port = rest.rpartition(":")
    if not sep or not host:
        return f"{text!r}: expected tcp://HOST:PORT"
    if not port.isdigit() or not 1 <= int(port) <= 65535:
        return f"{text!r}: the port must be a number from 1 to 65535"
    if host.startswith("["):
        if not host.endswith("]"):
            return f"{text!r}: an IPv6 host is written in brackets, e.g. tcp://[::1]:7946"
        try:
            ipaddress.IPv6Address(host[1:-1])
        except ValueError:
            return f"{text!r}: {host[1:-1]!r} is not an IPv6 address"
        return None
    if ":" in host:
        return f"{text!r}: write an IPv6 host in brackets, e.g. tcp://[{host}]:{port}"
    if host == "*":
        return None if bind else f"{text!r}: * only makes sense in a bind address (peers cannot dial it)"
    if any(c.isspace() for c in host) or len(host) > 253:
        return f"{text!r}: {host!r} is not a host name or address"
    return None


__all__ = ["DEFAULT_PORT", "SeedSpec", "endpoint_problem", "is_dns_name", "normalize_address", "normalize_seed",
           "parse_seed", "split_seed", "split_tcp"]
