"""An identify `--out` folder is one run: a second writer fails clearly, a killed run leaves the last
complete one, a set mixed from two runs is refused by `enroll`, and concurrent enrolls take turns; the locks
that make them take turns exclude each other across processes and leave no file behind."""

from __future__ import annotations

import multiprocessing
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.reliability.catalogue import make_repo, write_decisions, write_run
from whale_core import InputError
from whale_reid.catalogue.enroll import enroll
from whale_reid.catalogue.run_folder import RunFolder, file_lock, reading_run, verify_run
from whale_reid.catalogue.versions import CATALOGUE
from whale_retrieval import GalleryIndex

CROP = "crops/fullbody/query/00000-p0.jpg"
REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return make_repo(tmp_path / "repo")


def test_a_second_writer_fails_at_once_and_the_first_run_is_enrolled(repo: Path, tmp_path: Path) -> None:
    out = tmp_path / "identify"
    with RunFolder(out) as first:
        with pytest.raises(InputError, match="another identify run is writing this folder now"):
            RunFolder(out).__enter__()
        with pytest.raises(InputError, match="not found"):  # nothing switched in yet: enroll has no run to read
            enroll(repo, write_decisions(tmp_path / "d.csv", 1), out)
    assert not out.exists() and not first.path.exists()  # left without commit(): nothing half-written stays
    run_id = write_run(out, repo, ["abc-p0.jpg"], [CROP])
    assert verify_run(out) == run_id
    assert enroll(repo, tmp_path / "d.csv", out).version == "v0001"


def test_a_killed_run_leaves_the_previous_run_whole(repo: Path, tmp_path: Path) -> None:
    out = tmp_path / "identify"
    first = write_run(out, repo, ["abc-p0.jpg"], [CROP], shade=10)
    killed = textwrap.dedent(f"""
        import os, signal
        from pathlib import Path
        from whale_reid.catalogue.run_folder import RunFolder
        with RunFolder(Path({str(out)!r})) as run:
            (run.path / "review.html").write_text("half of another run's page")
            os.kill(os.getpid(), signal.SIGKILL)
    """)
    proc = subprocess.run([sys.executable, "-c", killed], cwd=REPO_ROOT, capture_output=True, timeout=60, check=False)
    assert proc.returncode == -signal.SIGKILL
    assert len(list(tmp_path.glob(".identify.*.staging"))) == 1  # the killed run's folder, never switched in
    assert verify_run(out) == first
    assert enroll(repo, write_decisions(tmp_path / "d.csv", 1), out).version == "v0001"
    second = write_run(out, repo, ["def-p0.jpg"], [CROP], shade=200)
    assert verify_run(out) == second and not list(tmp_path.glob(".identify.*.staging"))


def test_a_run_killed_between_the_two_renames_is_put_back(repo: Path, tmp_path: Path) -> None:
    out = tmp_path / "identify"
    first = write_run(out, repo, ["abc-p0.jpg"], [CROP])
    out.rename(tmp_path / ".identify.0123456789abcdef.old")  # the switch's first rename done, the second not
    with RunFolder(out):
        assert verify_run(out) == first  # the next writer restores the last complete run first


@pytest.mark.parametrize("swapped", ["review.html", "query_embeddings.npz", CROP, "crops/fullbody/query/extra.jpg"])
def test_a_folder_mixed_from_two_runs_is_refused(repo: Path, tmp_path: Path, swapped: str) -> None:
    one, other = tmp_path / "one", tmp_path / "other"
    write_run(one, repo, ["abc-p0.jpg"], [CROP], shade=10)
    write_run(other, repo, ["def-p0.jpg"], [CROP, "crops/fullbody/query/extra.jpg"], shade=200)
    shutil.copy(other / swapped, one / swapped)
    with pytest.raises(InputError, match="runs mixed|from run .*, but run.json is run"):
        enroll(repo, write_decisions(tmp_path / "d.csv", 1), one)
    assert not (repo / CATALOGUE / "CURRENT").exists()


def test_out_that_is_a_file_or_someone_elses_folder_is_refused(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(InputError, match="--out must be a folder"):
        RunFolder(tmp_path / "notes.txt").__enter__()
    with pytest.raises(InputError, match="holds files that are not an identify run's .*notes.txt"):
        RunFolder(tmp_path).__enter__()
    assert (tmp_path / "notes.txt").read_text() == "x"


def _enroll_at_once(barrier, repo: Path, decisions: Path, folder: Path, results) -> None:
    barrier.wait()
    try:
        results.put(enroll(repo, decisions, folder).version)
    except Exception as err:  # reported to the test, which names it
        results.put(f"{type(err).__name__}: {err}")


def test_concurrent_enrolls_take_turns(repo: Path, tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("fork")
    n = 4
    barrier, results, jobs = ctx.Barrier(n), ctx.Queue(), []
    for i in range(n):
        folder = tmp_path / f"identify{i}"
        write_run(folder, repo, [f"img{i}-p0.jpg"], [CROP], shade=40 * i)
        decisions = tmp_path / f"d{i}.csv"
        decisions.write_text(f"photo,decision,individual_id\nsurvey/p0.jpg,new,animal{i}\n")
        jobs.append(ctx.Process(target=_enroll_at_once, args=(barrier, repo, decisions, folder, results)))
    for job in jobs:
        job.start()
    for job in jobs:
        job.join(60)
    versions = sorted(results.get(timeout=5) for _ in range(n))
    assert versions == [f"v{i:04d}" for i in range(1, n + 1)], versions
    assert (repo / CATALOGUE / "CURRENT").read_text().strip() == f"v{n:04d}"
    last = GalleryIndex.load(repo / CATALOGUE / "versions" / f"v{n:04d}")
    assert sorted(last.labels[-n:]) == [f"animal{i}" for i in range(n)]  # each saw the version before it


def test_identify_and_enroll_leave_no_lock_file(repo: Path, tmp_path: Path) -> None:
    out = tmp_path / "identify"
    write_run(out, repo, ["abc-p0.jpg"], [CROP])
    assert enroll(repo, write_decisions(tmp_path / "d.csv", 1), out).version == "v0001"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.csv", "identify", "repo"]  # no `.identify.lock`
    assert not list((repo / CATALOGUE).glob(".*"))  # nor the catalogue's `.lock`


def test_a_writer_and_a_reader_of_one_folder_exclude_each_other(repo: Path, tmp_path: Path) -> None:
    out = tmp_path / "identify"
    run_id = write_run(out, repo, ["abc-p0.jpg"], [CROP])
    with reading_run(out) as read, reading_run(out) as read_again:  # readers share
        assert read == read_again == run_id
        with pytest.raises(InputError, match="another identify run is writing this folder now"):
            RunFolder(out).__enter__()
    with RunFolder(out), pytest.raises(InputError, match="an identify run is writing this folder now"):
        reading_run(out).__enter__()
    assert not list(tmp_path.glob(".identify*"))


def _count_under_lock(lock: Path, counter: Path, times: int, barrier) -> None:
    """Add 1 to the number in `counter` `times` times, each a read and a write under the exclusive lock."""
    barrier.wait()
    for _ in range(times):
        with file_lock(lock, exclusive=True, wait=True, busy="busy"):
            value = int(counter.read_text())
            counter.write_text("being written")
            counter.write_text(str(value + 1))


def _read_under_lock(lock: Path, counter: Path, times: int, barrier, seen) -> None:
    """Read `counter` `times` times under the shared lock; report any read that caught a writer mid-way."""
    barrier.wait()
    for _ in range(times):
        with file_lock(lock, exclusive=False, wait=True, busy="busy"):
            if not counter.read_text().isdigit():
                seen.put("a reader saw a half-done write")


def test_processes_exclude_each_other_while_the_lock_file_comes_and_goes(tmp_path: Path) -> None:
    """Each release removes the file when no one holds it, so waiters wake on a removed file and must take the
    new one: with 4 writers and 2 readers racing, no increment is lost and no reader sees a write mid-way."""
    ctx = multiprocessing.get_context("fork")
    lock, counter, times = tmp_path / ".folder.lock", tmp_path / "counter", 150
    counter.write_text("0")
    barrier, seen = ctx.Barrier(6), ctx.Queue()
    jobs = [ctx.Process(target=_count_under_lock, args=(lock, counter, times, barrier)) for _ in range(4)]
    jobs += [ctx.Process(target=_read_under_lock, args=(lock, counter, times, barrier, seen)) for _ in range(2)]
    for job in jobs:
        job.start()
    for job in jobs:
        job.join(120)
    assert [job.exitcode for job in jobs] == [0] * 6
    assert seen.empty()
    assert counter.read_text() == str(4 * times)  # a lost increment = two writers inside at once
    assert not lock.exists()


def test_a_crash_exits_3_and_bad_input_2(repo: Path, tmp_path: Path) -> None:
    """The CLI's documented statuses: 2 = bad input (one line), 3 = an unexpected error (with its traceback)."""
    out = tmp_path / "identify"
    write_run(out, repo, ["abc-p0.jpg"], [CROP])
    decisions = write_decisions(tmp_path / "d.csv", 1)
    cli = [str(Path(sys.executable).parent / "whale-reid"), "enroll", str(decisions), "--identify-dir", str(out),
           "--repo", str(repo)]  # fmt: skip
    (repo / "models/gallery/gallery.json").write_text('{"format": 1, "settings": [1]}')  # hand-damaged: input
    damaged = subprocess.run(cli, cwd=REPO_ROOT, capture_output=True, text=True, timeout=120, check=False)
    assert damaged.returncode == 2 and "'settings' is a list, not a mapping" in damaged.stderr, damaged.stderr
    bug = "import sys; from whale_reid import cli; cli.enroll = lambda *a: 1 / 0; cli.main(sys.argv[1:])"
    crash = subprocess.run([sys.executable, "-c", bug, *cli[1:]], cwd=REPO_ROOT, capture_output=True, text=True,
                           timeout=120, check=False)  # fmt: skip
    assert crash.returncode == 3 and "unexpected error" in crash.stderr and "ZeroDivisionError" in crash.stderr
    (out / "run.json").unlink()
    bad = subprocess.run(cli, cwd=REPO_ROOT, capture_output=True, text=True, timeout=120, check=False)
    assert bad.returncode == 2 and bad.stderr.strip().count("\n") == 0 and "no run.json" in bad.stderr
