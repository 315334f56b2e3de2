"""An independent reference of the pair stage, written from SPEC.md §2 and DESIGN.md alone.

It imports nothing from ``sweetspot``: the files are read with pyarrow (Parquet) and the json
module (JSONL), prompt ids are computed from their definition (sha256 of the messages'
canonical JSON, first 16 hex digits), and every prompt is handled by plain Python, one at a
time: μ with ``math.fsum``, σ with ``ddof``, the response nearest each target (distance ties to
the lower sample index), the drop rules in SPEC's order, and every provenance value.

Two things the SPEC leaves to the implementation are handled as sets of allowed picks:
- the seeded draws of ``random`` and ``min-of-M``: any other response; a response that is the
  lowest of some M drawn (ties inside a draw to the lower index);
- float rounding at a tie: when two responses with different rewards lie at the same distance
  from a target up to rounding (1e-9 relative), either is right.
:func:`build` takes the exact answer (lowest indices); :func:`compare` checks that each of the
implementation's picks is allowed, that its row is the reference's row of that pick, and that
its drop counts are reachable by allowed picks.
"""

from __future__ import annotations

import glob
import hashlib
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow.parquet as pq

COLUMNS = {
    "prompt": ("prompt", "instruction"),
    "prompt_id": ("prompt_id",),
    "responses": ("responses", "output", "outputs"),
    "rewards": ("rewards", "scores"),
    "response": ("response", "text"),
    "reward": ("reward", "score"),
    "sample_idx": ("sample_idx",),
    "finish_reason": ("finish_reason",),
}
SEVEN = ("min", "mu-2sigma", "mu-sigma", "mu", "mu+sigma", "mu+2sigma", "max")
PRESETS = {"conventional": "max:min", "sweet-spot": "max:mu-2sigma"}
DROPS = (
    "too_few_rewards",
    "too_few_for_ddof",
    "zero_sigma",
    "same_sample",
    "identical_text",
    "below_margin",
)
TIE = 1e-9


# -- reading ---------------------------------------------------------------------------------


def prompt_id_of(messages: list[dict]) -> str:
    canonical = json.dumps(
        [{"content": m["content"], "role": m["role"]} for m in messages],
        ensure_ascii=False,
        separators=(",", ":"),
        sort_keys=True,
    )
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:16]


def as_messages(prompt) -> list[dict]:
    if isinstance(prompt, str):
        return [{"role": "user", "content": prompt}]
    return [{"role": m["role"], "content": m["content"]} for m in prompt]


def _rows(path: Path) -> list[dict]:
    if path.suffix == ".parquet":
        return pq.read_table(path).to_pylist()
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _files(path: str | Path) -> list[Path]:
    text = str(path)
    if any(c in text for c in "*?["):
        return sorted(Path(p) for p in glob.glob(text))
    path = Path(path)
    if path.is_file():
        return [path]
    return sorted(
        p
        for p in path.iterdir()
        if p.suffix in (".parquet", ".jsonl", ".json") and not p.name.startswith(".")
    )


def _col(row_names, cols: dict, key: str) -> str | None:
    return next((c for c in cols[key] if c in row_names), None)


@dataclass
class Response:
    idx: int
    reward: float | None
    text: str | None
    finish_reason: str | None = None


@dataclass
class RefPool:
    """Per prompt id: its messages and its responses (every one, before any drop)."""

    messages: dict[str, list[dict]] = field(default_factory=dict)
    responses: dict[str, list[Response]] = field(default_factory=dict)

    def add(self, messages: list[dict], resp: Response) -> None:
        pid = prompt_id_of(messages)
        self.messages.setdefault(pid, messages)
        self.responses.setdefault(pid, []).append(resp)


def read_pool(path, *, columns: dict | None = None, prompts=None) -> RefPool:
    """Every layout of SPEC/DESIGN: a run (stage) folder, wide or long rows in Parquet or
    JSONL, one file, a folder of them or a glob."""
    cols = dict(COLUMNS)
    for k, v in (columns or {}).items():
        cols[k] = (v,)
    pool = RefPool()
    p = Path(path)
    if p.is_dir() and (p / "samples").is_dir() and (p / "scores").is_dir():
        table = _prompt_table(p / "prompts.parquet")
        scores = {}
        for f in _files(p / "scores"):
            for r in _rows(f):
                scores[(r["prompt_id"], r["sample_idx"])] = r["reward"]
        for f in _files(p / "samples"):
            for r in _rows(f):
                key = (r["prompt_id"], r["sample_idx"])
                resp = Response(r["sample_idx"], scores.get(key), r["text"], r.get("finish_reason"))
                pool.add(table[r["prompt_id"]], resp)
        return pool
    table = None
    if prompts is not None:
        table = _prompt_table(Path(prompts))
    elif p.is_dir() and (p / "prompts.parquet").exists():
        table = _prompt_table(p / "prompts.parquet")
    for f in _files(path):
        if f.name == "prompts.parquet":
            continue
        for r in _rows(f):
            wide = _col(r, cols, "responses") or _col(r, cols, "rewards")
            if wide:
                msgs = as_messages(r[_col(r, cols, "prompt")])
                texts, rewards = r[_col(r, cols, "responses")], r[_col(r, cols, "rewards")]
                if not texts:
                    pool.messages.setdefault(prompt_id_of(msgs), msgs)
                    pool.responses.setdefault(prompt_id_of(msgs), [])
                for i, (t, w) in enumerate(zip(texts, rewards)):
                    pool.add(msgs, Response(i, w, t))
                continue
            pc = _col(r, cols, "prompt")
            msgs = as_messages(r[pc]) if pc else table[r[_col(r, cols, "prompt_id")]]
            fc = _col(r, cols, "finish_reason")
            pool.add(
                msgs,
                Response(
                    r[_col(r, cols, "sample_idx")],
                    r[_col(r, cols, "reward")],
                    r[_col(r, cols, "response")],
                    r[fc] if fc else None,
                ),
            )
    return pool


def _prompt_table(path: Path) -> dict[str, list[dict]]:
    out = {}
    for f in _files(path):
        for r in _rows(f):
            msgs = as_messages(r["messages"] if "messages" in r else r["prompt"])
            out[prompt_id_of(msgs)] = msgs
    return out


# -- one prompt ------------------------------------------------------------------------------


@dataclass
class Prompt:
    """A prompt's usable responses (sample order) and statistics."""

    pid: str
    messages: list[dict]
    used: list[Response]
    ddof: float

    @property
    def n(self) -> int:
        return len(self.used)

    @property
    def rewards(self) -> list[float]:
        return [r.reward for r in self.used]

    @property
    def mu(self) -> float:
        return math.fsum(self.rewards) / self.n if self.n else math.nan

    @property
    def constant(self) -> bool:
        return self.n > 0 and min(self.rewards) == max(self.rewards)

    @property
    def sigma(self) -> float:
        if self.n == 0 or self.n - self.ddof <= 0:
            return math.nan
        if self.constant:
            return 0.0
        mu = self.mu
        return math.sqrt(math.fsum((r - mu) ** 2 for r in self.rewards) / (self.n - self.ddof))

    @property
    def skewness(self) -> float:
        if self.n == 0 or self.constant:
            return math.nan
        mu = self.mu
        m2 = math.fsum((r - mu) ** 2 for r in self.rewards) / self.n
        m3 = math.fsum((r - mu) ** 3 for r in self.rewards) / self.n
        return m3 / m2**1.5

    @property
    def shapiro_p(self) -> float:
        if not 3 <= self.n <= 5000 or self.constant:
            return math.nan
        from scipy.stats import shapiro

        return float(shapiro(self.rewards).pvalue)

    def quantile(self, p: float) -> float:
        s = sorted(self.rewards)
        h = (len(s) - 1) * p
        lo = math.floor(h)
        hi = min(lo + 1, len(s) - 1)
        return s[lo] + (h - lo) * (s[hi] - s[lo])


def _nearest(pr: Prompt, target: float) -> list[int]:
    """Sample indices nearest ``target``: the exact answer first (lowest index of the least
    distance), then any response whose distance differs from it by rounding only."""
    dist = [abs(r.reward - target) for r in pr.used]
    best = min(dist)
    exact = next(r.idx for r, d in zip(pr.used, dist) if d == best)
    scale = max(1.0, abs(target), abs(pr.sigma) if math.isfinite(pr.sigma) else 1.0)
    near = [r.idx for r, d in zip(pr.used, dist) if d <= best + TIE * scale and r.idx != exact]
    return [exact, *near]


def _extreme(pr: Prompt, largest: bool) -> list[int]:
    v = (max if largest else min)(pr.rewards)
    return [next(r.idx for r in pr.used if r.reward == v)]


def _position(pr: Prompt, pos: str) -> tuple[list[int], float | None]:
    """(allowed sample indices, target) of a position; target None: the reward of the pick."""
    if pos in ("min", "max"):
        return _extreme(pr, pos == "max"), None
    if pos.startswith("q="):
        t = pr.quantile(float(pos[2:]))
        return _nearest(pr, t), t
    k = _z_of(pos)
    t = pr.mu + k * pr.sigma
    return _nearest(pr, t), t


def _z_of(pos: str) -> float:
    if pos.startswith("z="):
        return float(pos[2:])
    if pos == "mu":
        return 0.0
    m = re.fullmatch(r"mu([+-])(\d*\.?\d*)sigma", pos)
    k = float(m.group(2) or 1.0)
    return k if m.group(1) == "+" else -k


def _min_of(pr: Prompt, m: int) -> list[int]:
    """Responses that are the minimum of some m drawn (ties inside a draw: lower index)."""
    if m >= pr.n:
        return _extreme(pr, False)
    ranked = sorted(pr.used, key=lambda r: (r.reward, r.idx))
    return [r.idx for r in ranked[: pr.n - m + 1]]


def _label(pos: str) -> str:
    """The canonical name of a position (z=K and mu±Ksigma name the same one)."""
    if pos.startswith("q="):
        return f"q={float(pos[2:]):g}"
    if pos == "mu" or pos.startswith(("z=", "mu+", "mu-")):
        k = _z_of(pos)
        coef = "" if abs(k) == 1 else f"{abs(k):g}"
        return "mu" if k == 0 else f"mu{'+' if k > 0 else '-'}{coef}sigma"
    return pos


def expand(specs: list[str]) -> list[tuple[str, str, str]]:
    """(name, chosen, rejected) of each strategy, presets and the grid expanded."""
    out = {}
    for s in specs:
        if s == "grid":
            items = [
                (f"{hi}_vs_{lo}", hi, lo) for i, lo in enumerate(SEVEN) for hi in SEVEN[i + 1 :]
            ]
        elif s in PRESETS:
            items = [(s, *PRESETS[s].split(":"))]
        else:
            c, r = (_label(x) for x in s.split(":"))
            items = [(f"{c}_vs_{r}", c, r)]
        for it in items:
            out.setdefault(it[0], it)
    return list(out.values())


@dataclass
class Result:
    rows: list[dict]
    dropped: dict[str, int]
    prompts_in: int


def _same_text(a: str, b: str) -> bool:
    return " ".join(a.split()) == " ".join(b.split())


def _allowed(pr: Prompt, chosen: str, rejected: str) -> list[tuple[int, int, float, float]]:
    """Every (chosen idx, rejected idx, chosen target, rejected target) the rules allow, the
    exact answer (lowest indices, no rounding) first."""
    out = []
    c_allowed, c_target = _position(pr, chosen)
    by_idx = {r.idx: r for r in pr.used}
    for c_idx in c_allowed:
        r_target = None
        if rejected == "random":
            r_allowed, r_target = [r.idx for r in pr.used if r.idx != c_idx], math.nan
        elif rejected.startswith("min-of-"):
            r_allowed = _min_of(pr, int(rejected[len("min-of-") :]))
        else:
            r_allowed, r_target = _position(pr, rejected)
        for r_idx in r_allowed:
            ct = by_idx[c_idx].reward if c_target is None else c_target
            rt = by_idx[r_idx].reward if r_target is None else r_target
            out.append((c_idx, r_idx, ct, rt))
    return out


def _outcome(pr: Prompt, c_idx: int, r_idx: int, margin: float) -> str | None:
    """The drop reason of a pick that needs the picked responses (None: kept)."""
    by_idx = {r.idx: r for r in pr.used}
    c, r = by_idx[c_idx], by_idx[r_idx]
    if c_idx == r_idx:
        return "same_sample"
    if _same_text(c.text, r.text):
        return "identical_text"
    if not c.reward - r.reward > margin:
        return "below_margin"
    return None


def _prompt_reason(pr: Prompt) -> str | None:
    """The drop reason a prompt has before any pick (None: it has a distribution)."""
    if pr.n < 2:
        return "too_few_rewards"
    if pr.n - pr.ddof <= 0:
        return "too_few_for_ddof"
    if pr.constant:
        return "zero_sigma"
    return None


def _row(pr: Prompt, name: str, pick: tuple[int, int, float, float]) -> dict:
    c_idx, r_idx, c_target, r_target = pick
    by_idx = {r.idx: r for r in pr.used}
    c, r = by_idx[c_idx], by_idx[r_idx]
    mu, sigma = pr.mu, pr.sigma
    return {
        "prompt": pr.messages,
        "chosen": [{"role": "assistant", "content": c.text}],
        "rejected": [{"role": "assistant", "content": r.text}],
        "prompt_id": pr.pid,
        "strategy": name,
        "chosen_idx": c_idx,
        "rejected_idx": r_idx,
        "chosen_reward": c.reward,
        "rejected_reward": r.reward,
        "mu": mu,
        "sigma": sigma,
        "chosen_z": (c.reward - mu) / sigma,
        "rejected_z": (r.reward - mu) / sigma,
        "chosen_target": c_target,
        "rejected_target": r_target,
        "n": pr.n,
        "skewness": pr.skewness,
        "shapiro_p": pr.shapiro_p,
    }


def build(
    prompts: list[Prompt], name: str, chosen: str, rejected: str, *, margin: float = 0.0
) -> Result:
    """One strategy over every prompt with the exact picks: the pair rows (sorted by prompt
    id) and the drop counts."""
    dropped = dict.fromkeys(DROPS, 0)
    rows = []
    for pr in sorted(prompts, key=lambda p: p.pid):
        reason = _prompt_reason(pr)
        if reason is None:
            pick = _allowed(pr, chosen, rejected)[0]
            reason = _outcome(pr, pick[0], pick[1], margin)
            if reason is None:
                rows.append(_row(pr, name, pick))
                continue
        dropped[reason] += 1
    return Result(rows, dropped, len(prompts))


def usable_prompts(
    pool: RefPool,
    *,
    ddof: float = 0.0,
    exclude_truncated: bool = False,
    max_samples: int | None = None,
) -> tuple[list[Prompt], dict]:
    """Each prompt's usable responses (the drop rules of single responses, in order: outside
    the first ``max_samples`` (not counted), non-finite reward, empty text, truncated), and the
    pool's counts."""
    counts = {"responses_in": 0, "non_finite_reward": 0, "empty_response": 0}
    if exclude_truncated:
        counts["truncated"] = 0
    out = []
    for pid, resps in pool.responses.items():
        used = []
        for r in sorted(resps, key=lambda r: r.idx):
            if max_samples is not None and r.idx >= max_samples:
                continue
            counts["responses_in"] += 1
            if r.reward is None or not math.isfinite(r.reward):
                counts["non_finite_reward"] += 1
            elif r.text is None or not r.text.strip():
                counts["empty_response"] += 1
            elif exclude_truncated and r.finish_reason == "length":
                counts["truncated"] += 1
            else:
                used.append(r)
        out.append(Prompt(pid, pool.messages[pid], used, ddof))
    return out, counts


# -- comparing an implementation's output with the reference ---------------------------------


def _close(a, b, rel=1e-9, abs_=1e-12) -> bool:
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, float) and math.isnan(a):
        return isinstance(b, float) and math.isnan(b)
    return math.isclose(a, b, rel_tol=rel, abs_tol=abs_)


FLOATS = {
    "chosen_reward": 0.0,
    "rejected_reward": 0.0,
    "mu": 1e-9,
    "sigma": 1e-9,
    "chosen_z": 1e-7,
    "rejected_z": 1e-7,
    "chosen_target": 1e-9,
    "rejected_target": 1e-9,
    "skewness": 1e-6,
    "shapiro_p": 1e-5,
}


def compare(
    got_rows: list[dict],
    got_dropped: dict,
    prompts: list[Prompt],
    name: str,
    chosen: str,
    rejected: str,
    *,
    margin: float = 0.0,
) -> int:
    """Assert that an implementation's rows and drop counts of one strategy are the
    reference's. A kept prompt's picks must be among those the reference allows (its row is
    then the reference's row of those picks); a dropped prompt must be dropped for a reason one
    of its allowed picks has, and the counts must be reachable (Hall's condition over the
    reasons). Returns how many rows the implementation settled inside the allowed sets."""
    got = {r["prompt_id"]: r for r in got_rows}
    assert len(got) == len(got_rows), f"{name}: a prompt has two rows"
    fixed = dict.fromkeys(DROPS, 0)
    flexible: list[set[str]] = []  # dropped prompts with more than one possible reason
    want_rows, deferred = [], 0
    for pr in sorted(prompts, key=lambda p: p.pid):
        reason = _prompt_reason(pr)
        if reason is not None:
            assert pr.pid not in got, (name, pr.pid, "kept, but", reason)
            fixed[reason] += 1
            continue
        allowed = _allowed(pr, chosen, rejected)
        if pr.pid in got:
            g = got[pr.pid]
            picks = [a for a in allowed if a[:2] == (g["chosen_idx"], g["rejected_idx"])]
            assert picks, (
                name,
                pr.pid,
                "picks not allowed",
                g["chosen_idx"],
                g["rejected_idx"],
                [a[:2] for a in allowed],
            )
            assert _outcome(pr, *picks[0][:2], margin) is None, (name, pr.pid, "should drop")
            deferred += picks[0] != allowed[0]
            want_rows.append(_row(pr, name, picks[0]))
            continue
        possible = {_outcome(pr, c, r, margin) for c, r, _, _ in allowed} - {None}
        assert possible, (name, pr.pid, "dropped, but every allowed pick is kept")
        if len(possible) == 1:
            fixed[possible.pop()] += 1
        else:
            flexible.append(possible)
    _check_counts(name, got_dropped, fixed, flexible)
    assert [r["prompt_id"] for r in got_rows] == [r["prompt_id"] for r in want_rows], name
    for g, w in zip(got_rows, want_rows):
        for k, v in w.items():
            tol = FLOATS.get(k)
            if tol is None or tol == 0.0:
                assert g[k] == v, (name, g["prompt_id"], k, g[k], v)
            else:
                assert _close(g[k], v, rel=tol, abs_=tol), (name, g["prompt_id"], k, g[k], v)
    return deferred


def _check_counts(name: str, got: dict, fixed: dict, flexible: list[set[str]]) -> None:
    """``got`` = ``fixed`` + one reason from each set of ``flexible``, for some choice."""
    assert list(got) == list(DROPS), (name, list(got))
    need = {k: got[k] - fixed[k] for k in DROPS}
    assert all(v >= 0 for v in need.values()), (name, got, fixed)
    assert sum(need.values()) == len(flexible), (name, got, fixed, flexible)
    used = [k for k in DROPS if need[k]]
    for mask in range(1, 1 << len(used)):
        subset = {used[i] for i in range(len(used)) if mask >> i & 1}
        supply = sum(1 for f in flexible if f & subset)
        assert sum(need[k] for k in subset) <= supply, (name, got, fixed, flexible)


def _read_output(path: Path) -> list[dict]:
    if path.suffix == ".parquet":
        return pq.read_table(path).to_pylist()
    return [json.loads(line) for line in path.read_text().splitlines()]


def check_output(
    pool_path,
    out_dir,
    specs: list[str],
    *,
    ddof: float = 0.0,
    margin: float = 0.0,
    exclude_truncated: bool = False,
    max_samples: int | None = None,
    columns: dict | None = None,
    prompts=None,
    fmt: str = "parquet",
) -> int:
    """Assert that every strategy's files in ``out_dir`` (rows, drop counts, the pool's counts)
    are the reference's for the pool at ``pool_path``; returns the picks the implementation
    settled inside the allowed sets (see :func:`compare`)."""
    pool = read_pool(pool_path, columns=columns, prompts=prompts)
    prs, counts = usable_prompts(
        pool, ddof=ddof, exclude_truncated=exclude_truncated, max_samples=max_samples
    )
    deferred = 0
    strategies = expand(specs)
    for name, c, r in strategies:
        stats = json.loads((Path(out_dir) / f"{name}.json").read_text())
        rows = _read_output(Path(out_dir) / f"{name}.{fmt}")
        assert stats["prompts_in"] == len(prs) and stats["pairs_out"] == len(rows)
        deferred += compare(rows, stats["dropped"], prs, name, c, r, margin=margin)
        p = stats["pool"]
        assert p["prompts"] == len(prs) and p["responses_in"] == counts["responses_in"]
        assert p["responses_used"] == sum(pr.n for pr in prs)
        assert p["responses_dropped"] == {k: v for k, v in counts.items() if k != "responses_in"}, (
            p["responses_dropped"],
            counts,
        )
    assert sorted(f.stem for f in Path(out_dir).glob("*.json")) == sorted(
        n for n, _, _ in strategies
    )
    return deferred
