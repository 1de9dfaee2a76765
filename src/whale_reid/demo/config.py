"""The `data.demo` params section: the knobs of the synthetic whale and dolphin population."""

from __future__ import annotations

from dataclasses import dataclass, field

from whale_core import Config, ConfigError
from whale_reid.demo.species import CATALOGUE

#: Photo widths outside this range are refused (too small to show marks / pointlessly large).
MIN_WIDTH_PX, MAX_WIDTH_PX = 96, 4096
#: The kinds of photo the renderer draws: the whole animal from the side, the dorsal fin above water close
#: up, and the animal from above at the surface (the photo of a species without a dorsal fin).
PHOTO_TYPES = ("lateral", "fin", "top")


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
        photo_types: photo type -> weight (`PHOTO_TYPES`), one type drawn per photo. A species without a
            dorsal fin gets `top` photos for the `fin` share; a species with one draws among `fin` and
            `lateral` only (`top` is dropped, the rest renormalised). Weights need not sum to 1; zero
            switches a type off. `{lateral: 1}` renders exactly what the
            renderer drew before photo types existed, and only a mix with `fin` photos gives every fin
            animal at least one trailing-edge nick.
    """

    SECTION = "data.demo"
    RANGES = {
        "n_species": f"[1, {len(CATALOGUE)}]",
        "n_individuals": ">= 2",  # and at least 2 per species (checked below)
        "max_photos_per_individual": "[2, 1000]",
        "singleton_fraction": "[0, 1]",
        "mean_photos_per_individual": "[3, 1000]",  # and at most max_photos_per_individual
        "image_size": f"[{MIN_WIDTH_PX}, {MAX_WIDTH_PX}]",  # each of (min, max)
        "difficulty": "[0, 1]",
        "test_fraction": "(0, 1)",
        "new_individual_fraction": "[0, 1)",
        "photo_types": ">= 0",
    }
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
    photo_types: dict[str, float] = field(default_factory=lambda: {"fin": 0.6, "lateral": 0.3, "top": 0.1})

    def __post_init__(self) -> None:
        super().__post_init__()
        section = self.SECTION

        def bad(key: str, rule: str) -> ConfigError:
            return ConfigError(f"{section}.{key}: {getattr(self, key)!r} is out of range ({rule})")

        if self.n_individuals < 2 * self.n_species:
            raise bad("n_individuals", "must be at least 2 per species")
        if self.mean_photos_per_individual > self.max_photos_per_individual:
            raise bad("mean_photos_per_individual", "must be at most max_photos_per_individual")
        if len(self.image_size) != 2:
            raise bad("image_size", "must be [min_width, max_width]")
        low, high = self.image_size
        if low > high:
            raise bad("image_size", "need min <= max")
        self._check_photo_types()

    def _check_photo_types(self) -> None:
        where = f"{self.SECTION}.photo_types"
        unknown = sorted(set(self.photo_types) - set(PHOTO_TYPES))
        if unknown:
            raise ConfigError(f"{where}: unknown photo type {unknown[0]!r} (known: {', '.join(PHOTO_TYPES)})")
        if sum(self.photo_types.values()) <= 0:
            raise ConfigError(f"{where}: {dict(self.photo_types)!r} needs a positive weight for at least one type")

    def photo_type_weights(self) -> dict[str, float]:
        """Every type of `PHOTO_TYPES` with its share of the draws (missing types get 0; shares sum to 1)."""
        total = sum(self.photo_types.values())
        return {name: self.photo_types.get(name, 0.0) / total for name in PHOTO_TYPES}

    @property
    def draws_fin_photos(self) -> bool:
        """Whether any photo can be a `fin` photo (then every fin animal carries at least one nick)."""
        return self.photo_types.get("fin", 0.0) > 0


#: A small profile for tests (profiles/tiny.yaml): 3 species, 24 animals, about 100 small photos, half of them fins.
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
    photo_types={"fin": 0.5, "lateral": 0.5, "top": 0.0},
)
