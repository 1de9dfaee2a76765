"""Scores a `whale-reid identify` run on a held-out survey against its truth (docs/results.md, "Real photos").

    python benchmarks/real_photos/score_identify.py --matches identify/matches.csv --truth survey_truth.csv

`--truth` is a CSV `photo,individual_id` (`new_individual` for animals absent from the catalogue), photo named as
identify names it (the path it was given) or by its path inside the survey folder, e.g. the file name: a truth
photo is found by the answers' paths that end with it. Prints one JSON object: MAP@5 (all,
known, new; the Kaggle metric of `whale_retrieval.map_at_5`), the known photos' top-1 accuracy, and the share of
photos answered `new_individual` first against the true share. A photo identify could not read, or one missing
from the matches, scores 0 and is counted.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd

from whale_core import NEW_INDIVIDUAL, InputError, read_table
from whale_retrieval import known_new_groups, map_at_5, map_at_5_by_group


def ranked_answers(matches: pd.DataFrame) -> dict[str, list[str]]:
    """Each photo's five ids, best first (error rows, rank 0, give an empty list)."""
    missing = [c for c in ("photo", "rank", "individual_id") if c not in matches.columns]
    if missing:
        raise InputError(f"matches.csv: columns {missing} missing (is it identify's matches.csv?)")
    rank = pd.to_numeric(matches["rank"], errors="coerce").fillna(0)
    ranked = matches.assign(rank=rank)[rank >= 1].sort_values("rank", kind="stable")
    answers = {str(p): g["individual_id"].tolist() for p, g in ranked.groupby("photo", sort=False)}
    return answers | {str(p): [] for p in matches["photo"] if str(p) not in answers}


def answers_of(answers: dict[str, list[str]], photo: str) -> list[str]:
    """The answers of the truth's `photo`: identify's own name for it, or the one path ending with `/photo`.

    Raises:
        InputError: several answered paths end with `photo` (name the photos by their path in the survey).
    """
    if photo in answers:
        return answers[photo]
    found = [name for name in answers if name.endswith("/" + photo.lstrip("/"))]
    if len(found) > 1:
        raise InputError(f"truth photo {photo!r} ends {len(found)} answered paths, e.g. {found[0]}: give its path")
    return answers[found[0]] if found else []


def score(matches: pd.DataFrame, truth: pd.DataFrame) -> dict:
    answers = ranked_answers(matches)
    photos, labels = truth["photo"].astype(str).tolist(), truth["individual_id"].astype(str).tolist()
    predicted = [answers_of(answers, p) for p in photos]
    groups = map_at_5_by_group(predicted, labels, known_new_groups(labels))
    known = [(a, t) for a, t in zip(predicted, labels) if t != NEW_INDIVIDUAL]
    return {
        "photos": len(photos), "unanswered": sum(1 for a in predicted if not a),
        "map5": round(map_at_5(predicted, labels), 4),
        **{f"map5_{g}": round(v, 4) for g, v in groups.items()},
        "top1_known": round(sum(bool(a) and a[0] == t for a, t in known) / max(len(known), 1), 4),
        "new_first_share": round(sum(bool(a) and a[0] == NEW_INDIVIDUAL for a in predicted) / len(photos), 4),
        "new_true_share": round(labels.count(NEW_INDIVIDUAL) / len(photos), 4),
    }  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--matches", type=Path, required=True, help="identify's matches.csv")
    parser.add_argument("--truth", type=Path, required=True, help="CSV photo,individual_id")
    args = parser.parse_args(argv)
    try:
        truth = read_table(args.truth)
        if not {"photo", "individual_id"} <= set(truth.columns) or truth.empty:
            raise InputError(f"{args.truth}: expected a non-empty CSV with columns photo,individual_id")
        print(json.dumps(score(read_table(args.matches), truth), indent=2))
    except InputError as error:
        raise SystemExit(f"error: {error}") from None


if __name__ == "__main__":
    main()
