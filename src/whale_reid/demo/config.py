"""The `data.demo` params section: the knobs of the synthetic whale and dolphin population."""

from __future__ import annotations

from dataclasses import dataclass

from whale_core import Config, ConfigError
from whale_reid.demo.species import CATALOGUE

#: Photo widths outside this range are refused (too small to show marks / pointlessly large).
MIN_WIDTH_PX, MAX_WIDTH_PX = 96, 4096


@dataclass(frozen=True)
class DemoConfig(Config):
    """How many animals, how many photos of each, and how hard the photos are.

    Attributes:
        seed: the one source of randomness; the same seed gives byte-identical output.
        n_species: how many species of the catalogue to use (the first `n_species`, in catalogue order).
        n_individuals: animals in the population, including those seen only in test (new individuals).
        max_photos_per_individual: the most photos any one animal gets (train and test together).
        singleton_fraction: share of animals photographed only once or twice (the long tail).
        mean_photos_per_individual: mean photo count of the other animals (3 + a geometric tail, capped
            at `max_photos_per_individual`).
        image_size: (min, max) photo width in pixels; each photo's height follows a random aspect ratio.
        difficulty: 0 = clean photos … 1 = heavy spray, blur, wave occlusion and low JPEG quality.
        test_fraction: share of all photos held out as test photos.
        new_individual_fraction: share of test photos showing animals that have no train photo.
    """

    SECTION = "data.demo"
    seed: int = 7
    n_species: int = 4
    n_individuals: int = 80
    max_photos_per_individual: int = 24
    singleton_fraction: float = 0.2
    mean_photos_per_individual: float = 10.0
    image_size: tuple[int, int] = (320, 512)
    difficulty: float = 0.4
    test_fraction: float = 0.2
    new_individual_fraction: float = 0.15

    def __post_init__(self) -> None:
        section = self.SECTION

        def bad(key: str, rule: str) -> ConfigError:
            return ConfigError(f"{section}.{key}: {getattr(self, key)!r} is out of range ({rule})")

        if self.seed < 0:
            raise bad("seed", "must be >= 0")
        if not 1 <= self.n_species <= len(CATALOGUE):
            raise bad("n_species", f"must be between 1 and {len(CATALOGUE)}")
        if self.n_individuals < 2 * self.n_species:
            raise bad("n_individuals", "must be at least 2 per species")
        if not 2 <= self.max_photos_per_individual <= 1000:
            raise bad("max_photos_per_individual", "must be between 2 and 1000")
        if not 3.0 <= self.mean_photos_per_individual <= self.max_photos_per_individual:
            raise bad("mean_photos_per_individual", "must be between 3 and max_photos_per_individual")
        if not 0.0 <= self.singleton_fraction <= 1.0:
            raise bad("singleton_fraction", "must be between 0 and 1")
        if len(self.image_size) != 2:
            raise bad("image_size", "must be [min_width, max_width]")
        low, high = self.image_size
        if not MIN_WIDTH_PX <= low <= high <= MAX_WIDTH_PX:
            raise bad("image_size", f"need {MIN_WIDTH_PX} <= min <= max <= {MAX_WIDTH_PX}")
        if not 0.0 <= self.difficulty <= 1.0:
            raise bad("difficulty", "must be between 0 and 1")
        if not 0.0 < self.test_fraction < 1.0:
            raise bad("test_fraction", "must be strictly between 0 and 1")
        if not 0.0 <= self.new_individual_fraction < 1.0:
            raise bad("new_individual_fraction", "must be >= 0 and < 1")


#: A small profile for tests: 3 species, 24 animals, about 100 small photos, renders in a few seconds.
TINY_DEMO = DemoConfig(
    seed=11,
    n_species=3,
    n_individuals=24,
    max_photos_per_individual=8,
    singleton_fraction=0.3,
    mean_photos_per_individual=6.5,
    image_size=(160, 224),
    difficulty=0.5,
    test_fraction=0.2,
    new_individual_fraction=0.15,
)
