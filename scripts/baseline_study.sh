#!/bin/bash
# The baseline study of issue 6 and the length-controlled locate runs of issue 5 (docs/results.md).
# Needs runs/demo-all from `eigenshift demo --out runs/demo-all` (its EigenShift fit fixes the prompts).
set -e
cd "$(dirname "$0")/.."
E=.venv/bin/eigenshift
mkdir -p runs/study
T="/usr/bin/time -f %e"
ZH="--model gemma-3-270m --data ../shared/data/ToxiCN_1.0.csv --text-column content --label-column toxic"
$T $E locate layers --length-bins 10 --out runs/layers-en-len > runs/study/layers-en-len.log 2>&1
$T $E locate layers $ZH --length-bins 10 --out runs/layers-zh-len > runs/study/layers-zh-len.log 2>&1
$T $E locate neurons --length-bins 10 --out runs/neurons-en-len > runs/study/neurons-en-len.log 2>&1
$T $E locate neurons --pooling mean --bootstrap 0 --out runs/neurons-en-mean > runs/study/neurons-en-mean.log 2>&1
$E fit aura --neurons runs/neurons-en-len --out runs/study/aura-2000 > runs/study/fits.log 2>&1
$E fit aura --neurons runs/neurons-en-len --score auroc_length_matched --out runs/study/aura-len >> runs/study/fits.log 2>&1
$E fit aura --neurons runs/neurons-en-mean --out runs/study/aura-mean >> runs/study/fits.log 2>&1
$E fit det0 --neurons runs/neurons-en-len --k-fraction 0.1 --out runs/study/det0-10pct >> runs/study/fits.log 2>&1
$T $E fit linear-act --max-examples 400 --support all --out runs/study/act-all >> runs/study/fits.log 2>&1
$T $E evaluate --max-prompts 200 --samples 4 --clean-texts 300 \
  --intervention runs/demo-all/eigenshift --intervention runs/study/aura-2000 \
  --intervention runs/study/aura-len --intervention runs/study/aura-mean \
  --intervention runs/study/det0-10pct --intervention runs/study/act-all \
  --out runs/study/eval > runs/study/eval.log 2>&1
echo done > runs/study/done
