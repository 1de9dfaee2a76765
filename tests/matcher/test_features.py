import cv2
import numpy as np
import pytest

from tests.matcher.conftest import row
from whale_core import InputError
from whale_matcher import (
    EXTRACTORS,
    Coding,
    Features,
    MatcherConfig,
    akaze_available,
    extract_features,
    load_features,
    save_features,
    verify_pairs,
)
from whale_matcher.synthetic import HEIGHT, WIDTH


def test_rootsift_features_layout(feats, crop_paths):
    assert list(feats.image) == list(crop_paths)
    counts = feats.counts()
    assert counts[row(feats, "t0")] == 400 and counts.max() <= 400
    assert feats.coding == Coding("rootsift") and feats.mirrored is None and feats.can_flip
    assert feats.desc.dtype == np.uint8 and feats.desc.shape[1] == 128 and feats.offsets.dtype == np.int64
    vectors = feats.descriptors(slice(None))
    assert vectors.dtype == np.float32 and feats.dim == 128
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)  # RootSIFT is unit L2
    assert (vectors >= 0).all()
    assert (feats.size == [WIDTH, HEIGHT]).all() and feats.size.dtype == np.int32
    assert (feats.xy >= -0.5).all() and (feats.xy[:, 0] < WIDTH).all() and (feats.xy[:, 1] < HEIGHT).all()


def test_the_flipped_crops_sift_is_the_crops_own_permuted(feats):
    """Oracle: SIFT run on the flipped crop (m0 is t0 flipped). Every derived keypoint of t0 lies where one of m0
    lies (OpenCV places the flipped crop's points half a pixel off x = w − 1 − x), and at those points the
    permuted vectors are near m0's, the unpermuted ones far: the order is the flip, not any order."""
    flip_xy, flip_vec = feats.flipped_keypoints(row(feats, "t0"))
    xy, vec = feats.keypoints(row(feats, "t0"))
    want_xy, want_vec = feats.keypoints(row(feats, "m0"))
    np.testing.assert_array_equal(flip_xy[:, 0], WIDTH - 1 - xy[:, 0])
    gap = np.linalg.norm(flip_xy[:, None] - want_xy[None], axis=2)
    nearest = gap.argmin(axis=1)
    paired = gap.min(axis=1) < 1.0
    assert paired.mean() >= 0.9
    permuted = np.linalg.norm(flip_vec[paired] - want_vec[nearest[paired]], axis=1)
    unpermuted = np.linalg.norm(vec[paired] - want_vec[nearest[paired]], axis=1)
    assert np.median(permuted) < 0.15 < 0.5 < np.median(unpermuted)


def test_histogram_bytes_give_the_rootsift_of_opencvs_float_descriptors(feats, crops):
    """Oracle: OpenCV's float32 SIFT, the 400 strongest, L1-normalised and square-rooted (RootSIFT as extracted
    before the histograms were kept as bytes): the same points and bit for bit the same vectors."""
    keypoints, desc = cv2.SIFT_create(nfeatures=400).detectAndCompute(crops["t0"], None)
    keep = np.argsort(-np.array([k.response for k in keypoints], np.float32), kind="stable")[:400]
    l1 = np.maximum(desc[keep].sum(axis=1, keepdims=True, dtype=np.float64), 1e-12).astype(np.float32)
    xy, vectors = feats.keypoints(row(feats, "t0"))
    np.testing.assert_array_equal(xy, np.array([keypoints[i].pt for i in keep], np.float32))
    np.testing.assert_array_equal(vectors, np.sqrt(desc[keep] / l1))


def test_flat_crop_has_no_keypoints(feats):
    xy, desc = feats.keypoints(row(feats, "flat"))
    assert xy.shape == (0, 2) and desc.shape == (0, 128)
    assert feats.flipped_keypoints(row(feats, "flat"))[0].shape == (0, 2)


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
    assert list(part.image) == names and part.can_flip
    for i, name in enumerate(names):
        for got, want in zip(part.keypoints(i), feats.keypoints(row(feats, name))):
            np.testing.assert_array_equal(got, want)
    mask = feats.image == "t2"
    assert list(feats.take(mask).image) == ["t2"]
    some = ["t0", "t1", "t2", "flat"]
    cfg = MatcherConfig(workers=2)
    parallel = extract_features(some, [crop_paths[n] for n in some], cfg, progress=False)
    serial = feats.take([row(feats, n) for n in some])
    for name in ("offsets", "xy", "desc", "size"):
        np.testing.assert_array_equal(getattr(parallel, name), getattr(serial, name))


def test_save_load_round_trip(feats, tmp_path):
    path = tmp_path / "fullbody" / "train.npz"
    save_features(path, feats)
    back = load_features(path)
    assert back.coding == feats.coding and back.mirrored is None
    for name in ("image", "offsets", "xy", "desc", "size"):
        np.testing.assert_array_equal(getattr(feats, name), getattr(back, name))
        assert getattr(feats, name).dtype == getattr(back, name).dtype
    assert isinstance(back.xy, np.memmap) and isinstance(back.desc, np.memmap)  # read where used, not loaded
    with np.load(path, allow_pickle=False) as raw:
        assert {"image", "offsets", "xy", "desc", "size", "coding_kind"} <= set(raw.files)
        assert "mirrored_desc" not in raw.files  # SIFT's flipped crop is derived, not stored
    for got, want in zip(back.flipped_keypoints(1), feats.flipped_keypoints(1)):
        np.testing.assert_array_equal(got, want)
    assert [p.name for p in path.parent.iterdir()] == ["train.npz"]  # no temporary left behind


def _format_1(path, feats, dtype=np.float32):
    """A features file as format 1 wrote it: float32 vectors (float16 with its compact option), the flipped
    crops' features stored beside them, no coding."""
    arrays = {"format_version": np.array(1), "image": feats.image}
    for prefix, part in (("", feats), ("mirrored_", feats.flipped())):
        vectors = part.descriptors(slice(None)).astype(dtype)
        arrays.update({f"{prefix}offsets": part.offsets, f"{prefix}xy": part.xy, f"{prefix}desc": vectors,
                       f"{prefix}size": part.size})  # fmt: skip
    np.savez(path, **arrays)


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_format_1_files_are_read_as_their_vectors(feats, tmp_path, dtype):
    _format_1(tmp_path / "old.npz", feats, dtype)
    old = load_features(tmp_path / "old.npz")
    assert old.coding == Coding("float") and old.dim == 128 and old.desc.dtype == dtype
    np.testing.assert_array_equal(old.descriptors(slice(None)), feats.descriptors(slice(None)).astype(dtype))
    assert old.descriptors(slice(0, 3)).dtype == np.float32
    assert old.mirrored is not None  # the stored flipped part is what `flipped_keypoints` reads
    for i in range(len(feats)):
        got, want = old.flipped_keypoints(i), feats.flipped_keypoints(i)
        np.testing.assert_array_equal(got[0], want[0])
        np.testing.assert_array_equal(got[1], want[1].astype(dtype))


def test_format_1_queries_against_a_new_gallery_give_the_same_evidence(feats, tmp_path):
    _format_1(tmp_path / "old.npz", feats)
    pairs = np.array([(i, j) for i in range(len(feats)) for j in range(len(feats)) if i != j])
    want = verify_pairs(feats, feats, pairs, MatcherConfig(), progress=False)
    got = verify_pairs(load_features(tmp_path / "old.npz"), feats, pairs, MatcherConfig(), progress=False)
    np.testing.assert_array_equal(got.matches, want.matches)
    np.testing.assert_array_equal(got.inliers, want.inliers)


def test_a_newer_format_is_refused_with_the_rebuild_command(feats, tmp_path):
    arrays = {"format_version": np.array(3), "image": feats.image}
    np.savez(tmp_path / "future.npz", **arrays)
    with pytest.raises(InputError, match=r"future.npz: .*format version 3.*dvc repro local_features"):
        load_features(tmp_path / "future.npz")


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
    assert out.mirrored is not None and out.mirrored.counts()[0] >= 50  # no order to permute: the flip described


def test_concat_and_renamed_keep_every_photos_keypoints(tmp_path):
    rng = np.random.default_rng(0)

    def part(names, counts):
        xys = [rng.random((c, 2), dtype=np.float32) for c in counts]
        descs = [rng.random((c, 4), dtype=np.float32) for c in counts]
        plain = Features.from_photos(names, xys, descs, np.ones((len(names), 2)), empty_desc=np.zeros((0, 4), "f4"))
        return Features(plain.image, plain.offsets, plain.xy, plain.desc, plain.size, mirrored=plain)

    a, b = part(["a", "b"], [3, 0]), part(["c"], [5])
    save_features(tmp_path / "a.npz", a)
    mapped = load_features(tmp_path / "a.npz")
    joined = Features.concat([mapped, b.renamed(["z"])])
    assert joined.image.tolist() == ["a", "b", "z"] and joined.mirrored.image.tolist() == ["a", "b", "z"]
    for i, (source, j) in enumerate([(a, 0), (a, 1), (b, 0)]):
        for got, want in zip(joined.keypoints(i), source.keypoints(j)):
            np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(np.asarray(joined.desc), np.concatenate([a.desc, b.desc]))


def test_concat_of_differently_held_descriptors_joins_their_vectors(feats, tmp_path):
    _format_1(tmp_path / "old.npz", feats.take([0, 1]))  # a gallery written before codings
    old, new = load_features(tmp_path / "old.npz"), feats.take([2, 3])
    joined = Features.concat([old, new])
    assert joined.coding == Coding("float") and isinstance(joined.desc.parts[0], np.memmap)  # the old part unread
    for i, j in enumerate([0, 1, 2, 3]):
        for got, want in zip(joined.keypoints(i), feats.keypoints(j)):
            np.testing.assert_array_equal(got, want)
    with pytest.raises(ValueError, match="binary and float"):
        Features.concat([new, Features(new.image, new.offsets, new.xy, new.desc[:, :32], new.size)])


def test_fewer_descriptor_bits_shrink_the_descriptors_and_move_few_inliers(feats, crop_paths, tmp_path):
    """6-bit codes of √h: 96 bytes a descriptor instead of 128. Against the exact bytes, over every pair of the
    crops (warped and mirrored copies, unrelated textures): the true pairs keep their inliers within 2 %, the
    unrelated ones stay below the fewest a true pair has, and at most 1 pair in 10 moves at all."""
    cfg = MatcherConfig(descriptor_bits=6)
    small = extract_features(list(crop_paths), list(crop_paths.values()), cfg, progress=False)
    assert small.coding == Coding("rootsift", 6) and small.desc.shape[1] == 96
    np.testing.assert_array_equal(small.xy, feats.xy)
    save_features(tmp_path / "small.npz", small)
    back = load_features(tmp_path / "small.npz")
    assert back.coding == small.coding
    np.testing.assert_array_equal(back.descriptors(slice(None)), small.descriptors(slice(None)))
    pairs = np.array([(i, j) for i in range(len(feats)) for j in range(len(feats)) if i != j])
    want = verify_pairs(feats, feats, pairs, MatcherConfig(), progress=False)
    got = verify_pairs(back, back, pairs, cfg, progress=False)
    same = np.array([feats.image[i][1:] == feats.image[j][1:] for i, j in pairs])
    np.testing.assert_allclose(got.inliers[same], want.inliers[same], rtol=0.02)
    assert got.inliers[~same].max() < want.inliers[same].min()
    assert (got.inliers != want.inliers).mean() <= 0.1
