"""The command line and the library share one source of names, defaults and choices: every
command's options are checked here against the config each command is built from."""

from __future__ import annotations

import dataclasses

import click
import pytest

from eigenshift.cli import cli
from eigenshift.data import LabelledSource
from eigenshift.demo import DemoConfig
from eigenshift.evaluation import EvalConfig
from eigenshift.interventions import REGISTRY, EigenShiftConfig
from eigenshift.locate.layers import LayerConfig
from eigenshift.locate.neurons import NeuronConfig
from eigenshift.models import ModelOptions
from eigenshift.settings import choices_of, field_types
from eigenshift.sweep import SweepConfig

NEURON_DATA = ("text_column", "label_column", "layout", "max_examples", "seed")
FIT_IN_SWEEP = ("fit_prompts", "contrast", "score", "dampen", "min_toxic")


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


COMMANDS = {
    ("info",): [ModelOptions()],
    ("data",): [(LabelledSource(max_examples=None), "", ("text_column", "label_column", "layout"))],
    ("evaluate",): [ModelOptions(), EvalConfig()],
    ("sweep",): [ModelOptions(), EvalConfig(), SweepConfig(),
                 (EigenShiftConfig(), "", FIT_IN_SWEEP),
                 (EigenShiftConfig().sampling, "fit_", None)],
    ("export",): [ModelOptions()],
    ("demo",): [DemoConfig()],
    ("locate", "neurons"): [ModelOptions(), LabelledSource(), NeuronConfig()],
    ("locate", "layers"): [ModelOptions(), LabelledSource(), LayerConfig()],
}
for _name, _method in REGISTRY.items():
    _inputs = [LabelledSource()] if "data" in _method.needs else []
    if "neurons" in _method.needs:
        _inputs.append((LabelledSource(), "", NEURON_DATA))
    COMMANDS[("fit", _name)] = [ModelOptions(), *_inputs, _method.config_class()]


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
