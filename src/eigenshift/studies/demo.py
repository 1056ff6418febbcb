"""The main job on the embedded defaults: fit EigenShift (on its default toxic-word basis and on
the published singular one) and the baselines (AurA, Det-0, Damp, steering, Linear-AcT, ProFS) on
the labelled data; tune EigenShift, the two steering baselines and ProFS on validation prompts
with the same budget and rule (`tune`, which draws the frontier); evaluate the original model,
the tuned methods, EigenShift on the singular basis, the neuron baselines at their published
settings and the prompting baseline on the same test prompts; explain the removed directions;
write the report. (LinEAS and stacks are in `fit` and `tune`, not here: a LinEAS fit alone
takes minutes, beyond the demo's time.)

`--behaviour` runs the same job on another behaviour (`data.behaviour`): its labelled texts,
prompts, scorer and instruction replace toxicity's. A preference behaviour (stereotypes), measured
on held-out sentence pairs rather than on continuations, is not tuned: every method is evaluated
at its default point, the bias share of each with a paired interval beside perplexity.

Every baseline fit is saved under the run folder and reused on the next run when it matches;
EigenShift's evidence is gathered again (minutes) and gives the same fit, so the tune resumes."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from ..core.errors import ArtifactError
from ..core.io import Stopwatch
from ..data import load_labelled
from ..data.behaviour import Behaviour, load_behaviour
from ..engines.config import SamplingConfig
from ..evaluation import EvalConfig, RunFolder, evaluate
from ..evidence import EvidenceConfig, gather
from ..interventions import (
    AurA,
    Damp,
    Det0,
    EigenShift,
    EigenShiftConfig,
    EigenShiftFit,
    Intervention,
    LinearAcT,
    MeanDifferenceSteering,
    ProFS,
    PromptConfig,
    Prompting,
    load_intervention,
)
from ..locate.neurons import neuron_scores_for
from ..models import LanguageModel, load_model
from ..report import write_report
from ..report.explain import write_explanation
from .configs import DemoConfig, TuneConfig
from .tune import tune

log = logging.getLogger(__name__)

# 150 test prompts x 4 and 200 clean texts (200 and 300 before the demo gained the ProFS, singular
# EigenShift and prompting rows): every row costs about 40 s on two cores, and the demo keeps
# its wall time (docs/results.md, "make demo before and after"); the studies use more.
DEMO = EvalConfig(max_prompts=150, sampling=SamplingConfig(samples=4), clean_texts=200)
QUICK = EvalConfig(max_prompts=40, sampling=SamplingConfig(samples=2), clean_texts=60,
                   bootstrap=500)  # fmt: skip
# The same budget for every tuned method: 6 points each (EigenShift 3 k x 2 alpha, 6 strengths;
# the toxic-word basis chose k 1 to 4 and the strength methods 0.25 to 1 in every demo and study
# so far, docs/results.md), 8 before the demo gained rows; 2 when quick (a smoke test of the
# whole path, whose 40 continuations per point could not rank more).
TUNE = TuneConfig(test_prompts=DEMO.max_prompts or 150, ks=(1, 2, 4),
                  strengths=(0.25, 0.5, 0.75, 1.0, 1.5, 2.0))  # fmt: skip
QUICK_TUNE = TuneConfig(validation_prompts=20, test_prompts=40, ks=(2,), alphas=(0.5, 0.0),
                        strengths=(1.0, 2.0))  # fmt: skip
TUNED = ("steer", "linear-act", "profs")
EVIDENCE = EvidenceConfig()
QUICK_EVIDENCE = replace(EVIDENCE, max_texts=1500, rule=replace(EVIDENCE.rule, clean_budget=5000))
# Labelled texts for the baselines: neuron scores and steering, and (fewer: one pass per layer)
# the causal Linear-AcT fit.
BASELINE_TEXTS, QUICK_BASELINE_TEXTS = 1000, 300
ACT_TEXTS, QUICK_ACT_TEXTS = 400, 120
# a preference behaviour's continuations (a side measure), and its pairs per task
PREFERENCE_PROMPTS, PREFERENCE_TEXTS, PREFERENCE_PAIRS, QUICK_PAIRS = 60, 150, 300, 60
STAGES = "stages.json"  # where the demo's time went


def reused(
    lm: LanguageModel,
    folder: Path,
    matches: Callable[[Intervention], bool],
    make: Callable[[], Intervention],
) -> Intervention:
    """The artifact in `folder` if it fits this model and `matches`, else `make()`, saved there."""
    try:
        existing = load_intervention(folder, lm)
        if matches(existing):
            log.info("reusing the %s fit in %s", existing.method, folder)
            return existing
    except ArtifactError:
        pass
    intervention = make()
    intervention.save(folder)
    return intervention


def on_data(method: str, data_hash: str) -> Callable[[Intervention], bool]:
    """Matches a `method` artifact fitted on the data with this hash."""
    return lambda iv: iv.method == method and data_hash in iv.meta.data_hashes.values()


def fit_baselines(
    lm: LanguageModel,
    out: Path,
    quick: bool,
    clock: Stopwatch | None = None,
    behaviour: Behaviour | None = None,
) -> dict[str, Intervention]:
    """The paper's baselines at their published settings (AurA: every unit above 0.5; Det-0 and
    Damp: the top 1% of units, Damp at 0.5), the two steering methods and ProFS at strength 1,
    on the behaviour's labelled texts."""
    clock = clock or Stopwatch()
    behaviour = behaviour or Behaviour()

    def texts(size: int) -> Any:
        return load_labelled(behaviour.data, text_column=behaviour.text_column,
                             label_column=behaviour.label_column, max_examples=size)  # fmt: skip

    data = texts(QUICK_BASELINE_TEXTS if quick else BASELINE_TEXTS)
    act_data = texts(QUICK_ACT_TEXTS if quick else ACT_TEXTS)
    with clock("neuron scores"):
        scores = neuron_scores_for(lm, data, out / "neurons")
    h, act_h = data.hash(), act_data.hash()
    makers: dict[str, tuple[str, Callable[[], Intervention]]] = {
        "aura": (h, lambda: AurA.fit(lm, neurons=scores)),
        "det0": (h, lambda: Det0.fit(lm, neurons=scores)),
        "damp": (h, lambda: Damp.fit(lm, neurons=scores)),
        "steer": (h, lambda: MeanDifferenceSteering.fit(lm, data=data)),
        "linear-act": (act_h, lambda: LinearAcT.fit(lm, data=act_data)),
        "profs": (h, lambda: ProFS.fit(lm, data=data)),
    }
    fitted = {}
    for name, (data_hash, make) in makers.items():
        with clock(f"fit {name}"):
            fitted[name] = reused(lm, out / name, on_data(name, data_hash), tagged(make, behaviour))
    return fitted


def tagged(make: Callable[[], Intervention], behaviour: Behaviour) -> Callable[[], Intervention]:
    """`make`, its artifact recording the behaviour it was fitted against."""

    def tag() -> Intervention:
        intervention = make()
        intervention.meta.behaviour = behaviour.record()
        return intervention

    return tag


def run_demo(
    config: DemoConfig | None = None, evaluation: EvalConfig | None = None
) -> tuple[dict[str, Any], dict[str, Path]]:
    """`evaluation` replaces the demo's own evaluation settings (DEMO, or QUICK with quick)."""
    config = config or DemoConfig()
    behaviour = load_behaviour(config.behaviour)  # a bad file is refused before the model loads
    with RunFolder(config.folder).lock():
        return _demo(config, evaluation, behaviour)


def _demo(
    config: DemoConfig, evaluation: EvalConfig | None, behaviour: Behaviour
) -> tuple[dict[str, Any], dict[str, Path]]:
    out = config.folder
    clock = Stopwatch()
    t0 = time.perf_counter()
    with clock("load"):
        lm = load_model(config.model, dtype=config.dtype)
    log.info("demo: %s on %s, in %s", behaviour.name, lm.name,
             str(lm.dtype).removeprefix("torch."))  # fmt: skip
    evidence = behaviour.apply(QUICK_EVIDENCE if config.quick else EVIDENCE)
    evidence = replace(evidence, sampling=replace(evidence.sampling,
                                                  chat_template=config.chat_template))
    with clock("fit eigenshift"):
        states = gather(lm, evidence)
        fit = EigenShift.fit_statistics(lm, EigenShiftConfig(), states)
        # the published singular basis beside the default one, on the same evidence, at the
        # point issue 12's tune chose for it (k 2, alpha 0): the measured gain in one row
        singular = EigenShift.fit_statistics(lm, EigenShiftConfig(basis="singular"), states)
    for each in (fit, singular):  # their points inherit it
        each.meta.behaviour = behaviour.record()
    tuned: dict[str, EigenShiftFit | Intervention] = {"eigenshift": fit}
    instruction = PromptConfig(instruction=behaviour.instruction)
    fixed: dict[str, Intervention] = {"eigenshift-singular": singular.intervention(),
                                      "prompt": tagged(lambda: Prompting.fit(lm, instruction),
                                                       behaviour)()}  # fmt: skip
    if config.baselines:
        for name, baseline in fit_baselines(lm, out, config.quick, clock, behaviour).items():
            (tuned if name in TUNED else fixed)[name] = baseline
    settings = behaviour.apply(evaluation or (QUICK if config.quick else DEMO))
    settings = replace(settings, sampling=replace(settings.sampling,
                                                  chat_template=config.chat_template))
    if behaviour.tasks:  # a preference: every method at its default point, no tune
        test = out / "evaluate"
        methods = {name: m if isinstance(m, Intervention) else m.intervention()
                   for name, m in tuned.items()} | fixed  # fmt: skip
        with clock("evaluate"):
            evaluate(lm, methods, _preference(settings, config.quick), test)
        chosen: Intervention = methods["eigenshift"]
    else:
        with clock("tune"):
            tune(lm, tuned, QUICK_TUNE if config.quick else TUNE, settings, out / "tune",
                 fixed=fixed)  # fmt: skip
        test = out / "tune" / "test"
        folder = out / "tune" / "chosen" / "eigenshift"
        chosen = load_intervention(folder, lm) if folder.is_dir() else fit.intervention()
    assert isinstance(chosen, EigenShift)
    with clock("explain"):
        write_explanation(lm, chosen, test)
    with clock("report"):
        paths = write_report(test)
    write_stages(out, clock.seconds, time.perf_counter() - t0, lm)
    return RunFolder(test).metrics(), paths


def _preference(settings: EvalConfig, quick: bool) -> EvalConfig:
    """A preference behaviour's evaluation: its pairs are the measure, so the continuations (a
    side measure) get fewer prompts and samples, perplexity fewer clean texts, and the pairs
    fewer than `evaluate` asks (each costs every method 35 ms per task on two cores), so the
    demo keeps its wall time (docs/results.md)."""
    pairs = QUICK_PAIRS if quick else PREFERENCE_PAIRS
    return replace(settings, max_prompts=min(settings.max_prompts or PREFERENCE_PROMPTS,
                                             PREFERENCE_PROMPTS),
                   sampling=replace(settings.sampling, samples=min(settings.sampling.samples, 2)),
                   clean_texts=min(settings.clean_texts, PREFERENCE_TEXTS),
                   capability=min(settings.capability, pairs))  # fmt: skip


def write_stages(out: Path, seconds: dict[str, float], total: float, lm: LanguageModel) -> None:
    """stages.json: where this session's time went, the tune split into its evaluations'
    generation, perplexity and summary (a resumed session shows only what it did)."""
    stages: dict[str, float] = {}
    for name, value in seconds.items():
        if name != "tune":
            stages[name] = value
            continue
        inner = 0.0
        for part in ("validation", "test"):
            done = RunFolder(out / "tune" / part).read_json(RunFolder.METRICS, {})
            for stage, value_ in done.get("stage_seconds", {}).items():
                stages[f"tune {part}: {stage}"] = value_
                inner += value_
        stages["tune: other"] = round(max(value - inner, 0.0), 2)
    RunFolder(out).write_json(STAGES, {"dtype": str(lm.dtype).removeprefix("torch."),
                                       "threads": torch.get_num_threads(),
                                       "total_seconds": round(total, 2),
                                       "stages": stages})  # fmt: skip
