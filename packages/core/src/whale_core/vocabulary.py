"""The words every stage and package shares: the crop regions and the answer for an unseen animal."""

from __future__ import annotations

#: The crop regions, in the detector's YOLO class-id order (the `region` column of boxes tables).
REGIONS: tuple[str, ...] = ("fullbody", "backfin")

#: The answer meaning "this animal is not in the gallery" (an id like any other for MAP@5).
NEW_INDIVIDUAL = "new_individual"
