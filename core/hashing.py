"""Hashing without OpenSSL: `blake2b` and a constant-time comparison from CPython's built-in
modules. `hashlib` and `hmac` load libcrypto on import (~3.5 MiB per process) although gossipmq
never needs it; the fallbacks are for Pythons without the built-ins."""
from __future__ import annotations

try:
    from _blake2 import blake2b
except ImportError:  # pragma: no cover - CPython always has it
    from hashlib import blake2b

try:
    from _operator import _compare_digest as compare_digest
except ImportError:  # pragma: no cover
    from hmac import compare_digest  # type: ignore[no-redef]  # the same (a, b) -> bool, declared in another stub

__all__ = ["blake2b", "compare_digest"]
