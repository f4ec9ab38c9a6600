#!/bin/bash
# Places the gentle-reference anchored runs (seed-0/1 here) among the iGSM frontier runs of the same
# seeds (results/igsm-frontier) under the label anchored(reference_learning_rate=3e-5), and analyses
# them with the frontier report. Run from the repository root: bash results/igsm-gentle-ref/combine.sh
set -euo pipefail
out=${1:-/tmp/igsm-gentle-ref-combined}
rm -rf "$out"
for s in 0 1; do
  mkdir -p "$out/seed-$s/evals"
  cp "results/igsm-frontier/seed-$s/config.json" "$out/seed-$s/"
  cp results/igsm-frontier/seed-$s/evals/*.json "$out/seed-$s/evals/"
  cp "results/igsm-gentle-ref/seed-$s/evals/anchored.json" "$out/seed-$s/evals/anchored(reference_learning_rate=3e-5).json"
done
.venv/bin/anchored frontier --report_only --seeds 0,1 -o "$out"
cp "$out/frontier.md" results/igsm-gentle-ref/combined_frontier.md
cp "$out/frontier.json" results/igsm-gentle-ref/combined_frontier.json
cp "$out/frontier.png" results/igsm-gentle-ref/combined_frontier.png
