"""The teacher-feature cache: values equal a fresh teacher forward, keys rebuild, builds resume, corruption is named."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch
from monai.bundle import ConfigParser
from PIL import Image

from monai_rd.data import FeatureCache, FeatureCacheError, index_busi, make_busi_like, transform_fingerprint
from monai_rd.data.feature_cache import apply_view, item_id, view_seed
from monai_rd.networks import build_teacher
from tests.helpers import REPO
from tests.helpers.weights import random_resnet18_weights

TRAIN_JSON = os.path.join(REPO, "bundles", "rd_busi", "configs",
                          "train.json")  # fmt: skip
TEACHER = "torchvision:resnet18"


def bundle_transform(split: str = "train", image_size: int = 32, **edits):
    """The rd_busi bundle's own transform for ``split`` (instantiated from its config), optionally edited."""
    parser = ConfigParser()
    parser.read_config(TRAIN_JSON)
    parser.update({"image_size": image_size, **edits})
    return parser.get_parsed_content(f"{split}::preprocessing")


def save_teacher_weights(path, seed: int) -> str:
    return random_resnet18_weights(path, seed=seed)


class CountingTeacher(torch.nn.Module):
    """Wraps a teacher, counts the images it sees, and raises after ``fail_after`` batches (a killed build)."""

    def __init__(self, teacher, fail_after: int | None = None):
        super().__init__()
        self.teacher, self.fail_after, self.batches, self.images = teacher, fail_after, 0, 0

    def forward(self, x):
        if self.fail_after is not None and self.batches >= self.fail_after:
            raise KeyboardInterrupt("simulated kill")
        self.batches += 1
        self.images += len(x)
        return self.teacher(x)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cache")
    root = make_busi_like(tmp / "data", n_per_class=4, size=32, seed=1, duplicates=False)
    datalist = index_busi(root, val_fraction=0.25, seed=0, split_protocol="paper_4to1")  # 9 training items
    weights = save_teacher_weights(tmp / "teacher.pt", seed=0)
    teacher = build_teacher(TEACHER, weights=weights)
    return {"tmp": tmp, "root": root, "train": datalist["training"], "weights": weights, "teacher": teacher}


def make_cache(setup, cache_dir, transform=None, weights=None, data=None):
    return FeatureCache(cache_dir, data or setup["train"], transform or bundle_transform(), TEACHER,
                        weights or setup["weights"])  # fmt: skip


def reference_features(teacher, data, transform, views):
    """T(view_k(x_i)) computed one image at a time, independently of the cache code paths."""
    out = np.zeros((len(data), views, teacher.feature_dim), dtype=np.float64)
    for i, item in enumerate(data):
        for k in range(views):
            image = apply_view(transform, item, view_seed(item_id(item), k))["image"]
            out[i, k] = teacher(image.as_subclass(torch.Tensor)[None].float())[0].double().numpy()
    return out


def cached_array(cache):
    return np.stack([[cache.features(i, k) for k in range(cache.views)] for i in range(len(cache.data))])


def test_features_equal_fresh_teacher_forward(setup, tmp_path):
    transform = bundle_transform()
    cache = make_cache(setup, tmp_path / "c", transform).build(setup["teacher"], views=3, batch_size=5, chunk_size=4,
                                                               progress=False)  # fmt: skip
    assert cache.views == 3 and cache.feature_shape == (512,) and cache.dtype == "float32"
    got = cached_array(cache)
    ref = reference_features(setup["teacher"], setup["train"], bundle_transform(), 3)
    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-5)
    # the views really differ (random flips/affines/contrast): not all K features of an item are equal
    assert np.abs(got[:, 0] - got[:, 1]).max() > 1e-3
    # the on-disk chunks are plain .npy files, memory-mapped
    manifest = json.load(open(tmp_path / "c" / "manifest.json"))
    assert manifest["complete"] and len(manifest["chunks"]) == 3  # 9 training items in chunks of 4
    mm = np.load(tmp_path / "c" / manifest["chunks"][0]["file"], mmap_mode="r")
    assert isinstance(mm, np.memmap) and mm.shape == (4, 3, 512)


def test_deterministic_transform_caches_one_view(setup, tmp_path):
    cache = make_cache(setup, tmp_path / "v", bundle_transform("validate")).build(setup["teacher"], views=4,
                                                                                  progress=False)  # fmt: skip
    assert cache.views == 1


def test_float16_storage(setup, tmp_path):
    c32 = make_cache(setup, tmp_path / "f32").build(setup["teacher"], views=2, progress=False)
    c16 = make_cache(setup, tmp_path / "f16").build(setup["teacher"], views=2, dtype="float16", progress=False)
    assert c16.dtype == "float16" and c16.features(0, 0).dtype == np.float16
    a32, a16 = cached_array(c32), cached_array(c16)
    np.testing.assert_allclose(a16.astype(np.float64), a32, rtol=2e-3, atol=1e-4)  # float16 rounding only
    size = lambda d: sum(os.path.getsize(os.path.join(d, f)) for f in os.listdir(d) if f.endswith(".npy"))  # noqa
    assert size(tmp_path / "f16") < 0.6 * size(tmp_path / "f32")
    with pytest.raises(ValueError, match="dtype"):
        make_cache(setup, tmp_path / "bad").build(setup["teacher"], dtype="int8", progress=False)


def test_interrupted_build_resumes_to_the_one_shot_result(setup, tmp_path):
    one_shot = make_cache(setup, tmp_path / "one").build(setup["teacher"], views=2, batch_size=4, chunk_size=2,
                                                         progress=False)  # fmt: skip
    # 9 items x 2 views, chunks of 2 items = 4 images = 1 batch each: the kill comes after 2 chunks
    killed = CountingTeacher(setup["teacher"], fail_after=2)
    cache = make_cache(setup, tmp_path / "two")
    with pytest.raises(KeyboardInterrupt):
        cache.build(killed, views=2, batch_size=4, chunk_size=2, progress=False)
    with pytest.raises(FeatureCacheError, match="incomplete"):
        make_cache(setup, tmp_path / "two").open()
    assert not [f for f in os.listdir(tmp_path / "two") if f.endswith(".tmp")]  # no half-written file left
    resumed = CountingTeacher(setup["teacher"])
    cache = make_cache(setup, tmp_path / "two").build(resumed, views=2, batch_size=4, chunk_size=2, progress=False)
    assert resumed.images == (9 - 4) * 2  # only the 5 items not yet cached, 2 views each
    np.testing.assert_array_equal(cached_array(cache), cached_array(one_shot))
    # a complete cache: building again computes nothing and never builds the teacher
    make_cache(setup, tmp_path / "two").build(lambda: pytest.fail("teacher built"), views=2, chunk_size=2,
                                              progress=False)  # fmt: skip


def test_changed_keys_rebuild(setup, tmp_path):
    data_dir = tmp_path / "data"
    root = make_busi_like(data_dir, n_per_class=2, size=32, seed=3, duplicates=False)
    data = index_busi(root, val_fraction=0.5, seed=0, split_protocol="paper_4to1")["training"]  # 3 items
    cdir = tmp_path / "c"
    base = FeatureCache(cdir, data, bundle_transform(), TEACHER, setup["weights"]).build(
        setup["teacher"], views=2, chunk_size=1, progress=False
    )
    before = cached_array(base)

    # other teacher weights: opening names the teacher, building recomputes everything
    weights2 = save_teacher_weights(tmp_path / "other.pt", seed=1)
    with pytest.raises(FeatureCacheError, match="teacher"):
        FeatureCache(cdir, data, bundle_transform(), TEACHER, weights2).open()
    counting = CountingTeacher(build_teacher(TEACHER, weights=weights2))
    other = FeatureCache(cdir, data, bundle_transform(), TEACHER, weights2).build(counting, views=2, chunk_size=1,
                                                                                  progress=False)  # fmt: skip
    assert counting.images == len(data) * 2 and not np.allclose(cached_array(other), before)

    # another transform (the X-ray preset instead of the ultrasound one): named, rebuilt
    edited = bundle_transform(modality="xray")
    with pytest.raises(FeatureCacheError, match="transform"):
        FeatureCache(cdir, data, edited, TEACHER, weights2).open()

    # one image rewritten: only its chunk is recomputed
    FeatureCache(cdir, data, bundle_transform(), TEACHER, setup["weights"]).build(
        setup["teacher"], views=2, chunk_size=1, progress=False
    )
    path = data[0]["image"]
    Image.fromarray(np.full((32, 32), 7, np.uint8)).save(path)
    with pytest.raises(FeatureCacheError, match="other images"):
        FeatureCache(cdir, data, bundle_transform(), TEACHER, setup["weights"]).open()
    counting = CountingTeacher(setup["teacher"])
    FeatureCache(cdir, data, bundle_transform(), TEACHER, setup["weights"]).build(counting, views=2, chunk_size=1,
                                                                                 progress=False)  # fmt: skip
    assert counting.images == 2


def test_corruption_is_detected_and_named(setup, tmp_path):
    cdir = tmp_path / "c"
    make_cache(setup, cdir).build(setup["teacher"], views=2, chunk_size=4, progress=False)
    manifest = json.load(open(cdir / "manifest.json"))
    chunk = str(cdir / manifest["chunks"][1]["file"])

    # flipped bytes in the data: the checksum names the chunk
    raw = bytearray(open(chunk, "rb").read())
    raw[-7] ^= 0xFF
    open(chunk, "wb").write(bytes(raw))
    with pytest.raises(FeatureCacheError, match=f"{os.path.basename(chunk)}.*corrupt"):
        make_cache(setup, cdir).open()
    make_cache(setup, cdir).open(verify=False)  # shape/dtype alone cannot see it ...
    # ... but a rebuild does, and repairs only that chunk
    counting = CountingTeacher(setup["teacher"])
    make_cache(setup, cdir).build(counting, views=2, chunk_size=4, progress=False)
    assert counting.images == 4 * 2
    make_cache(setup, cdir).open()

    # truncated file: named
    open(chunk, "r+b").truncate(100)
    with pytest.raises(FeatureCacheError, match=os.path.basename(chunk)):
        make_cache(setup, cdir).open(verify=False)
    # missing file: named
    os.remove(chunk)
    with pytest.raises(FeatureCacheError, match=f"{os.path.basename(chunk)} is missing"):
        make_cache(setup, cdir).open()
    # broken manifest: named
    (cdir / "manifest.json").write_text("{not json")
    with pytest.raises(FeatureCacheError, match="manifest.json is corrupt"):
        make_cache(setup, cdir).open()
    # a tampered manifest (key parts edited by hand) is corrupt too
    make_cache(setup, cdir).build(setup["teacher"], views=2, chunk_size=4, progress=False)
    m = json.load(open(cdir / "manifest.json"))
    m["key_parts"]["views"] = 3
    (cdir / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(FeatureCacheError, match="corrupt"):
        make_cache(setup, cdir).open()
    # no cache at all: says how to build one
    with pytest.raises(FeatureCacheError, match="monai-rd cache-features"):
        make_cache(setup, tmp_path / "none").open()


def test_transform_fingerprint_is_stable_and_sensitive(setup):
    t = bundle_transform()
    before = transform_fingerprint(t)
    for k in range(3):
        apply_view(t, setup["train"][0], seed=k)
    assert transform_fingerprint(t) == before  # randomisation state is not configuration
    assert transform_fingerprint(bundle_transform()) == before  # same config, new objects
    assert transform_fingerprint(bundle_transform(image_size=48)) != before
    assert transform_fingerprint(bundle_transform(modality="dermoscopy")) != before


def test_view_seeds_reproduce_views(setup):
    t1, t2 = bundle_transform(), bundle_transform()
    item = setup["train"][0]
    a = apply_view(t1, item, view_seed(item_id(item), 1))["image"]
    apply_view(t1, item, view_seed(item_id(item), 2))  # interleaved use does not matter
    b = apply_view(t2, item, view_seed(item_id(item), 1))["image"]
    torch.testing.assert_close(a.as_subclass(torch.Tensor), b.as_subclass(torch.Tensor), rtol=0, atol=0)
    seeds = {view_seed(item_id(it), k) for it in setup["train"] for k in range(4)}
    assert len(seeds) == 4 * len(setup["train"])


def test_build_with_workers_is_byte_identical(setup, tmp_path):
    """Reader workers (and a teacher batch that straddles chunks) change nothing: the same bytes on disk."""
    caches = {}
    for workers in (0, 2):
        cache = make_cache(setup, tmp_path / f"w{workers}").build(
            setup["teacher"], views=2, batch_size=5, chunk_size=2, num_workers=workers, progress=False
        )
        caches[workers] = cache
    files = sorted(f for f in os.listdir(tmp_path / "w0") if f.endswith(".npy"))
    assert files and files == sorted(f for f in os.listdir(tmp_path / "w2") if f.endswith(".npy"))
    for f in files:
        assert (tmp_path / "w0" / f).read_bytes() == (tmp_path / "w2" / f).read_bytes(), f
    assert [c["sha256"] for c in caches[0].manifest["chunks"]] == [c["sha256"] for c in caches[2].manifest["chunks"]]


def test_build_reads_each_item_once_and_gives_the_views_of_the_whole_transform(setup):
    """The build runs the deterministic head once per item for its K views: each view image is bit for bit
    ``apply_view`` of the whole transform (what training serves)."""
    from monai_rd.data.feature_cache import _ViewImages

    pairs = [(i, k) for i in range(len(setup["train"])) for k in range(3)]
    images = _ViewImages(setup["train"], bundle_transform(), pairs, "image")
    assert images.path == [1, 4]
    reference = bundle_transform()
    for j, (i, k) in enumerate(pairs):
        index, view, image = images[j]
        expected = apply_view(reference, setup["train"][i], view_seed(item_id(setup["train"][i]), k))["image"]
        assert (index, view) == (i, k) and torch.equal(image, expected.as_subclass(torch.Tensor))


def test_prefetching_reader_thread_keeps_order_and_raises_errors():
    from monai_rd.data.feature_cache import _prefetched

    assert list(_prefetched(iter(range(50)), depth=2)) == list(range(50))

    def failing():
        yield 1
        raise OSError("unreadable image")

    with pytest.raises(OSError, match="unreadable"):
        list(_prefetched(failing()))
    gen = _prefetched(iter(range(1000)), depth=1)
    assert next(gen) == 0
    gen.close()  # leaving early stops the thread
