"""Typed exceptions: the CLI turns every `EigenshiftError` into one line on stderr and exit 2."""


class EigenshiftError(Exception):
    """Base of every error this library raises on purpose."""


class InputError(EigenshiftError, ValueError):
    """The user gave something we cannot use: the message says what and what to do."""


class ModelLoadError(InputError):
    """A model spec could not be resolved or loaded."""


class UnsupportedArchitectureError(InputError):
    """A model whose unembedding, blocks or MLP sites we could not find."""


class DataError(InputError):
    """A data file or data set that is missing, empty, one-class or lacks a column."""


class ScorerError(InputError):
    """A scorer spec that could not be loaded, or a scorer file that failed its checks."""


class ArtifactError(InputError):
    """An intervention artifact that is malformed or was fitted on another model."""


class NotBakeableError(EigenshiftError):
    """The intervention cannot be folded into plain weights; apply it with a hook instead."""


class EngineError(EigenshiftError):
    """A generation engine (vLLM) failed or does not serve the model faithfully."""


# What torch's safe loader (weights_only) says of a pickle holding more than tensors; its own
# advice is to load it unsafely, which we never pass on.
UNSAFE_PICKLE = ("holds a pickled checkpoint that torch refuses to load safely (loading it "
                 "would run the code it carries): use a safetensors copy of it")
