"""GGUF exports in llama.cpp against our model, on the default model (float32): how often
llama.cpp's next token and greedy continuation equal ours.

Prints one JSON object with, for 64 RealToxicityPrompts prompts and 20 greedy tokens:
- `quantization_gap`: the unedited GGUF in llama.cpp against our unedited model (llama.cpp runs
  the 4-bit weights on quantized activations, we run their de-quantized values in float32: the
  floor any export can reach);
- `eigenshift_f16` and `eigenshift_source`: EigenShift's default (centered) edit exported with
  the edited head in F16 and re-quantized to the source's type, against our baked model; and
  the unedited GGUF against the same baked model (what agreement would be without the edit);
- `steering`: the control vector in llama.cpp against our hook, and llama.cpp without it;
- seconds and sizes of each export.

    .venv/bin/python benchmarks/bench_gguf.py [--prompts 64] [--eigenshift DIR --steer DIR]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import torch
from common import timed

from eigenshift import load_model
from eigenshift.data import load_labelled, load_prompts
from eigenshift.engines.llamacpp import agreement, llama_cpp_model
from eigenshift.evidence import fit_eigenshift
from eigenshift.export.gguf import export_gguf, source_gguf
from eigenshift.interventions import MeanDifferenceSteering, load_intervention


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=64)
    parser.add_argument("--eigenshift", type=Path, help="an EigenShift artifact (default: fit)")
    parser.add_argument("--steer", type=Path, help="a steering artifact (default: fit)")
    args = parser.parse_args()
    torch.set_grad_enabled(False)
    lm = load_model("default", dtype="float32")
    prompts = load_prompts("default", limit=args.prompts).texts
    eigen = (load_intervention(args.eigenshift, lm) if args.eigenshift
             else fit_eigenshift(lm, progress=False).intervention())  # fmt: skip
    steer = (load_intervention(args.steer, lm) if args.steer
             else MeanDifferenceSteering.fit(lm, data=load_labelled("default", max_examples=1000),
                                             progress=False))  # fmt: skip
    source = source_gguf(lm)
    out: dict[str, object] = {"model": lm.name, "prompts": len(prompts), "new_tokens": 20,
                              "eigenshift": eigen.describe(lm), "steer": steer.describe(lm),
                              "source_mb": round(source.stat().st_size / 2**20, 1)}  # fmt: skip
    with llama_cpp_model(source) as plain:
        out["quantization_gap"] = agreement(lm, plain, prompts).as_dict()
        with eigen.baked(lm):
            out["unedited_gguf_vs_baked"] = agreement(lm, plain, prompts).as_dict()
        with steer.applied(lm):
            out["unsteered_gguf_vs_hook"] = agreement(lm, plain, prompts).as_dict()
    with tempfile.TemporaryDirectory() as tmp:
        for kind in ("f16", "source"):
            path, seconds = timed(lambda k=kind: export_gguf(lm, eigen, Path(tmp) / f"{k}.gguf",
                                                             tensor_type=k))  # fmt: skip
            with llama_cpp_model(path) as exported, eigen.baked(lm):
                got = agreement(lm, exported, prompts).as_dict()
            size = round(path.stat().st_size / 2**20, 1)
            out[f"eigenshift_{kind}"] = {**got, "export_seconds": round(seconds, 2), "mb": size}
        vector, seconds = timed(lambda: export_gguf(lm, steer, Path(tmp) / "steer.gguf"))
        with llama_cpp_model(source, control_vector=vector) as steered, steer.applied(lm):
            out["steering"] = {**agreement(lm, steered, prompts).as_dict(),
                               "export_seconds": round(seconds, 2)}  # fmt: skip
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
