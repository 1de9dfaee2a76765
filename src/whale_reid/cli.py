"""The `whale-reid` command: `identify` new photos with a pipeline run's models, `enroll` confirmed ones.

    whale-reid identify PHOTOS_OR_FOLDERS... [--out DIR] [--repo DIR] [--page-size N]
                        [--metadata FILE [--restrict location,side] [--date-window DAYS]]
    whale-reid enroll DECISIONS.csv [--identify-dir DIR] [--repo DIR] [--reviewer NAME] [--redecide]
    whale-reid catalogue {log,revert VERSION,merge KEEP ABSORBED,export OUT.csv} [--repo DIR]
    whale-reid boxes convert SRC... --format {xyxy,detic,bremer,yolo,coco} --out boxes.csv [--images DIR...]

Only the arguments and the commands live here: what identify loads is `whale_reid.identify.artefacts`, how
it answers `whale_reid.identify.queries`, what it writes `whale_reid.review.outputs`; enroll and the catalogue
are `whale_reid.catalogue`. Exit status: 0 done, 1 no photo could be read, 2 bad usage, input or missing
artefacts (one line), 3 an unexpected error (a bug: the traceback is printed, please report it).
"""

from __future__ import annotations

import argparse
import logging
import math
import sys
from pathlib import Path

import pandas as pd

from whale_core import InputError, atomic_write_csv, configure_offline_env
from whale_reid.catalogue.commands import add_commands as add_catalogue_commands
from whale_reid.catalogue.enroll import enroll
from whale_reid.catalogue.metadata import CATALOGUE_METADATA, RESTRICTIONS, Survey, gallery_metadata, read_sidecar
from whale_reid.catalogue.run_folder import RunFolder
from whale_reid.catalogue.versions import CATALOGUE
from whale_reid.common.boundary import run_guarded, setup_logging
from whale_reid.identify.artefacts import load_artefacts
from whale_reid.identify.queries import Artefacts, find_photos, identify
from whale_reid.review.outputs import write_outputs
from whale_reid.review.pages import DEFAULT_PAGE_SIZE

log = logging.getLogger("whale_reid.cli")


def restrictions(args: argparse.Namespace) -> tuple[str, ...]:
    """`--restrict` checked (with `--date-window`, it needs `--metadata`), before anything is loaded."""
    restrict = tuple(r.strip() for r in (args.restrict or "").split(",") if r.strip())
    unknown = sorted(set(restrict) - set(RESTRICTIONS))
    if unknown:
        raise InputError(f"--restrict: unknown {unknown[0]!r} (choose from {', '.join(RESTRICTIONS)})")
    if args.metadata is None and (restrict or args.date_window is not None):
        raise InputError("--restrict and --date-window need --metadata FILE (the photos' location, date, side)")
    return restrict


def read_survey(args: argparse.Namespace, photos: list[Path], artefacts: Artefacts, repo: Path) -> Survey | None:
    """The `--metadata` sidecar and `--restrict`/`--date-window` as identify uses them (None without a sidecar)."""
    if args.metadata is None:
        return None
    restrict = restrictions(args)
    gallery = gallery_metadata(repo / CATALOGUE, artefacts.gallery.image_ids)
    for column in (*restrict, *(["date"] if args.date_window is not None else [])):
        if not gallery[column].ne("").any():  # every candidate would be left out: all new_individual
            raise InputError(
                f"{repo / CATALOGUE / CATALOGUE_METADATA}: no gallery photo has a {column}, so "
                f"restricting by it leaves no candidates (add image_id,{column} rows for the gallery)"
            )
    return Survey(read_sidecar(Path(args.metadata), photos), gallery, restrict, args.date_window)


def cmd_identify(args: argparse.Namespace) -> int:
    repo, out = Path(args.repo), Path(args.out)
    photos = find_photos(args.photos, out=out)  # the output folder, even inside the survey's, is never input
    if not photos:
        raise InputError(f"no photos found in {', '.join(args.photos)}")
    restrictions(args)
    if args.metadata is not None:
        read_sidecar(Path(args.metadata), photos)  # a bad sidecar fails before the models are loaded
    with RunFolder(out) as run:  # written aside and switched into place whole; a second writer fails at once
        artefacts = load_artefacts(repo)
        log.info("gallery %s: %d photos of %d individuals", artefacts.gallery_dir, len(artefacts.gallery),
                 len(set(artefacts.gallery.labels)))  # fmt: skip
        survey = read_survey(args, photos, artefacts, repo)
        result = identify(artefacts, photos, run.path, survey)
        write_outputs(result, artefacts, repo, run.path, run.run_id, args.page_size)
        if survey is not None:  # enroll copies the decided photos' rows into the catalogue
            atomic_write_csv(run.path / CATALOGUE_METADATA, survey.photos.reset_index(names="photo"))
        run.commit()
    print(f"{len(result.photos)} of {len(photos)} photos identified → {out / 'matches.csv'}, {out / 'review.html'}")
    return 0 if len(result.photos) else 1


def cmd_enroll(args: argparse.Namespace) -> int:
    result = enroll(Path(args.repo), Path(args.decisions), Path(args.identify_dir), args.reviewer, args.redecide)
    where = f"gallery version {result.version}" if result.version else "the gallery unchanged"
    redecided = f"{len(result.redecided)} re-decided, " if len(result.redecided) else ""
    print(f"{len(result.added)} photos enrolled, {redecided}{len(result.skipped)} already there → {where}")
    return 0


def cmd_boxes_convert(args: argparse.Namespace) -> int:
    from whale_detector import box_files, check_converted, convert_boxes

    classes = [c.strip() for c in args.classes.split(",") if c.strip()]
    files = box_files(args.src, args.format)
    converted = pd.concat(
        [convert_boxes(f, args.format, images_dirs=args.images, classes=classes, region=args.region) for f in files],
        ignore_index=True,
    )
    table, report = check_converted(converted, ", ".join(args.src), args.images, args.min_box_px)
    atomic_write_csv(Path(args.out), table)
    clipped = f", {report.n_clipped} clipped to the photo's edge" if report.n_clipped else ""
    print(f"{len(table)} boxes of {table['image'].nunique()} photos from {len(files)} files{clipped} → {args.out}")
    return 0


def finite_size(text: str) -> float:
    """argparse type: a finite number >= 0 (`nan` and `inf` parse as floats, but are no size)."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value >= 0):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number >= 0")
    return value


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}")
    return value


IDENTIFY_EPILOG = """\
example:
  whale-reid identify survey/2024-06-01/ extra_photo.jpg --out identify/2024-06-01

outputs (in --out, written aside and switched into place whole):
  matches.csv          five rows per photo: rank, individual_id (or new_individual), similarity,
                       probability (when the answers are verified), species, the box used, and the
                       photo's one call: recommendation (the best candidate, or new_individual below
                       the threshold), p_same, threshold; an unreadable photo gets one row with its error
  review.html          the index of the review pages (review/page-NNNN.html, pictures in review/img/):
                       each photo's recommendation above its candidates; decide, export decisions.csv
  query_embeddings.npz what `whale-reid enroll decisions.csv` needs to add confirmed photos

exit status: 0 done, 1 no photo could be read, 2 bad usage, input or missing pipeline outputs
(one line on stderr), 3 an unexpected error (a bug: the traceback is printed)
"""


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("whale-reid")
    except PackageNotFoundError:
        return "unknown (not installed)"


def parser() -> argparse.ArgumentParser:
    main_parser = argparse.ArgumentParser(prog="whale-reid", description="Identify whales and dolphins in photos.")
    main_parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    commands = main_parser.add_subparsers(dest="command", required=True)
    ident = commands.add_parser(
        "identify", help="top-5 individuals of new photos and a review page", epilog=IDENTIFY_EPILOG,
        description="The five most likely individuals of each photo, by the pipeline run's own models and gallery.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    ident.add_argument("photos", nargs="+", help="photos and/or folders (searched recursively)")
    ident.add_argument("--out", default="identify", help="output folder (default: ./identify)")
    ident.add_argument("--repo", default=".", help="the pipeline's repository (default: the current folder)")
    ident.add_argument("--metadata", help="sidecar CSV: photo,encounter,date,location,side (all but photo optional)")
    ident.add_argument(
        "--restrict", help="candidates must share these with the photo: location,side (needs --metadata)"
    )
    ident.add_argument("--date-window", type=positive_int, metavar="DAYS",
                       help="candidates photographed within DAYS of the photo (needs --metadata)")  # fmt: skip
    ident.add_argument("--page-size", type=positive_int, default=DEFAULT_PAGE_SIZE,
                       help=f"photos (or encounters) per review page (default {DEFAULT_PAGE_SIZE})")  # fmt: skip
    ident.set_defaults(run=cmd_identify)
    enr = commands.add_parser("enroll", help="add the photos confirmed on the review page to the gallery")
    enr.add_argument("decisions", help="decisions.csv exported from review.html (photo,decision,individual_id)")
    enr.add_argument("--identify-dir", default="identify", help="the identify run's --out folder")
    enr.add_argument("--repo", default=".", help="the pipeline's repository (default: the current folder)")
    enr.add_argument("--reviewer", help="who decided, for the catalogue's log (default: the OS user)")
    enr.add_argument("--redecide", action="store_true",
                     help="move photos already in the gallery to the individual decided now (logged); without it a "
                          "conflicting decision is refused")  # fmt: skip
    enr.set_defaults(run=cmd_enroll)
    add_catalogue_commands(commands)
    boxes = commands.add_parser("boxes", help="box files").add_subparsers(dest="action", required=True)
    conv = boxes.add_parser("convert", help="a public box file → the project's boxes.csv (pixels, checked)")
    conv.add_argument(
        "src",
        nargs="+",
        help="box files, or folders of them (for --format yolo: folders of label files); all are written to one --out",
    )
    conv.add_argument("--format", required=True, choices=["xyxy", "detic", "bremer", "yolo", "coco"])
    conv.add_argument("--out", required=True, help="the boxes.csv to write")
    conv.add_argument("--images", nargs="+", default=[], help="photo folders (sizes for yolo; edge checks)")
    conv.add_argument("--classes", default="fullbody,backfin", help="region of each YOLO class id, in order")
    conv.add_argument("--region", help="the region of every box of a single-class file")
    conv.add_argument("--min-box-px", type=finite_size, default=4.0, help="smallest box width/height (default 4)")
    conv.set_defaults(run=cmd_boxes_convert)
    return main_parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script; returns (and exits with) the status."""
    args = parser().parse_args(argv)
    configure_offline_env(Path(getattr(args, "repo", ".")))
    setup_logging()
    status = run_guarded(lambda: args.run(args), f"whale-reid {args.command}")
    sys.exit(status)
