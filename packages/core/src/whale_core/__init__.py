"""Shared plumbing of whale-reid: typed configs, atomic writes, safe image and table reading, offline env.

Every package of the monorepo depends on this one and on nothing else of the project
(except the embedder, which also uses whale_retrieval for validation MAP@5).
"""

from whale_core.config import Config, ConfigError
from whale_core.env import OFFLINE_ENV, configure_offline_env
from whale_core.errors import InputError, os_error_line
from whale_core.images import ImageLoadError, image_size, load_rgb, resolve_image_path, verify_image
from whale_core.io import (
    atomic_link,
    atomic_path,
    atomic_write_bytes,
    atomic_write_csv,
    atomic_write_json,
    atomic_write_text,
    file_sha256,
)
from whale_core.paths import NAME_MAX, inside, safe_name
from whale_core.tables import read_json, read_table
from whale_core.vocabulary import NEW_INDIVIDUAL, REGIONS

__all__ = [
    "NAME_MAX",
    "NEW_INDIVIDUAL",
    "OFFLINE_ENV",
    "REGIONS",
    "Config",
    "ConfigError",
    "ImageLoadError",
    "InputError",
    "atomic_link",
    "atomic_path",
    "atomic_write_bytes",
    "atomic_write_csv",
    "atomic_write_json",
    "atomic_write_text",
    "configure_offline_env",
    "file_sha256",
    "image_size",
    "inside",
    "load_rgb",
    "os_error_line",
    "read_json",
    "read_table",
    "resolve_image_path",
    "safe_name",
    "verify_image",
]
