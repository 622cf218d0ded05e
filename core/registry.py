"""Named strategy factories per concern, filled by the `gossipmq_register_strategies` hook
(the llm/tox registry-object pattern)."""
from __future__ import annotations

import importlib.metadata
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import msgspec

from .errors import PluginError
from .strategies import CONCERNS, NoOptions, Strategy

if TYPE_CHECKING:
    from .config import StrategyChoice


@dataclass(frozen=True)
class StrategySpec:
    concern: str
    name: str
    factory: Callable[[msgspec.Struct], Strategy]
    options: type[msgspec.Struct]
    description: str
    module: str

    @property
    def package(self) -> str:
        """Distribution that provides the strategy (for `gossipctl plugins`)."""
        top = self.module.split(".")[0]
        dists = importlib.metadata.packages_distributions().get(top, [])
        if top == "gossipmq":
            return "gossipmq (built-in)"
        return dists[0] if dists else top


class StrategyRegistry:
    def __init__(self) -> None:
        self._specs: dict[str, dict[str, StrategySpec]] = {c: {} for c in CONCERNS}

    def register(self, concern: str, name: str, factory: Callable[[msgspec.Struct], Strategy],
                 options: type[msgspec.Struct] = NoOptions, description: str = "") -> None:
        """Offer `factory(options) -> Strategy` under `name` for `concern`."""
        if concern not in self._specs:
            raise PluginError(f"unknown concern {concern!r}; concerns are {', '.join(CONCERNS)}")
        module = getattr(factory, "__module__", None) or "?"
        existing = self._specs[concern].get(name)
        if existing is not None and existing.factory is not factory:
            raise PluginError(f"{concern} strategy {name!r} registered twice "
                              f"({existing.module} and {module})")
        if not description:
            doc = (getattr(factory, "__doc__", None) or "").strip()
            description = doc.splitlines()[0] if doc else ""
        self._specs[concern][name] = StrategySpec(concern, name, factory, options, description, module)

    def get(self, concern: str, name: str) -> StrategySpec | None:
        return self._specs.get(concern, {}).get(name)

    def names(self, concern: str) -> list[str]:
        return sorted(self._specs[concern])

    def all(self) -> list[StrategySpec]:
        return [spec for concern in CONCERNS for _, spec in sorted(self._specs[concern].items())]




def create_strategies(registry: StrategyRegistry, choices: Mapping[str, StrategyChoice]) -> dict[str, Strategy]:
    """Instantiate the chosen strategy of every concern."""
    out: dict[str, Strategy] = {}
    for concern, choice in choices.items():
        spec = registry.get(concern, choice.name)
        if spec is None:
            raise PluginError(f"{concern} strategy {choice.name!r} is not installed")
        out[concern] = spec.factory(choice.options)
        rules = getattr(choice, "rules", ())
        if rules:  # [[conflict_resolution.rules]]: one resolver per key prefix
            from .resolution import PrefixRouter
            routed = []
            for rule in rules:
                rule_spec = registry.get(concern, rule.name)
                if rule_spec is None:
                    raise PluginError(f"{concern} strategy {rule.name!r} is not installed")
                routed.append((rule.prefix, rule_spec.factory(rule.options)))
            out[concern] = PrefixRouter(out[concern], routed)  # type: ignore[arg-type]
    return out
