"""Copy the light, reviewable outputs of an ``anchored run`` folder into ``results/<name>/``.

Usage: python results/export_run.py RUN_DIR DEST_DIR
Copies config.json, results.json/.md, pareto.png, wall_time.json, evals/*.json, and per model
the training log and anchor diagnostics from ``models/<name>/final/.complete`` (weights are not
copied).  A multi-seed folder (``anchored run --seeds ...``) is exported with its aggregate files
at the top and each ``seed-N/`` below.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path


def export(src: Path, dest: Path) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    for name in ("config.json", "results.json", "results.md", "pareto.png", "wall_time.json"):
        if (src / name).exists():
            shutil.copy2(src / name, dest / name)
    if (src / "evals").is_dir():
        shutil.copytree(src / "evals", dest / "evals", dirs_exist_ok=True)
    for done in sorted(src.glob("models/*/final/.complete")):
        model = done.parent.parent.name
        info = json.loads(done.read_text())
        (dest / f"train_log_{model}.json").write_text(json.dumps(info, indent=1, default=str))
    for seed_dir in sorted(src.glob("seed-*")):
        export(seed_dir, dest / seed_dir.name)


if __name__ == "__main__":
    src, dest = Path(sys.argv[1]), Path(sys.argv[2])
    export(src, dest)
    print(f"exported {src} -> {dest}")
