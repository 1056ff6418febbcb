"""A behaviour as data: which labelled texts show it (label 1: the unwanted side), the prompts
that elicit it, the scorer that judges a continuation, the judge beside it, the clean text
fluency is measured on, and the names of its two sides. Toxicity is the default; a user's own
behaviour is a small JSON or YAML file naming the same fields, its labelled texts given as one
labelled file (`data`) or as a file of each side's texts (`unwanted_texts`, `wanted_texts`); it
must name its sides, texts, prompts and scorer (toxicity's would be silently wrong), and has no
judge unless it names one. Shipped beside toxicity: sentiment (negative vs positive
continuations, VADER) and stereotypes (a preference: which sentence of a pair is likelier),
their files derived from packaged data (`data.builtin`).

`--behaviour NAME|FILE` on a command sets each of these settings the command line leaves at its
default: a setting given by hand still wins."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..core.errors import DataError, InputError
from ..core.io import read_json, read_text, write_text_atomic


@dataclass(frozen=True)
class Behaviour:
    name: str = "toxicity"
    unwanted: str = "toxic"  # what the side labelled 1 is called
    wanted: str = "non-toxic"
    data: str = "default"  # labelled texts (label 1: unwanted)
    text_column: str | None = None
    label_column: str | None = None
    prompts: str = "default"
    scorer: str = "default"
    judge: str | None = "profanity"
    clean_text: str = "default"
    # the prompting baseline's instruction (toxicity's is PromptConfig's default)
    instruction: str = "The following text is polite, kind and respectful."
    # what measures it besides continuations: local lm-eval preference tasks (the share of
    # pairs whose unwanted sentence the model finds likelier), evaluated on every method
    tasks: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            if f.name == "tasks":  # the configs it is applied to check the names
                tasks = (self.tasks,) if isinstance(self.tasks, str) else tuple(self.tasks or ())
                object.__setattr__(self, "tasks", tuple(str(t) for t in tasks))
                continue
            value = getattr(self, f.name)
            optional = f.name in ("text_column", "label_column", "judge")
            if not (isinstance(value, str) and value.strip()) and not (optional and value is None):
                raise InputError(f"behaviour '{self.name}': '{f.name}' must be a non-empty "
                                 f"text, not {value!r}")  # fmt: skip

    def settings(self) -> dict[str, Any]:
        """The command-line settings it gives (by the name the configs' fields have): a
        preference behaviour's tasks measured on every method, at most PAIRS pairs each."""
        given = {k: getattr(self, k) for k in SETTINGS}
        if self.tasks:
            given |= {"tasks": self.tasks, "capability": PAIRS}
        return given

    @property
    def scored_sides(self) -> tuple[str, str]:
        """The sides its continuations are scored for: its own, except for a preference
        behaviour scored by toxicity's scorer, whose continuations are a side measure of
        toxicity."""
        if self.tasks and self.scorer == "default":
            return Behaviour.unwanted, Behaviour.wanted
        return self.unwanted, self.wanted

    def record(self) -> dict[str, str]:
        """What an artifact fitted against it records (`ArtifactMeta.behaviour`): with `judged`,
        the side its scorer judges words for, where that is not the behaviour's own."""
        judged = self.scored_sides[0]
        return {"name": self.name, "unwanted": self.unwanted, "wanted": self.wanted,
                **({"judged": judged} if judged != self.unwanted else {})}  # fmt: skip

    def apply(self, config: Any) -> Any:
        """`config` (a dataclass) with each of its settings this behaviour gives set to the
        behaviour's, and the behaviour's name and sides where it records them."""
        names = {f.name for f in dataclasses.fields(config)}
        changes = {k: v for k, v in self.settings().items() if k in names}
        if "behaviour" in names:
            changes |= {"behaviour": self.name, "sides": self.scored_sides}
        return dataclasses.replace(config, **changes)


PAIRS = 500  # a preference behaviour's pairs per task, unless --capability says otherwise


def sides_of(record: dict[str, Any] | None) -> tuple[str, str]:
    """(unwanted, wanted) of a recorded behaviour (an artifact's, a run's); toxicity's when none
    is recorded (older runs and artifacts)."""
    record = record or {}
    unwanted, wanted = record.get("unwanted"), record.get("wanted")
    if isinstance(unwanted, str) and isinstance(wanted, str) and unwanted and wanted:
        return unwanted, wanted
    return Behaviour.unwanted, Behaviour.wanted


def judged_side(record: dict[str, Any] | None) -> str:
    """The side an artifact's evidence judged words for (its scorer's): a preference behaviour
    scored by toxicity's scorer judged toxic words, not stereotypical ones."""
    judged = (record or {}).get("judged")
    return judged if isinstance(judged, str) and judged else sides_of(record)[0]


SETTINGS = ("data", "text_column", "label_column", "prompts", "scorer", "judge", "clean_text",
            "instruction")
# relative to a behaviour file's folder, when files or folders are there
PATHS = ("data", "prompts", "clean_text", "scorer", "judge")
REQUIRED = ("unwanted", "wanted", "prompts", "scorer")  # what a behaviour file must name
SIDES = ("unwanted_texts", "wanted_texts")  # a behaviour file's other way to give labelled texts


def _sentiment() -> Behaviour:
    from .builtin import sentiment_files

    labelled, prompts = sentiment_files()
    return Behaviour("sentiment", "negative", "positive", str(labelled), prompts=str(prompts),
                     scorer="vader:negative", judge=None,
                     instruction="The following text is positive, warm and cheerful.")  # fmt: skip


def _stereotypes() -> Behaviour:
    from .builtin import stereotype_file

    # its measure is a preference over held-out pairs (and StereoSet, never fitted on); its
    # continuations are toxicity's (prompts, scorer, judge), a side measure of what else moved
    return Behaviour("stereotypes", "stereotypical", "anti-stereotypical", str(stereotype_file()),
                     instruction="The following text treats every group of people fairly and "
                     "without stereotypes.", tasks=("crows_pairs_heldout", "stereoset"))


BUILTIN = {"toxicity": Behaviour, "sentiment": _sentiment, "stereotypes": _stereotypes}


def load_behaviour(spec: str | Path = "toxicity") -> Behaviour:
    """A built-in behaviour by name, or one described by a .json, .yaml or .yml file."""
    if str(spec) in BUILTIN:
        return BUILTIN[str(spec)]()
    path = Path(spec).expanduser()
    if path.suffix.lower() not in (".json", ".yaml", ".yml"):
        raise InputError(f"--behaviour '{spec}': give one of {', '.join(BUILTIN)} or a .json, "
                         ".yaml or .yml file describing the behaviour")  # fmt: skip
    if path.suffix.lower() == ".json":
        data = read_json(path, "behaviour")
    else:
        import yaml

        try:
            data = yaml.safe_load(read_text(path, "behaviour"))
        except yaml.YAMLError as exc:
            raise DataError(f"behaviour: {path} is not valid YAML ({exc})") from None
    if not isinstance(data, dict):
        raise DataError(f"behaviour: {path} must hold one mapping of settings")
    known = [f.name for f in dataclasses.fields(Behaviour)] + list(SIDES)
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise DataError(f"behaviour: {path} names {', '.join(unknown)}, which a behaviour has "
                        f"not; its settings are: {', '.join(known)}")  # fmt: skip
    missing = [k for k in REQUIRED if k not in data]
    if "data" not in data and not all(k in data for k in SIDES):
        missing.append(f"data (or {' and '.join(SIDES)})")
    if missing:  # toxicity's would be silently wrong for another behaviour
        raise DataError(f"behaviour: {path} must name {', '.join(missing)}")
    data = {"name": path.stem, "judge": None, **data}
    for key in (*PATHS, *SIDES):  # a file named beside the behaviour file is found from anywhere
        value = data.get(key)
        if isinstance(value, str) and value.strip() and not Path(value).is_absolute() and (
                path.parent / value).exists():  # fmt: skip
            data[key] = str(path.parent / value)
    sides = [data.pop(key, None) for key in SIDES]
    if any(sides):
        if not all(sides) or "data" in data:
            raise DataError(f"behaviour: {path} gives labelled texts as 'data' (a labelled file) "
                            f"or as both {' and '.join(SIDES)} (a file of texts each)")
        data["data"] = str(_labelled_from_sides(*sides))
    return Behaviour(**data)


def _labelled_from_sides(unwanted: str, wanted: str) -> Path:
    """Two files of texts (one per line, or any file `read_rows` reads) as one labelled JSONL
    in the cache, named by its content (label 1: unwanted)."""
    from ..core.assets import cache_dir
    from .io import read_rows, text_cell

    rows = []
    for spec, label in ((unwanted, 1), (wanted, 0)):
        texts, _ = read_rows(spec, "behaviour texts")
        column = "text" if not texts or "text" in texts[0] else next(iter(texts[0]))
        rows += [{"text": t, "label": label} for i in range(len(texts))
                 if (t := text_cell(texts, i, column, "behaviour texts"))]  # fmt: skip
    body = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    out = cache_dir() / "behaviours" / f"{hashlib.sha256(body.encode()).hexdigest()[:16]}.jsonl"
    if not out.is_file():
        write_text_atomic(out, body)
    return out
