import cv2
import numpy as np
import pytest

from tests.matcher.conftest import row
from whale_core import InputError
from whale_matcher import (
    EXTRACTORS,
    Features,
    MatcherConfig,
    akaze_available,
    extract_features,
    load_features,
    save_features,
)
from whale_matcher.synthetic import HEIGHT, WIDTH


def test_rootsift_features_layout(feats, crop_paths):
    assert list(feats.image) == list(crop_paths)
    counts = feats.counts()
    assert counts[row(feats, "t0")] == 400 and counts.max() <= 400
    assert feats.desc.dtype == np.float32 and feats.desc.shape[1] == 128 and feats.offsets.dtype == np.int64
    np.testing.assert_allclose(np.linalg.norm(feats.desc, axis=1), 1.0, atol=1e-5)  # RootSIFT is unit L2
    assert (feats.desc >= 0).all()
    assert (feats.size == [WIDTH, HEIGHT]).all() and feats.size.dtype == np.int32
    assert (feats.xy >= -0.5).all() and (feats.xy[:, 0] < WIDTH).all() and (feats.xy[:, 1] < HEIGHT).all()
    assert feats.mirrored is not None and len(feats.mirrored) == len(feats)
    # the mirrored crop's features of t0 are the plain features of its mirror image m0
    np.testing.assert_array_equal(feats.mirrored.keypoints(row(feats, "t0"))[0], feats.keypoints(row(feats, "m0"))[0])


def test_flat_crop_has_no_keypoints(feats):
    xy, desc = feats.keypoints(row(feats, "flat"))
    assert xy.shape == (0, 2) and desc.shape == (0, 128)
    assert feats.mirrored.keypoints(row(feats, "flat"))[0].shape == (0, 2)


def test_unreadable_crop_is_named(tmp_path):
    bad = tmp_path / "broken.jpg"
    bad.write_text("not an image")
    with pytest.raises(InputError, match="broken.jpg"):
        extract_features(["x"], [bad], MatcherConfig(), progress=False)
    with pytest.raises(InputError, match="missing.png"):
        extract_features(["y"], [tmp_path / "missing.png"], MatcherConfig(), progress=False)


def test_take_and_workers(feats, crop_paths):
    names = ["t3", "flat", "t1"]
    part = feats.take([row(feats, n) for n in names])
    assert list(part.image) == names and part.mirrored is not None
    for i, name in enumerate(names):
        for got, want in zip(part.keypoints(i), feats.keypoints(row(feats, name))):
            np.testing.assert_array_equal(got, want)
    mask = feats.image == "t2"
    assert list(feats.take(mask).image) == ["t2"]
    some = ["t0", "t1", "t2", "flat"]
    cfg = MatcherConfig(workers=2)
    parallel = extract_features(some, [crop_paths[n] for n in some], cfg, progress=False)
    serial = feats.take([row(feats, n) for n in some])
    for a, b in ((parallel, serial), (parallel.mirrored, serial.mirrored)):
        for name in ("offsets", "xy", "desc", "size"):
            np.testing.assert_array_equal(getattr(a, name), getattr(b, name))


def test_save_load_round_trip(feats, tmp_path):
    path = tmp_path / "fullbody" / "train.npz"
    save_features(path, feats)
    back = load_features(path)
    for a, b in ((feats, back), (feats.mirrored, back.mirrored)):
        for name in ("image", "offsets", "xy", "desc", "size"):
            np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
            assert getattr(a, name).dtype == getattr(b, name).dtype
    with np.load(path, allow_pickle=False) as raw:
        assert {"image", "offsets", "xy", "desc", "size", "mirrored_desc"} <= set(raw.files)
    plain = Features(feats.image, feats.offsets, feats.xy, feats.desc, feats.size)
    save_features(tmp_path / "plain.npz", plain)
    assert load_features(tmp_path / "plain.npz").mirrored is None
    assert [p.name for p in path.parent.iterdir()] == ["train.npz"]  # no temporary left behind


def test_corrupt_or_missing_file_is_named(feats, tmp_path):
    path = tmp_path / "feats.npz"
    save_features(path, feats)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(InputError, match="feats.npz"):
        load_features(path)
    (tmp_path / "junk.npz").write_text("junk")
    with pytest.raises(InputError, match="junk.npz"):
        load_features(tmp_path / "junk.npz")
    with pytest.raises(InputError, match="nothing.npz"):
        load_features(tmp_path / "nothing.npz")
    arrays = {"format_version": np.array(1), "image": feats.image, "offsets": feats.offsets[:-1]}
    arrays.update(xy=feats.xy, desc=feats.desc, size=feats.size)
    np.savez(tmp_path / "inconsistent.npz", **arrays)
    with pytest.raises(InputError, match="inconsistent.npz"):
        load_features(tmp_path / "inconsistent.npz")


@pytest.mark.parametrize(("name", "nbytes"), [("orb", 32), ("akaze", 61)])
def test_binary_extractors(name, nbytes, crop_paths):
    assert name in EXTRACTORS
    if name == "akaze" and not akaze_available():
        pytest.skip(f"OpenCV {cv2.__version__} has no AKAZE (moved to contrib in 5.0)")
    some = ["t0", "flat"]
    out = extract_features(some, [crop_paths[n] for n in some], MatcherConfig(extractor=name), progress=False)
    assert out.desc.dtype == np.uint8 and out.desc.shape[1] == nbytes and out.binary
    assert 50 <= out.counts()[0] <= 400 and out.counts()[1] == 0


def test_concat_and_renamed_keep_every_photos_keypoints(tmp_path):
    import numpy as np

    from whale_matcher import Features

    rng = np.random.default_rng(0)

    def part(names, counts):
        xys = [rng.random((c, 2), dtype=np.float32) for c in counts]
        descs = [rng.random((c, 4), dtype=np.float32) for c in counts]
        plain = Features.from_photos(names, xys, descs, np.ones((len(names), 2)), empty_desc=np.zeros((0, 4), "f4"))
        return Features(plain.image, plain.offsets, plain.xy, plain.desc, plain.size, mirrored=plain)

    a, b = part(["a", "b"], [3, 0]), part(["c"], [5])
    joined = Features.concat([a, b.renamed(["z"])])
    assert joined.image.tolist() == ["a", "b", "z"] and joined.mirrored.image.tolist() == ["a", "b", "z"]
    for i, (source, j) in enumerate([(a, 0), (a, 1), (b, 0)]):
        for got, want in zip(joined.keypoints(i), source.keypoints(j)):
            np.testing.assert_array_equal(got, want)


def test_compact_files_halve_descriptors_and_give_the_same_evidence(feats, tmp_path):
    from whale_matcher import MatcherConfig, verify_pairs

    save_features(tmp_path / "full.npz", feats)
    save_features(tmp_path / "compact.npz", feats, compact=True)
    back = load_features(tmp_path / "compact.npz")
    with np.load(tmp_path / "compact.npz") as raw:
        assert raw["desc"].dtype == np.float16 and raw["mirrored_desc"].dtype == np.float16
    for a, b in ((feats, back), (feats.mirrored, back.mirrored)):
        assert b.desc.dtype == np.float32
        np.testing.assert_allclose(b.desc, a.desc, rtol=2**-11, atol=2**-25)  # float16 rounding, nothing more
        np.testing.assert_array_equal(b.xy, a.xy)
    saved = (tmp_path / "full.npz").stat().st_size - (tmp_path / "compact.npz").stat().st_size
    assert saved >= (feats.desc.nbytes + feats.mirrored.desc.nbytes) / 2 * 0.99
    # every pair of the crops (warped copies, mirrored copy, unrelated textures): the same inliers (the evidence the
    # answers rest on); a ratio-test match at the 0.8 boundary may flip, only in pairs of unrelated textures
    pairs = np.array([(i, j) for i in range(len(feats)) for j in range(len(feats)) if i != j])
    want = verify_pairs(feats, feats, pairs, MatcherConfig(), progress=False)
    got = verify_pairs(back, back, pairs, MatcherConfig(), progress=False)
    np.testing.assert_array_equal(got.inliers, want.inliers)
    moved = np.flatnonzero(got.matches != want.matches)
    assert np.abs(got.matches - want.matches).max() <= 1 and len(moved) <= 0.03 * len(pairs)
    assert (want.inliers[moved] < MatcherConfig().min_matches).all()
