"""The Jigsaw BiLSTM of `toxic-comment-classifier`, re-implemented in PyTorch from its .h5 weights.

The package's own code needs TensorFlow; the network is small (embedding 50, BiLSTM 50 units,
max-pool, dense 50 relu, dense 6 sigmoid) and reproduces the Keras model's scores within 1e-3
(tests/data/bilstm_reference.json, made by scripts/bilstm_reference.py). Its Keras tokenizer comes
as a pickle: we read it with an unpickler that admits only the classes such a file needs.
"""

from __future__ import annotations

import pickle
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import ClassVar

import h5py
import numpy as np
import torch
from torch import nn

from ..core.assets import asset_file
from ..core.errors import ScorerError

LABELS = ("toxic", "severe_toxic", "obscene", "threat", "insult", "identity_hate")
MAXLEN = 100


class _KerasTokenizerState:
    """Stands in for keras' Tokenizer: receives its pickled attributes and nothing else."""

    word_index: dict[str, int]
    num_words: int | None
    lower: bool
    split: str
    filters: str

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)


class RestrictedUnpickler(pickle.Unpickler):
    """Loads a Keras tokenizer pickle; any other class in the stream is refused."""

    ALLOWED: ClassVar[set[tuple[str, str]]] = {
        ("collections", "OrderedDict"),
        ("collections", "defaultdict"),
        ("builtins", "int"),
    }
    TOKENIZER_CLASSES: ClassVar[set[tuple[str, str]]] = {
        ("keras.src.legacy.preprocessing.text", "Tokenizer"),
        ("keras.preprocessing.text", "Tokenizer"),
        ("keras_preprocessing.text", "Tokenizer"),
    }

    def find_class(self, module: str, name: str):
        if (module, name) in self.TOKENIZER_CLASSES:
            return _KerasTokenizerState
        if (module, name) in self.ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(
            f"refusing to load {module}.{name} from a tokenizer pickle (only a Keras Tokenizer "
            "and plain containers are allowed)"
        )


class KerasWordTokenizer:
    """Keras' `texts_to_sequences` + `pad_sequences(maxlen=100)`: lower, filter, split, pre-pad."""

    def __init__(self, path: Path) -> None:
        try:
            with path.open("rb") as handle:
                state = RestrictedUnpickler(handle).load()
        except (pickle.UnpicklingError, EOFError, AttributeError, ValueError, TypeError,
                IndexError, KeyError, MemoryError, OSError) as exc:  # fmt: skip
            raise ScorerError(f"cannot read the BiLSTM tokenizer {path}: {exc}") from None
        expected: dict[str, type | tuple[type, ...]] = {
            "word_index": dict, "num_words": (int, type(None)), "lower": bool,
            "split": str, "filters": str,
        }  # fmt: skip
        wrong = [] if isinstance(state, _KerasTokenizerState) else ["not a Keras Tokenizer"]
        wrong += [f"'{k}' is missing or not {getattr(t, '__name__', 'int or None')}"
                  for k, t in expected.items()
                  if not wrong and not isinstance(getattr(state, k, None), t)]  # fmt: skip
        if not wrong and not (state.split and all(isinstance(w, str) and isinstance(i, int)
                                                  for w, i in state.word_index.items())):
            wrong.append("its word index or split is malformed")  # fmt: skip
        if wrong:
            raise ScorerError(f"{path} does not hold a usable Keras Tokenizer ({wrong[0]})")
        self.word_index: dict[str, int] = dict(state.word_index)
        self.num_words: int | None = state.num_words
        self.lower: bool = state.lower
        self.split: str = state.split
        self.table = str.maketrans({c: state.split for c in state.filters})

    def words(self, text: str) -> list[str]:
        if self.lower:
            text = text.lower()
        return [w for w in text.translate(self.table).split(self.split) if w]

    def ids(self, text: str) -> list[int]:
        out = []
        for word in self.words(text):
            i = self.word_index.get(word)
            if i is not None and (self.num_words is None or i < self.num_words):
                out.append(i)
        return out

    def known(self, word: str) -> bool:
        i = self.word_index.get(word.lower() if self.lower else word)
        return i is not None and (self.num_words is None or i < self.num_words)

    def encode(self, texts: Sequence[str], maxlen: int = MAXLEN) -> torch.Tensor:
        out = torch.zeros(len(texts), maxlen, dtype=torch.long)
        for row, text in enumerate(texts):
            ids = self.ids(text)[-maxlen:]  # Keras truncates at the front ('pre')
            if ids:
                out[row, maxlen - len(ids) :] = torch.tensor(ids)
        return out


class BiLSTMNet(nn.Module):
    def __init__(self, vocab: int, dim: int = 50, units: int = 50, labels: int = 6) -> None:
        super().__init__()
        self.embedding = nn.Embedding(vocab, dim)
        self.lstm = nn.LSTM(dim, units, batch_first=True, bidirectional=True)
        self.dense = nn.Linear(2 * units, 50)
        self.out = nn.Linear(50, labels)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        seq, _ = self.lstm(self.embedding(ids))
        pooled = seq.amax(dim=1)
        return torch.sigmoid(self.out(torch.relu(self.dense(pooled))))

    @classmethod
    def from_h5(cls, path: Path) -> BiLSTMNet:
        """Keras kernels are (in, 4*units), gates i, f, c, o: PyTorch's i, f, g, o, transposed."""
        try:
            with h5py.File(path, "r") as f:
                g = f["layers"]

                def var(name: str, i: int) -> torch.Tensor:
                    return torch.from_numpy(np.asarray(g[f"{name}/vars/{i}"], dtype=np.float32))

                emb = var("embedding", 0)
                net = cls(vocab=emb.shape[0], dim=emb.shape[1])
                net.embedding.weight.data.copy_(emb)
                for suffix, side in (("", "forward_layer"), ("_reverse", "backward_layer")):
                    cell = f"bidirectional/{side}/cell"
                    getattr(net.lstm, f"weight_ih_l0{suffix}").data.copy_(var(cell, 0).T)
                    getattr(net.lstm, f"weight_hh_l0{suffix}").data.copy_(var(cell, 1).T)
                    getattr(net.lstm, f"bias_ih_l0{suffix}").data.copy_(var(cell, 2))
                    getattr(net.lstm, f"bias_hh_l0{suffix}").data.zero_()
                net.dense.weight.data.copy_(var("dense", 0).T)
                net.dense.bias.data.copy_(var("dense", 1))
                net.out.weight.data.copy_(var("dense_1", 0).T)
                net.out.bias.data.copy_(var("dense_1", 1))
        except (OSError, KeyError, RuntimeError) as exc:
            raise ScorerError(f"cannot read BiLSTM weights from {path}: {exc}") from exc
        return net.eval()


def jigsaw_vocabulary() -> Callable[[str], bool]:
    """The BiLSTM's 20,000 common English words, read without loading its weights."""
    path = asset_file("toxic_classifier", "model/tokenizer.pickle", "toxic-comment-classifier")
    return KerasWordTokenizer(path).known


class BiLSTMScorer:
    """Default scorer: the probability of the Jigsaw `toxic` label, another of the six, or `mean`
    (the mean of all six, which is what the package's own `predict` returns: far lower)."""

    def __init__(
        self,
        weights: Path | None = None,
        tokenizer: Path | None = None,
        label: str = "toxic",
        batch_size: int = 256,
    ) -> None:
        if label not in (*LABELS, "mean"):
            raise ScorerError(f"label must be one of {', '.join(LABELS)} or mean, not '{label}'")
        pkg, pip_name = "toxic_classifier", "toxic-comment-classifier"
        weights = weights or asset_file(pkg, "model/model.weights.h5", pip_name)
        tokenizer = tokenizer or asset_file(pkg, "model/tokenizer.pickle", pip_name)
        self.tokenizer = KerasWordTokenizer(tokenizer)
        self.net = BiLSTMNet.from_h5(weights)
        self.label = label
        self.batch_size = batch_size
        self.name = "jigsaw-bilstm" if label == "toxic" else f"jigsaw-bilstm:{label}"
        self.vocabulary = self.tokenizer.known  # the words it can read (Scorer.vocabulary)

    @torch.inference_mode()
    def scores_all(self, texts: Sequence[str]) -> np.ndarray:
        """All six label probabilities, (n, 6)."""
        out = []
        for start in range(0, len(texts), self.batch_size):
            ids = self.tokenizer.encode(texts[start : start + self.batch_size])
            out.append(self.net(ids).double().numpy())
        return np.concatenate(out) if out else np.zeros((0, len(LABELS)))

    def score(self, texts: Sequence[str]) -> np.ndarray:
        scores = self.scores_all(list(texts))
        return scores.mean(axis=1) if self.label == "mean" else scores[:, LABELS.index(self.label)]
