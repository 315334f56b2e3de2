"""The sweep's config: a run config (one round) plus the ``sweep`` section - which n, which
strategies, which cells train, and where the cells run."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from sweetspot.config import RunConfig


class SweepCell(BaseModel):
    """One (n, strategy) cell to train."""

    model_config = ConfigDict(extra="forbid")

    n: int = Field(..., ge=2, description="Samples per prompt of the cell's pool.")
    strategy: str = Field(..., description="Strategy (CHOSEN:REJECTED or its file name).")


class SweepSettings(BaseModel):
    """The grid of a sweep: which n, which strategies, which cells train."""

    model_config = ConfigDict(extra="forbid")

    n: list[int] = Field(
        ...,
        min_length=1,
        description="Samples per prompt to compare (e.g. [5, 20, 60, 100, 200, 400]). The pool is "
        "sampled once at the largest; the pool of a smaller n is the first n samples of each "
        "prompt.",
    )
    strategies: list[str | list[str]] = Field(
        default_factory=lambda: ["conventional", "sweet-spot"],
        description="Strategies to compare: CHOSEN:REJECTED or presets (conventional, "
        "sweet-spot, grid = the 21 pairs of the seven positions); a list of strategies is one "
        "cell whose training set holds the pairs of all of them (several per prompt).",
    )
    train: Literal["all", "none"] | list[SweepCell] = Field(
        "all",
        description="Cells that train and evaluate: all, none (statistics only), or a list of "
        "{n, strategy}.",
    )
    executor: Literal["local", "ray"] = Field(
        "local", description="Run the cells one after another here, or as parallel Ray tasks."
    )
    ray_address: str | None = Field(
        None, description="ray: address of an existing cluster (default: start a local one)."
    )
    gpus_per_cell: float = Field(
        0, ge=0, description="ray: GPUs each cell's task asks for (its training and evaluation)."
    )
    cpus_per_cell: float = Field(1, gt=0, description="ray: CPUs each cell's task asks for.")

    @field_validator("n")
    @classmethod
    def _sorted(cls, v: list[int]) -> list[int]:
        if any(x < 2 for x in v):
            raise ValueError("every n must be >= 2 (a pair needs two responses)")
        return sorted(set(v))

    @field_validator("strategies")
    @classmethod
    def _known(cls, v: list[str | list[str]]) -> list[str | list[str]]:
        from sweetspot.pairs import parse_strategies

        for item in v:
            parse_strategies(item if isinstance(item, list) else [item])
            if isinstance(item, list) and len({s for s in item}) < 2:
                raise ValueError(f"a combined cell needs two or more strategies, got {item}")
        return v

    def pair_specs(self) -> list[str]:
        """Every strategy the pair stage builds (the parts of combined cells included)."""
        out: list[str] = []
        for item in self.strategies:
            for spec in item if isinstance(item, list) else [item]:
                if spec not in out:
                    out.append(spec)
        return out

    def combos(self) -> list[list[str]]:
        """The combined cells, as lists of strategy names."""
        from sweetspot.pairs import parse_strategies

        return [[s.name for s in parse_strategies(i)] for i in self.strategies
                if isinstance(i, list)]  # fmt: skip


class SweepConfig(RunConfig):
    """A run config (one round) plus the ``sweep`` section."""

    sweep: SweepSettings = Field(..., description="The n values, strategies and cells to run.")

    @model_validator(mode="before")
    @classmethod
    def _sample_at_max_n(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("sweep"), dict):
            ns = data["sweep"].get("n")
            if isinstance(ns, list) and ns and all(isinstance(x, int) for x in ns):
                sampling = dict(data.get("sampling") or {})
                given = sampling.get("n")
                if given is not None and given != max(ns):
                    raise ValueError(
                        f"sampling.n is {given}, the sweep's largest n is {max(ns)}: leave "
                        "sampling.n out (the sweep samples at its largest n)"
                    )
                sampling["n"] = max(ns)
                data = {**data, "sampling": sampling}
        return data

    @model_validator(mode="after")
    def _one_round(self) -> SweepConfig:
        if self.rounds != 1:
            raise ValueError("a sweep has one round (rounds: 1)")
        if self.sweep.train != "none" and self.evaluation is None:
            raise ValueError("cells that train need an evaluation section (or sweep.train: none)")
        self.trained_cells()  # a cell outside the grid is a config error naming it
        return self

    def _cells_by_spec(self) -> dict[str, str]:
        """spec -> the cell's strategy name; a strategy given twice under two names (sweet-spot
        and the grid's max:mu-2sigma) is one cell, named as it first appears."""
        from sweetspot.pairs import parse_strategies
        from sweetspot.pairs.combine import combo_name

        out: dict[str, str] = {}
        for item in self.sweep.strategies:
            if isinstance(item, list):
                parts = parse_strategies(item)
                spec = "+".join(p.spec for p in parts)
                out.setdefault(spec, combo_name([p.name for p in parts]))
            else:
                for st in parse_strategies([item]):
                    out.setdefault(st.spec, st.name)
        return out

    def strategy_names(self) -> list[str]:
        """The file name of every strategy cell of the sweep (presets expanded, combined cells
        as ``a+b``, one per distinct spec), in order."""
        return list(self._cells_by_spec().values())

    def cells(self) -> list[tuple[int, str]]:
        """Every (n, strategy) of the sweep."""
        return [(n, s) for n in self.sweep.n for s in self.strategy_names()]

    def trained_cells(self) -> list[tuple[int, str]]:
        """The cells that train and evaluate."""
        t = self.sweep.train
        if t == "none":
            return []
        if t == "all":
            return self.cells()
        from sweetspot.pairs import parse_strategies

        by_spec = self._cells_by_spec()
        names = set(by_spec.values())
        out = []
        for c in t:
            if c.strategy in names:
                found = [c.strategy]
            else:  # a spec or a preset (grid: its 21 cells)
                found = [by_spec.get(st.spec) for st in parse_strategies([c.strategy])]
            if c.n not in self.sweep.n or not found or None in found:
                raise ValueError(
                    f"sweep.train cell (n={c.n}, strategy={c.strategy}) is not in the sweep's grid "
                    f"(n: {self.sweep.n}; strategies: {', '.join(by_spec.values())})"
                )
            out += [(c.n, name) for name in found if (c.n, name) not in out]
        return out


def load_sweep_config(path: str | Path) -> SweepConfig:
    """Read and validate a sweep config YAML file (errors name the file, line and key)."""
    from sweetspot.config import load_config

    return load_config(path, model=SweepConfig)  # type: ignore[return-value]
