"""What a model's usage costs: the price table shipped in ``prices.json``, and user prices.

Each price is the USD price of one unit as the provider publishes it (``1M tokens``,
``minute``, ``1M characters``, ...), for one usage key of the model's kind (see
:data:`USAGE_KEYS`). A usage key's amount is in tokens, seconds or characters, named by
its suffix. A model is found by its name, case-insensitive, with or without a
``provider/`` prefix. A model the table does not know, or knows without a price, gets no
cost: never a cost of 0.

User prices (the ``prices`` option) add or replace models::

    prices={
        "nova-3": {"kind": "stt", "unit": "minute", "input_audio_seconds": 0.0077},
        "my-llm": {"input": 0.5, "output": 1.5},          # kind llm, unit 1M tokens
        "gpt-4o": None,                                   # no cost from livekit-otel
    }
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

from ..config import InvalidOptionError
from .facts import Cost, Usage

KINDS = ("llm", "realtime", "stt", "tts")
USAGE_KEYS: Mapping[str, tuple[str, ...]] = {
    "llm": ("input", "input_cached_tokens", "output"),
    "realtime": (
        "input_text_tokens",
        "input_cached_text_tokens",
        "input_audio_tokens",
        "input_cached_audio_tokens",
        "output_text_tokens",
        "output_audio_tokens",
    ),
    "stt": ("input_audio_seconds", "input_audio_tokens", "input_text_tokens", "output_text_tokens"),
    "tts": ("input_characters", "input_text_tokens", "output_audio_tokens"),
}
# a cached amount without a price of its own is priced as the uncached one
_CACHED_FALLBACK = {
    "input_cached_tokens": "input",
    "input_cached_text_tokens": "input_text_tokens",
    "input_cached_audio_tokens": "input_audio_tokens",
}
# unit -> (what it counts, how many of that it holds)
UNITS: Mapping[str, tuple[str, float]] = {
    "token": ("tokens", 1.0),
    "1K tokens": ("tokens", 1e3),
    "1M tokens": ("tokens", 1e6),
    "character": ("characters", 1.0),
    "1K characters": ("characters", 1e3),
    "1M characters": ("characters", 1e6),
    "second": ("seconds", 1.0),
    "minute": ("seconds", 60.0),
    "hour": ("seconds", 3600.0),
}
_DEFAULT_UNIT = {"tokens": "1M tokens", "characters": "1M characters", "seconds": "minute"}
USER_SOURCE = "user"


def measure(key: str) -> str:
    """What a usage key counts: ``tokens``, ``seconds`` or ``characters``."""
    if key.endswith("_seconds"):
        return "seconds"
    if key.endswith("_characters"):
        return "characters"
    return "tokens"


@dataclass(frozen=True)
class Price:
    """One model's prices: USD per ``unit`` for each usage key, and where they come from."""

    kind: str
    model: str
    unit: str
    prices: Mapping[str, float]
    source: str
    provider: str | None = None
    aliases: tuple[str, ...] = ()
    origin: str = USER_SOURCE  # the table's read date, or "user"
    per_unit: Mapping[str, float] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        holds = UNITS[self.unit][1]
        object.__setattr__(
            self, "per_unit", {key: value / holds for key, value in self.prices.items()}
        )

    def cost(self, usage: Usage) -> Cost | None:
        """The cost of ``usage`` in USD, by usage key; ``None`` when nothing of it is priced."""
        details: dict[str, float] = {}
        for key, amount in usage.amounts.items():
            price = self.per_unit.get(key)
            if price is None and key in _CACHED_FALLBACK:
                price = self.per_unit.get(_CACHED_FALLBACK[key])
            if price is not None and amount > 0:
                details[key] = amount * price
        if not details:
            return None
        return Cost(total=math.fsum(details.values()), details=details, source=self.origin)


class PriceTable:
    """Prices by kind and model name; later entries replace earlier ones."""

    def __init__(self, entries: Iterable[Price], removed: Iterable[str] = ()) -> None:
        self._by_name: dict[tuple[str, str], Price] = {}
        self._removed = {_name(name) for name in removed}
        for entry in entries:
            for name in (entry.model, *entry.aliases):
                self._by_name[(entry.kind, _name(name))] = entry

    def price(self, kind: str, model: str | None) -> Price | None:
        """The price entry of ``model`` used as ``kind``, or ``None``."""
        if not model:
            return None
        name = _name(model)
        candidates = [name]
        if "/" in name:
            candidates.append(name.split("/", 1)[1])
        for candidate in candidates:
            if candidate in self._removed:
                return None
            found = self._by_name.get((kind, candidate))
            if found is not None:
                return found
        return None

    def cost(self, usage: Usage | None) -> Cost | None:
        """What ``usage`` cost, when its model has a price for it."""
        if usage is None or not usage.amounts:
            return None
        entry = self.price(usage.kind, usage.model)
        return entry.cost(usage) if entry is not None else None

    def entries(self) -> list[Price]:
        """Every distinct entry, in table order (for documentation and checks)."""
        unique: dict[int, Price] = {}
        for entry in self._by_name.values():
            unique.setdefault(id(entry), entry)
        return list(unique.values())


def _name(model: str) -> str:
    return model.strip().lower()


def _entry(raw: Mapping[str, Any], origin: str, where: str) -> Price:
    """One price entry from its JSON form (the table's or a user's), checked."""
    kind = raw.get("kind")
    if kind not in KINDS:
        raise InvalidOptionError(f"{where}: kind must be one of {', '.join(KINDS)}, got {kind!r}")
    prices = raw.get("prices", {})
    if not isinstance(prices, Mapping):
        raise InvalidOptionError(f"{where}: prices must be a mapping of usage key to USD")
    unit = raw.get("unit")
    _check_prices(kind, unit, prices, where)
    return Price(
        kind=kind,
        model=str(raw["model"]),
        unit=str(unit),
        prices={key: float(value) for key, value in prices.items()},
        source=str(raw.get("source", USER_SOURCE)),
        provider=raw.get("provider"),
        aliases=tuple(raw.get("aliases", ())),
        origin=origin,
    )


def _check_prices(kind: str, unit: Any, prices: Mapping[str, Any], where: str) -> None:
    if unit not in UNITS:
        raise InvalidOptionError(f"{where}: unit must be one of {', '.join(UNITS)}, got {unit!r}")
    counts = UNITS[unit][0]
    for key, value in prices.items():
        if key not in USAGE_KEYS[kind]:
            raise InvalidOptionError(
                f"{where}: {key!r} is not a {kind} usage key; use {', '.join(USAGE_KEYS[kind])}"
            )
        if measure(key) != counts:
            raise InvalidOptionError(
                f"{where}: {key!r} counts {measure(key)}, but the unit is {unit!r}"
            )
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
            raise InvalidOptionError(f"{where}: the price of {key!r} must be a USD amount >= 0")


def user_entries(prices: Mapping[str, Any]) -> tuple[list[Price], list[str]]:
    """The ``prices`` option as entries, and the models it removes (value ``None``).

    Each value holds USD per ``unit`` for usage keys of its ``kind`` (default ``llm``);
    the unit defaults to ``1M tokens``, ``1M characters`` or ``minute`` after the keys.
    Raises ``InvalidOptionError`` (a ``ValueError``) saying what to fix.
    """
    entries: list[Price] = []
    removed: list[str] = []
    for model, raw in prices.items():
        where = f"prices[{model!r}]"
        if raw is None:
            removed.append(str(model))
            continue
        if not isinstance(raw, Mapping):
            raise InvalidOptionError(f"{where} must be a mapping of usage key to USD, or None")
        values = {k: v for k, v in raw.items() if k not in ("kind", "unit", "source")}
        kind = raw.get("kind", "llm")
        unit = raw.get("unit")
        if unit is None and values:
            unit = _DEFAULT_UNIT[measure(next(iter(values)))]
        entries.append(
            _entry(
                {"kind": kind, "model": model, "unit": unit or "1M tokens", "prices": values},
                USER_SOURCE,
                where,
            )
        )
    return entries, removed


def _load_defaults() -> tuple[list[Price], str]:
    text = resources.files(__package__).joinpath("prices.json").read_text(encoding="utf-8")
    data = json.loads(text)
    read = str(data["read"])
    entries = [_entry(raw, read, f"prices.json {raw.get('model')!r}") for raw in data["models"]]
    return entries, read


DEFAULT_ENTRIES, TABLE_DATE = _load_defaults()
DEFAULT_TABLE = PriceTable(DEFAULT_ENTRIES)
_built: dict[int, tuple[Any, PriceTable]] = {}


def table_for(user_prices: Mapping[str, Any] | None) -> PriceTable:
    """The table in force: the shipped one, with ``user_prices`` added (built once each)."""
    if not user_prices:
        return DEFAULT_TABLE
    found = _built.get(id(user_prices))
    if found is None or found[0] is not user_prices:
        entries, removed = user_entries(user_prices)
        found = (user_prices, PriceTable([*DEFAULT_ENTRIES, *entries], removed))
        _built[id(user_prices)] = found
    return found[1]
