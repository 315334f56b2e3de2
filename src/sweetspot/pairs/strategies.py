"""Positions, rejected-only rules and strategies (SPEC.md §2), each registered by syntax.

A *selector* picks one response per prompt from a :class:`PoolContext` and names the target it
aimed at. Positions (``min``, ``max``, ``mu+Ksigma``, ``z=K``, ``q=P``) pick the response nearest
their target reward, distance ties to the lower sample index. Rules that only make sense for the
rejected side (``random``, ``min-of-M``) may look at the chosen response. A new selector is one
function decorated with :func:`register_selector`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from sweetspot.errors import ConfigError
from sweetspot.pairs.context import PoolContext
from sweetspot.pairs.segments import argbest, first_true, segment_reduce

Selection = tuple[np.ndarray, np.ndarray]  # (flat row per prompt or -1, target reward per prompt)


@dataclass(frozen=True)
class Selector:
    """One way to pick a response per prompt.

    ``label`` is the canonical syntax; ``order`` places positions on the reward axis so that a
    strategy can check that chosen sits above rejected (None: not comparable); ``rejected_only``
    rules may not be used as the chosen side.
    """

    label: str
    pick: Callable[[PoolContext, np.ndarray | None], Selection]
    order: tuple[int, float] | None = None
    rejected_only: bool = False
    depends_on_chosen: bool = False

    def select(self, ctx: PoolContext, chosen_rows: np.ndarray | None = None) -> Selection:
        if self.depends_on_chosen:
            return self.pick(ctx, chosen_rows)
        key = ("selector", self.label)
        if key not in ctx.cache:
            ctx.cache[key] = self.pick(ctx, None)
        return ctx.cache[key]


_REGISTRY: list[tuple[re.Pattern, Callable[[re.Match], Selector]]] = []


def register_selector(pattern: str) -> Callable:
    """Register a factory ``f(match) -> Selector`` for position syntax matching ``pattern``."""

    def deco(factory: Callable[[re.Match], Selector]) -> Callable[[re.Match], Selector]:
        _REGISTRY.append((re.compile(pattern + r"\Z"), factory))
        return factory

    return deco


def _rows_target(ctx: PoolContext, rows: np.ndarray) -> Selection:
    target = np.full(len(rows), np.nan)
    ok = rows >= 0
    target[ok] = ctx.rewards[rows[ok]]
    return rows, target


def _nearest(ctx: PoolContext, target: np.ndarray) -> Selection:
    """The response whose reward is nearest ``target`` per prompt; ties to the lower index."""
    return ctx.nearest_rows(target), target


@register_selector(r"min")
def _min(m: re.Match) -> Selector:
    return Selector(
        "min",
        lambda ctx, _: _rows_target(ctx, ctx.extreme_rows(largest=False)),
        order=(0, -math.inf),
    )


@register_selector(r"max")
def _max(m: re.Match) -> Selector:
    return Selector(
        "max",
        lambda ctx, _: _rows_target(ctx, ctx.extreme_rows(largest=True)),
        order=(0, math.inf),
    )


_NUM = r"(\d+(?:\.\d+)?|\.\d+)"


def _z_label(k: float) -> str:
    if k == 0:
        return "mu"
    mag = abs(k)
    coef = "" if mag == 1 else f"{mag:g}"
    return f"mu{'+' if k > 0 else '-'}{coef}sigma"


def _z_selector(k: float) -> Selector:
    return Selector(_z_label(k), lambda ctx, _: _nearest(ctx, ctx.mu + k * ctx.sigma), order=(0, k))


@register_selector(r"mu(?:(?P<sign>[+-])(?P<k>" + _NUM + r")?sigma)?")
def _mu(m: re.Match) -> Selector:
    if m.group("sign") is None:
        return _z_selector(0.0)
    k = float(m.group("k") or 1.0)
    return _z_selector(k if m.group("sign") == "+" else -k)


@register_selector(r"z=(?P<k>[+-]?" + _NUM + r")")
def _z(m: re.Match) -> Selector:
    return _z_selector(float(m.group("k")))


def _quantile_target(ctx: PoolContext, p: float) -> np.ndarray:
    """Per-prompt empirical quantile, linear interpolation (numpy's default method)."""
    s, off, n = ctx.sorted_rewards, ctx.offsets, ctx.n
    target = np.full(ctx.n_prompts, np.nan)
    ok = np.flatnonzero(n > 0)
    h = (n[ok] - 1) * p
    lo = np.floor(h).astype(np.int64)
    hi = np.minimum(lo + 1, n[ok] - 1)
    a, b = s[off[ok] + lo], s[off[ok] + hi]
    target[ok] = a + (h - lo) * (b - a)
    return target


@register_selector(r"q=(?P<p>" + _NUM + r")")
def _q(m: re.Match) -> Selector:
    p = float(m.group("p"))
    if not 0.0 <= p <= 1.0:
        raise ConfigError(f"quantile position q={p:g} must lie in [0, 1]")
    return Selector(
        f"q={p:g}", lambda ctx, _: _nearest(ctx, _quantile_target(ctx, p)), order=(1, p)
    )


def _random_pick(ctx: PoolContext, chosen: np.ndarray | None) -> Selection:
    keys = ctx.response_keys(salt=1)
    if chosen is not None:
        keys[chosen[chosen >= 0]] = np.iinfo(np.uint64).max
    rows = argbest(keys, ctx.offsets, ctx.seg)
    return rows, np.full(ctx.n_prompts, np.nan)


@register_selector(r"random")
def _random(m: re.Match) -> Selector:
    return Selector("random", _random_pick, rejected_only=True, depends_on_chosen=True)


def _min_of_m_pick(m_draw: int) -> Callable[[PoolContext, np.ndarray | None], Selection]:
    def pick(ctx: PoolContext, _: np.ndarray | None) -> Selection:
        keys = ctx.response_keys(salt=2)
        order = np.lexsort((keys, ctx.seg))  # a seeded random permutation inside each prompt
        rank = np.arange(len(order)) - ctx.offsets[ctx.seg]
        drawn = np.zeros(len(order), dtype=bool)
        drawn[order[rank < m_draw]] = True
        sub = np.where(drawn, ctx.rewards, np.inf)
        best = segment_reduce(np.fmin, sub, ctx.offsets)
        rows = first_true(drawn & (sub == best[ctx.seg]), ctx.seg, ctx.n_prompts)
        return _rows_target(ctx, rows)

    return pick


@register_selector(r"min-of-(?P<m>\d+)")
def _min_of_m(m: re.Match) -> Selector:
    m_draw = int(m.group("m"))
    if m_draw < 1:
        raise ConfigError("min-of-M needs M >= 1")
    return Selector(f"min-of-{m_draw}", _min_of_m_pick(m_draw), rejected_only=True)


def parse_selector(text: str) -> Selector:
    """Parse one position or rule, e.g. ``max``, ``mu-2sigma``, ``z=-1.5``, ``q=0.05``."""
    t = text.strip().replace(" ", "").replace("σ", "sigma").replace("μ", "mu")
    for pattern, factory in _REGISTRY:
        m = pattern.match(t)
        if m:
            return factory(m)
    raise ConfigError(
        f"unknown position {text!r}: use min, max, mu, mu+Ksigma, mu-Ksigma, z=K, q=P, "
        "or for the rejected side only random, min-of-M"
    )


@dataclass(frozen=True)
class Strategy:
    """A (chosen, rejected) rule; ``name`` is the output file stem."""

    name: str
    chosen: Selector
    rejected: Selector

    @property
    def spec(self) -> str:
        return f"{self.chosen.label}:{self.rejected.label}"


SEVEN_POSITIONS = ("min", "mu-2sigma", "mu-sigma", "mu", "mu+sigma", "mu+2sigma", "max")
PRESETS = {
    "conventional": "max:min",
    "sweet-spot": "max:mu-2sigma",
}


def file_stem(spec: str) -> str:
    """A file-system friendly name for a ``CHOSEN:REJECTED`` spec."""
    return spec.replace(":", "_vs_").replace("/", "-")


def _parse_one(text: str, name: str | None = None) -> Strategy:
    if text.count(":") != 1:
        raise ConfigError(
            f"strategy {text!r} must be CHOSEN:REJECTED (e.g. max:mu-2sigma) or a preset: "
            f"{', '.join([*PRESETS, 'grid'])}"
        )
    c_text, r_text = text.split(":")
    chosen, rejected = parse_selector(c_text), parse_selector(r_text)
    if chosen.rejected_only:
        raise ConfigError(f"{chosen.label!r} can only be used as the rejected side")
    if (
        chosen.order is not None
        and rejected.order is not None
        and chosen.order[0] == rejected.order[0]
        and chosen.order[1] <= rejected.order[1]
    ):
        raise ConfigError(f"strategy {text!r}: the chosen position must lie above the rejected one")
    spec = f"{chosen.label}:{rejected.label}"
    return Strategy(name or file_stem(spec), chosen, rejected)


def grid_strategies() -> list[Strategy]:
    """The 21 pairs of the paper's grid: every (higher, lower) pair of the seven positions."""
    out = []
    for i, lower in enumerate(SEVEN_POSITIONS):
        for higher in SEVEN_POSITIONS[i + 1 :]:
            out.append(_parse_one(f"{higher}:{lower}"))
    return out


def parse_strategies(texts: list[str]) -> list[Strategy]:
    """Expand presets and parse specs; duplicates (same output name) are kept once."""
    out: dict[str, Strategy] = {}
    for text in texts:
        t = text.strip()
        if t == "grid":
            items = grid_strategies()
        elif t in PRESETS:
            items = [_parse_one(PRESETS[t], name=t)]
        else:
            items = [_parse_one(t)]
        for s in items:
            out.setdefault(s.name, s)
    if not out:
        raise ConfigError("no strategy given")
    return list(out.values())
