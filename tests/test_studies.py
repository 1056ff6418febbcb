"""The rules `sweep` and `tune` choose an operating point by, on hand-made tables whose answers
are worked out by hand (test_cli.py checks the same rules on real runs, recomputed from disk)."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import make_lm

from eigenshift.evaluation import EvalConfig
from eigenshift.interventions import ScaleUnembeddingInput, load_intervention
from eigenshift.studies import sweep as sweep_module
from eigenshift.studies.tune import RuleNeed, candidates, choose

# method: (perplexity, toxic fraction, TPH, flag_degenerate). The original: perplexity 10, toxic
# fraction 0.20. TPH = 100 * 2TQ / (T + Q), T = relative toxicity drop, Q = 1 / (1 + |relative
# perplexity change|), worked out to two decimals.
TABLE = {
    "original": (10.0, 0.20, 99.0, None),  # a TPH no real original has: never chosen anyway
    "far": (13.0, 0.00, 86.96, False),  # +30% perplexity: the best TPH, beyond +25%
    "junk": (11.0, 0.04, 85.11, True),  # more degenerate text than the original
    "edge": (12.5, 0.05, 77.42, False),  # exactly +25%
    "mild": (10.5, 0.10, 65.57, False),
    "flat": (10.0, 0.15, 40.0, False),
}


def _rows(table):
    rows = []
    for name, (ppl, tox, tph, flag) in table.items():
        row = {"method": name, "perplexity": ppl, "toxic_fraction": tox, "tph": tph,
               "relative_perplexity": (ppl - 10.0) / 10.0}  # fmt: skip
        if flag is not None:
            row["flag_degenerate"] = flag
        rows.append(row)
    return rows


@pytest.fixture(scope="module")
def grid():
    """A distinct saveable edit per point, told apart by its scale."""
    lm = make_lm("llama")
    points = [n for n in TABLE if n != "original"]
    return lm, {n: ScaleUnembeddingInput.from_scale(lm, torch.full((lm.arch.hidden_size,),
                                                                    0.5 + 0.1 * i))
                for i, n in enumerate(points)}  # fmt: skip


def _sweep(monkeypatch, tmp_path, grid, table, limit):
    lm, points = grid
    points = {n: points[n] for n in table if n != "original"}

    def evaluated(_lm, given, _config, _out, **_kwargs):
        assert list(given) == list(points)  # the grid is what gets evaluated
        return {"methods": _rows(table)}

    monkeypatch.setattr(sweep_module, "evaluate", evaluated)
    monkeypatch.setattr(sweep_module, "write_report", lambda path: None)
    out = tmp_path / f"limit-{limit}"
    summary = sweep_module.run_sweep(lm, points, EvalConfig(judge=None), out, ppl_limit=limit,
                                     progress=False)  # fmt: skip
    assert json.loads((out / "sweep.json").read_text()) == summary
    return summary, out


@pytest.mark.parametrize(
    ("limit", "best"),
    [
        (0.25, "edge"),  # far (+30%) and junk (degenerate) have higher TPH
        (0.24, "mild"),  # edge is now over the limit too
        (0.30, "far"),  # a limit that admits the best TPH
        (0.0, "flat"),  # only the point with no perplexity rise
    ],
)
def test_sweep_best_is_the_highest_tph_within_the_limit(monkeypatch, tmp_path, grid, limit,
                                                        best):  # fmt: skip
    summary, out = _sweep(monkeypatch, tmp_path, grid, TABLE, limit)
    assert summary["best"] == best and summary["ppl_limit"] == limit
    saved = load_intervention(out / "best")
    assert torch.equal(saved.tensors["scale"], grid[1][best].tensors["scale"])
    # Pareto front (both axes minimised), by hand: the original is beaten by flat (same
    # perplexity, less toxic), edge by junk (less perplexity and less toxic).
    assert summary["pareto_front"] == ["flat", "mild", "junk", "far"]


def test_sweep_with_no_point_within_the_limit_saves_nothing(monkeypatch, tmp_path, grid):
    table = {n: TABLE[n] for n in ("original", "far", "junk", "edge")}
    summary, out = _sweep(monkeypatch, tmp_path, grid, table, 0.2)
    assert summary["best"] is None and "no grid point" in summary["best_reason"]
    assert not (out / "best").exists()


TUNE_ROWS = [
    {"method": "original", "expected_max_toxicity": 0.50, "relative_perplexity": 0.0},
    {"method": "s-a", "expected_max_toxicity": 0.20, "relative_perplexity": 0.40},
    {"method": "s-b", "expected_max_toxicity": 0.25, "relative_perplexity": 0.05,
     "flag_degenerate": True},
    {"method": "s-c", "expected_max_toxicity": 0.30, "relative_perplexity": None},  # unmeasured
    {"method": "s-d", "expected_max_toxicity": 0.35, "relative_perplexity": 0.10},
    {"method": "s-e", "expected_max_toxicity": 0.40, "relative_perplexity": -0.02},
    {"method": "s-f", "expected_max_toxicity": 0.50, "relative_perplexity": 0.0},  # no drop
    {"method": "x", "expected_max_toxicity": 0.01, "relative_perplexity": 0.0},  # another method
]  # fmt: skip
STEER = ["s-a", "s-b", "s-c", "s-d", "s-e", "s-f"]


def test_tune_rule_on_a_hand_made_table():
    """Largest drop in expected maximum toxicity, perplexity within the limit, no significant
    rise in degenerate text; only the method's own points; none without a drop."""
    assert [r["method"] for r in candidates(TUNE_ROWS, STEER)] == ["s-a", "s-c", "s-d", "s-e"]
    assert choose(TUNE_ROWS, STEER, 0.10) == "s-d"  # s-a over the limit, s-b degenerate
    assert choose(TUNE_ROWS, STEER, 0.09) == "s-e"
    assert choose(TUNE_ROWS, STEER, 0.40) == "s-a"
    assert choose(TUNE_ROWS, STEER, 0.0) == "s-e"  # perplexity fell
    assert choose(TUNE_ROWS, ["s-f"], 1.0) is None  # no drop in toxicity: nothing to choose
    assert choose(TUNE_ROWS, ["s-b"], 1.0) is None
    assert choose(TUNE_ROWS, ["x", "s-a"], 0.0) == "x"


def test_tune_measures_perplexity_only_until_the_rule_can_decide():
    need = RuleNeed({"s": STEER, "x": ["x"]}, 0.10)
    assert need.order(TUNE_ROWS) == ["s-a", "s-c", "s-d", "s-e", "x"]
    measured = {"original": [10.0, 10.0], "s-a": [14.0, 14.0]}  # +40%: keep looking
    assert need.wanted("s-c", measured) and need.wanted("x", measured)
    measured["s-c"] = [10.5, 10.5]  # +5%: the rule has its point for s
    assert not need.wanted("s-d", measured) and not need.wanted("s-e", measured)
    assert need.wanted("x", measured)  # another method still needs its own


def _row(method, emt, ppl, diff=(0.0, 0.0)):
    return {"method": method, "expected_max_toxicity": emt, "relative_expected_max_toxicity":
            (emt - 0.5) / 0.5, "relative_perplexity": None if ppl is None else (ppl - 10) / 10,
            "intervals": {"expected_max_toxicity": {"diff_ci": diff}}}  # fmt: skip


def test_the_frontier_places_points_by_their_relative_changes(tmp_path, monkeypatch):
    import eigenshift.report.figures as figures

    base = _row("original", 0.5, 10.0)
    point = _row("es-k2", 0.4, 10.5, diff=(-0.15, -0.05))
    x, y, ci = figures._relative(point, base)
    assert (x, y, *ci) == pytest.approx((5.0, -20.0, -30.0, -10.0))
    drawn = []
    real = figures.plt.Axes.errorbar

    def spy(ax, x, y, *args, **kwargs):
        drawn.append((list(x), list(y), kwargs.get("label")))
        return real(ax, x, y, *args, **kwargs)

    monkeypatch.setattr(figures.plt.Axes, "errorbar", spy)
    validation = {"methods": [base, point, _row("es-k1", 0.45, 10.2), _row("es-k4", 0.3, None),
                              _row("steer-s1", 0.35, 11.5)]}  # fmt: skip
    test = {"methods": [_row("original", 0.5, 10.0), _row("es", 0.42, 10.4)]}
    path = figures.frontier(validation, test, {"es": ["es-k1", "es-k2", "es-k4"],
                                               "steer": ["steer-s1"]},
                            {"es": "es-k2", "steer": None}, 0.10, tmp_path / "f.png")  # fmt: skip
    assert path.read_bytes()[:4] == b"\x89PNG"
    es, es_test, steer = drawn
    assert es[2] == "es" and es[0] == pytest.approx([2.0, 5.0])  # k4 had no perplexity: left out
    assert es[1] == pytest.approx([-10.0, -20.0])
    assert es_test[:2] == (pytest.approx([4.0]), pytest.approx([-16.0]))  # the test star
    assert steer[0] == pytest.approx([15.0]) and steer[2] == "steer"
