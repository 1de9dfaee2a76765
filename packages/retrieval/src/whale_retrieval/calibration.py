"""P(same individual) from the evidence of one (query, gallery photo) pair, fitted on out-of-fold pairs.

The evidence is a few numbers per pair — the global embedding similarity and the local-feature inliers of
each region (`whale_matcher.verify_pairs`) — on scales that mean nothing to each other. A calibrator maps
them to one probability, so that the individuals can be ranked by it and `new_individual` decided on it:

- `logistic`: one logistic regression over all inputs (inliers enter as log1p). Kept monotone: an input
  whose coefficient comes out negative is dropped and the model refitted, so more evidence never lowers
  the probability.
- `isotonic`: WildFusion's recipe — each input calibrated on its own by isotonic regression, the calibrated
  probabilities averaged. Monotone by construction.

Inputs that can be missing for a pair: `outline_<region>` (no fin traced in one of the photos) is NaN there,
and its `traced_<region>` is 0. The logistic model sees the outline as 0 and the indicator (whose coefficient may
take either sign), so a missing outline adds nothing; the isotonic average leaves a missing input out.

Why not an sklearn object: the fitted calibrator is saved as plain numbers in `postprocess.json` and the
gallery settings (JSON, no pickle) and evaluated with numpy, so prediction needs no sklearn at all.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from whale_core import InputError

CALIBRATORS = ("logistic", "isotonic")


class CalibrationError(InputError):
    """The labelled pairs cannot be calibrated against: all of one class (e.g. a tiny catalogue whose
    shortlists never hold a second photo of the query's animal)."""


SIMILARITY = "similarity"
#: Inputs that may be NaN (missing for a pair), and the 0/1 indicators of their presence.
MAY_BE_MISSING, PRESENCE = "outline_", "traced_"


def presence_of(name: str) -> str | None:
    """The presence indicator of an input that may be missing (`outline_backfin` → `traced_backfin`), else None."""
    return PRESENCE + name.removeprefix(MAY_BE_MISSING) if name.startswith(MAY_BE_MISSING) else None


def feature_scale(name: str, values: np.ndarray) -> np.ndarray:
    """The scale an input is calibrated on: inlier counts as log1p (diminishing returns), the rest as given."""
    values = np.asarray(values, dtype=np.float64)
    return np.log1p(np.maximum(values, 0.0)) if name.startswith("inliers") else values


def evidence_matrix(evidence: Mapping[str, np.ndarray], features: Sequence[str]) -> np.ndarray:
    """[n, len(features)] float64 matrix of the named inputs on their calibration scale.

    An input that may be missing (`outline_<region>`) is 0 where it is NaN: its `traced_<region>` says so.

    Raises:
        InputError: a missing input, inputs of different lengths, or a non-finite value.
    """
    missing = [name for name in features if name not in evidence]
    if missing:
        raise InputError(f"calibrator: evidence has no {missing[0]!r} (has {sorted(evidence)})")
    columns = [feature_scale(name, np.ravel(evidence[name])) for name in features]
    columns = [np.nan_to_num(c, nan=0.0) if presence_of(n) else c for n, c in zip(features, columns)]
    if len({len(c) for c in columns}) > 1:
        raise InputError(f"calibrator: inputs of different lengths {[len(c) for c in columns]}")
    x = np.stack(columns, axis=1) if columns else np.zeros((0, 0))
    if not np.isfinite(x).all():
        raise InputError("calibrator: evidence holds NaN or inf values")
    return x


@dataclasses.dataclass(frozen=True)
class PairCalibrator:
    """A fitted map from pair evidence to P(same individual).

    Attributes:
        kind: "logistic" or "isotonic".
        features: the input names, in order (e.g. similarity, inliers_fullbody, inliers_backfin).
        coef, intercept: logistic model on the calibration scale (coef ≥ 0).
        knots: isotonic: per input, the (x, y) breakpoints of its step function (linear between them).
        references: per `inliers_<region>`, the typical shortlist median of the calibration pairs (the prior of
            `whale_retrieval.answers.with_excess`); None for a calibrator saved before there were priors.
    """

    kind: str
    features: tuple[str, ...]
    coef: tuple[float, ...] = ()
    intercept: float = 0.0
    knots: tuple[tuple[tuple[float, ...], tuple[float, ...]], ...] = ()
    references: dict[str, float] | None = None

    def predict(self, evidence: Mapping[str, np.ndarray]) -> np.ndarray:
        """P(same) per pair, float64 in [0, 1]."""
        x = evidence_matrix(evidence, self.features)
        if self.kind == "logistic":
            return 1.0 / (1.0 + np.exp(-(x @ np.asarray(self.coef) + self.intercept)))
        if not self.knots:
            return np.zeros(len(x))
        per_input = np.stack([np.interp(x[:, i], kx, ky) for i, (kx, ky) in enumerate(self.knots)], axis=1)
        weight = _isotonic_weights(x, self.features)
        return (per_input * weight).sum(axis=1) / np.maximum(weight.sum(axis=1), 1.0)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "features": list(self.features),
            "coef": list(self.coef),
            "intercept": self.intercept,
            "knots": [[list(kx), list(ky)] for kx, ky in self.knots],
            **({"references": dict(self.references)} if self.references is not None else {}),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PairCalibrator:
        """The inverse of `to_dict` (as saved in postprocess.json and the gallery settings).

        Raises:
            InputError: an unknown kind or inconsistent numbers.
        """
        try:
            kind, features = str(data["kind"]), tuple(str(f) for f in data["features"])
            knots = tuple((tuple(map(float, kx)), tuple(map(float, ky))) for kx, ky in data.get("knots", ()))
            references = data.get("references")
            references = None if references is None else {str(k): float(v) for k, v in references.items()}
            calibrator = cls(
                kind,
                features,
                tuple(map(float, data.get("coef", ()))),
                float(data.get("intercept", 0)),
                knots,
                references,
            )
        except (KeyError, TypeError, ValueError, AttributeError) as err:
            raise InputError(f"calibrator: unreadable saved calibrator ({type(err).__name__}: {err})") from None
        expected = len(features)
        if kind not in CALIBRATORS or len(calibrator.coef if kind == "logistic" else knots) != expected:
            raise InputError(f"calibrator: saved {kind!r} calibrator does not match its {expected} inputs")
        return calibrator


def _isotonic_weights(x: np.ndarray, features: Sequence[str]) -> np.ndarray:
    """[n, inputs] weights of the isotonic average: presence indicators 0, a missing input 0, the rest 1."""
    weight = np.ones(x.shape)
    for i, name in enumerate(features):
        if name.startswith(PRESENCE):
            weight[:, i] = 0.0
        elif presence_of(name) in features:
            weight[:, i] = x[:, list(features).index(presence_of(name))]
    return weight


def _fit_logistic(x: np.ndarray, same: np.ndarray, features: Sequence[str]) -> PairCalibrator:
    from sklearn.linear_model import LogisticRegression

    signed = np.array([name.startswith(PRESENCE) for name in features])  # indicators: either sign
    kept = list(range(len(features)))
    while True:
        model = LogisticRegression(C=1.0, max_iter=2000).fit(x[:, kept], same)
        coef = model.coef_[0]
        if (coef[~signed[kept]] >= 0).all() or len(kept) == 1:
            break
        kept = [f for f, c in zip(kept, coef) if c > 0 or signed[f]] or [kept[int(np.argmax(coef))]]
    full = np.zeros(len(features))
    full[kept] = np.where(signed[kept], coef, np.maximum(coef, 0.0))
    return PairCalibrator("logistic", tuple(features), tuple(map(float, full)), float(model.intercept_[0]))


def _fit_isotonic(x: np.ndarray, same: np.ndarray, features: Sequence[str]) -> PairCalibrator:
    from sklearn.isotonic import IsotonicRegression

    knots = []
    weight = _isotonic_weights(x, features)
    for column, used in zip(x.T, weight.T > 0):
        if not used.any():  # a presence indicator, or an input never present: a flat 0 (weight 0 anyway)
            knots.append(((0.0, 1.0), (0.0, 0.0)))
            continue
        model = IsotonicRegression(y_min=0.0, y_max=1.0, increasing=True, out_of_bounds="clip")
        model.fit(column[used], same[used])
        knots.append((tuple(map(float, model.X_thresholds_)), tuple(map(float, model.y_thresholds_))))
    return PairCalibrator("isotonic", tuple(features), knots=tuple(knots))


def fit_calibrator(
    evidence: Mapping[str, np.ndarray], same: np.ndarray, features: Sequence[str], kind: str = "logistic"
) -> PairCalibrator:
    """Fit P(same | evidence) on labelled pairs (out-of-fold pairs only: the pairs must not come from
    photos the embedding model trained on as queries).

    Args:
        evidence: name → [n_pairs] values; `features` chooses and orders the inputs used.
        same: [n_pairs] bool, True where both photos show the same individual.
        kind: "logistic" or "isotonic".

    Raises:
        InputError: an unknown kind, no pairs, or pairs of one class only (nothing to calibrate against).
    """
    if kind not in CALIBRATORS:
        raise InputError(f"calibrator: unknown kind {kind!r} (one of {', '.join(CALIBRATORS)})")
    x, same = evidence_matrix(evidence, features), np.asarray(same, dtype=bool)
    if len(same) != len(x):
        raise InputError(f"calibrator: {len(same)} labels for {len(x)} pairs")
    if len(np.unique(same)) < 2:
        raise CalibrationError(
            f"calibrator: the {len(same)} pairs are all {'same' if same.all() else 'different'}-animal"
        )
    return (_fit_logistic if kind == "logistic" else _fit_isotonic)(x, same, features)
