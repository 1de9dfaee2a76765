"""The few lines `make demo` ends with: the final scores, where the report is, and where to look further.

    python -m pipelines.summary

Reads `metrics/final.json`, `metrics/embedder/<model>.json` and the tracking params; prints, writes nothing.
"""

from __future__ import annotations

import json
from pathlib import Path

from pipelines._common import load_params, run_stage

#: What CV and OOF mean, said once where the scores are printed.
MEANINGS = (
    "  CV: each fold's model scored on the photos it did not train on (mean ± std over the folds)",
    "  OOF: the ensemble's answers on those held-out photos, which the threshold was tuned on",
    "  test: the demo's hidden test photos, scored against their truth (real data has none)",
)
#: Identify, review and enroll on the demo's own test photos, as they copy-paste after `make demo`.
TRY_IT = (
    ("whale-reid identify data/demo/test_images --out survey-demo", "top-5 and one recommendation per photo"),
    ("survey-demo/review.html", "open in a browser: a accepts, 1-5 decide, c compares, ? lists every key"),
    ("whale-reid enroll decisions.csv --identify-dir survey-demo", "the exported decisions into the catalogue"),
)
LOOK_FURTHER = (
    ("make mlflow", "the MLflow UI: one row per model, expand it for its folds; curves and the registered model"),
    ("dvc exp show", "this run beside earlier ones (`make exp`: the key columns only)"),
    ("dvc plots show", "the validation curve of every fold and the threshold curve, offline"),
)

#: DVC ends every `dvc repro` that ran a stage with "Use `dvc push` …", remote or not.
NO_REMOTE = '  (DVC\'s "Use `dvc push`" line above needs a remote; the demo keeps its data in .dvc/cache)'


def _read(path: Path) -> dict:
    return json.loads(path.read_text()) if path.is_file() else {}


def summary_lines(root: Path, params: dict) -> list[str]:
    """The summary as printed (a missing file just leaves its line out)."""
    final = _read(root / "metrics/final.json")
    lines = ["", "whale-reid demo: done"]
    if "test_map5" in final:
        split = ", ".join(f"{k.removeprefix('test_map5_')} {final[k]:.4f}" for k in sorted(final) if "map5_" in k
                          and k.startswith("test_"))  # fmt: skip
        lines.append(f"  test MAP@5   {final['test_map5']:.4f}" + (f"  ({split})" if split else ""))
    if "oof_map5" in final:
        lines.append(f"  OOF MAP@5    {final['oof_map5']:.4f}")
    for model in (params.get("embedder") or {}).get("models", []):
        cv = _read(root / f"metrics/embedder/{model}.json")
        if "cv_map5" in cv:
            lines.append(f"  CV MAP@5     {cv['cv_map5']:.4f} ± {cv.get('cv_map5_std', 0.0):.4f}  ({model})")
    lines += MEANINGS
    report = root / "reports/index.html"
    if report.is_file():
        lines.append(f"  report       {report.resolve().as_uri()}")
    lines.append("  identify your own photos (source .venv/bin/activate first):")
    lines += [f"    {cmd:<62} {what}" for cmd, what in TRY_IT]
    lines.append("  look further:")
    lines += [f"    {cmd:<15} {what}" for cmd, what in LOOK_FURTHER]
    lines.append(NO_REMOTE)
    return lines


def main() -> None:
    print("\n".join(summary_lines(Path("."), load_params())))


if __name__ == "__main__":
    run_stage(main, announce=False)()
