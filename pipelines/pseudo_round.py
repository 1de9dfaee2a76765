"""Stage `pseudo_round@<r>`: one pseudo-label round (`whale_reid.stages.pseudo_round`).

Reads the previous round's test answers (`test_answers.csv`), the prepared tables, crops, features and raw data;
writes the confident photos (the pseudo-labels, with their source), the round's models and embeddings, and its
selection, answer rule, OOF predictions, submission and test answers under `--out`; the metrics file holds the
round's scores (pseudo-labels, CV, OOF and test MAP@5, test share answered new_individual first).
"""

from __future__ import annotations

import logging

from pipelines._common import load_params, run_stage, stage_paths
from whale_core import atomic_write_json
from whale_reid.stages.pseudo_round import RoundPaths, run_round

log = logging.getLogger("pipelines.pseudo_round")


def main() -> None:
    args = stage_paths(__doc__, "answers", "prepared", "crops", "features", "raw_dir", "pseudo", "models",
                       "embeddings", "out", "metrics", round="an entry of pseudo.round_stages")  # fmt: skip
    paths = RoundPaths(args.answers, args.prepared, args.crops, args.features, args.raw_dir, args.pseudo,
                       args.models, args.embeddings, args.out)  # fmt: skip
    scores = run_round(int(args.round), load_params(), paths)
    # `round_` keeps the names apart from round 0's in `dvc exp show` (a shared name gets the file's path prefixed)
    atomic_write_json(args.metrics, {f"round_{k}": round(float(v), 4) for k, v in scores.items()})
    log.info("round %s: %s", args.round, ", ".join(f"{k} {v:.4g}" for k, v in scores.items()))


if __name__ == "__main__":
    run_stage(main)()
