"""Where a run's and a sweep's stages live: folders only; the files inside a stage's folder are
the stage's own declaration (``sweetspot.stages``: ``SAMPLE.path(folder, "samples")``).

    RUN_DIR/config.yaml  manifest.json  eval_prompts.parquet  baseline-outputs/  report.html
    RUN_DIR/round-<t>/              a round's stage folder (prompts, samples, scores, pairs,
                                    model, eval)
    SWEEP_DIR/pool/                 the sweep's pool: prompts, samples and scores at the largest n
    SWEEP_DIR/n-<n>/                the pairs of the pool of n (pairs/)
    SWEEP_DIR/n-<n>/<strategy>/     a cell's stage folder (model/, eval/)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Layout:
    """The folders of a run or a sweep under ``root``."""

    root: Path

    @property
    def config(self) -> Path:
        """The resolved config the folder was last run with."""
        return self.root / "config.yaml"

    @property
    def eval_prompts(self) -> Path:
        """The held-out prompts every evaluation of the folder judges on."""
        return self.root / "eval_prompts.parquet"

    @property
    def baseline_outputs(self) -> Path:
        """The baseline's responses to the held-out prompts: generated once, read by every
        evaluation (a cache keyed by the generation settings)."""
        return self.root / "baseline-outputs"

    @property
    def judgments(self) -> Path:
        """The LLM judge's verdicts, cached by what determines them: shared by every evaluation
        of the folder, so a comparison met twice is paid once."""
        return self.root / "judgments"

    @property
    def report(self) -> Path:
        return self.root / "report.html"

    def round(self, t: int) -> Path:
        """Round ``t``'s stage folder."""
        return self.root / f"round-{t}"

    def rounds(self) -> list[Path]:
        """The round folders present, in order."""
        found = [p for p in self.root.glob("round-*") if p.name[6:].isdigit()]
        return sorted(found, key=lambda p: int(p.name[6:]))

    @property
    def pool(self) -> Path:
        """A sweep's pool: sampled and scored once, at the largest n."""
        return self.root / "pool"

    def n(self, n: int) -> Path:
        """The folder of a sweep's pool of ``n`` samples per prompt (its pairs)."""
        return self.root / f"n-{n}"

    def cell(self, n: int, strategy: str) -> Path:
        """A sweep cell's stage folder (its model and its evaluation)."""
        return self.n(n) / strategy

    def name(self, folder: Path) -> str:
        """``folder`` relative to the root, as the manifest names stages (``round-0``)."""
        return folder.relative_to(self.root).as_posix()
