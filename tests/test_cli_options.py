"""The command line and the library share one source of names, defaults and choices: every
command's options are checked here against the config each command is built from."""

from __future__ import annotations

import dataclasses

import click
import pytest

from eigenshift.cli import cli
from eigenshift.cli.evaluate import FIT_SAMPLING, SHARED
from eigenshift.cli.fit import NEURON_DATA
from eigenshift.core.settings import choices_of, field_types
from eigenshift.data import LabelledSource
from eigenshift.engines.config import EngineConfig
from eigenshift.evaluation.config import EvalConfig
from eigenshift.evidence.config import EvidenceConfig
from eigenshift.export.config import ExportConfig
from eigenshift.interventions.eigenshift.config import EigenShiftConfig
from eigenshift.interventions.registry import METHODS
from eigenshift.locate.configs import LayerConfig, NeuronConfig
from eigenshift.models.options import ModelOptions
from eigenshift.report.configs import ExplainConfig
from eigenshift.scoring.config import ScoreConfig
from eigenshift.studies.configs import DemoConfig, SweepConfig, TuneConfig


def _expected(config, prefix="", only=None):
    """(option name, default, choices) for every field of `config` the CLI shows."""
    types = field_types(type(config))
    for f in dataclasses.fields(config):
        if not f.metadata.get("cli", True) or (only is not None and f.name not in only):
            continue
        value = getattr(config, f.name)
        if dataclasses.is_dataclass(value):
            yield from _expected(value, prefix)
            continue
        choices = choices_of(types[f.name])
        if choices is None and hasattr(types[f.name], "__args__"):  # tuple[Literal[...], ...]
            inner = [a for a in types[f.name].__args__ if a is not Ellipsis]
            choices = choices_of(inner[0]) if inner else None
        yield prefix + f.name, value, choices


def _without(config, names):
    return (config, "", tuple(f.name for f in dataclasses.fields(config) if f.name not in names))


def _study_fit(study):
    """A study's EigenShift fit: its evidence less what the evaluation shares, the evidence's
    sampling as --fit-..., EigenShift's settings less those the study's grid sets."""
    return [_without(EvidenceConfig(), (*SHARED, "sampling")), (FIT_SAMPLING, "fit_", None),
            _without(EigenShiftConfig(), study.grid_fields)]


COMMANDS = {
    ("info",): [ModelOptions()],
    ("score",): [ScoreConfig()],
    ("data",): [(LabelledSource(max_examples=None), "", ("text_column", "label_column", "layout"))],
    ("evaluate",): [ModelOptions(), EvalConfig()],
    ("report",): [],
    ("sweep",): [ModelOptions(), EvalConfig(), SweepConfig(), *_study_fit(SweepConfig)],
    ("tune",): [ModelOptions(), EvalConfig(), TuneConfig(), *_study_fit(TuneConfig)],
    ("explain",): [ExplainConfig()],
    ("export",): [ModelOptions(), ExportConfig()],
    ("demo",): [DemoConfig()],
    ("locate", "neurons"): [ModelOptions(), LabelledSource(), NeuronConfig()],
    ("locate", "layers"): [ModelOptions(), LabelledSource(), LayerConfig()],
}
for _name, _spec in METHODS.items():
    _inputs = [LabelledSource()] if "data" in _spec.needs else []
    if "neurons" in _spec.needs:
        _inputs.append((LabelledSource(), "", NEURON_DATA))
    if "states" in _spec.needs:
        _inputs += [EvidenceConfig(), EngineConfig()]
    COMMANDS[("fit", _name)] = [ModelOptions(), *_inputs, _spec.config()]


def _every_command(group=cli, path=()):
    ctx = click.Context(group)
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        if isinstance(command, click.Group):
            yield from _every_command(command, (*path, name))
        else:
            yield (*path, name)


def test_every_command_is_held_to_its_configs():
    """A new command (or a new method's `fit`) fails here until it names its configs."""
    assert sorted(_every_command()) == sorted(COMMANDS)


def test_no_option_comes_from_nowhere():
    """Every option of every command is a field of one of its configs (or one of a few
    arguments that are not settings: inputs and outputs)."""
    loose = {"out", "interventions", "intervention_dir", "others", "neurons", "eigenshift",
             "as_json", "file", "verbose", "data2", "members", "behaviour"}
    for path, sources in COMMANDS.items():
        names = {name for source in sources for name, _, _ in _expected(
            *(source if isinstance(source, tuple) else (source, "", None)))}
        options = [p.name for p in _command(path).params if isinstance(p, click.Option)]
        assert len(options) == len(set(options)), (path, options)  # two configs, one name
        extra = set(options)
        assert extra - names - loose == set(), path


def _command(path):
    command = cli
    for part in path:
        command = command.get_command(click.Context(command), part)
    return command


def test_the_listed_short_helps_are_the_commands_own():
    """`eigenshift --help` lists commands without importing them: from texts that must agree
    with each command's docstring."""
    from eigenshift.cli import COMMANDS

    for name, (_, listed) in COMMANDS.items():
        own = _command((name,)).get_short_help_str(limit=500)
        assert own.startswith(listed.rstrip(".")), (name, listed, own)


@pytest.mark.parametrize("path", sorted(COMMANDS), ids=" ".join)
def test_options_carry_the_library_names_defaults_and_choices(path):
    command = _command(path)
    params = {p.name: p for p in command.params}
    ctx = click.Context(command, info_name=path[-1])
    checked = 0
    for source in COMMANDS[path]:
        config, prefix, only = source if isinstance(source, tuple) else (source, "", None)
        for name, default, choices in _expected(config, prefix, only):
            assert name in params, f"{' '.join(path)} lacks an option for {name}"
            param = params[name]
            got = tuple(param.default) if param.multiple else param.default
            assert got == (tuple(default) if isinstance(default, tuple) else default), name
            if choices is not None:
                assert list(param.type.choices) == [str(c) for c in choices], name
            _, text = param.get_help_record(ctx)
            if default not in (None, ()) and not isinstance(default, bool):
                shown = ", ".join(map(str, default)) if isinstance(default, tuple) else default
                assert f"[default: {shown}" in text, name
            checked += 1
    assert checked >= len(COMMANDS[path])
    help_text = _command(path).get_help(ctx)  # the rendered --help names every option
    for param in command.params:
        if isinstance(param, click.Option):
            assert param.opts[0] in help_text
