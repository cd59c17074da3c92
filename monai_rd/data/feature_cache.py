"""The teacher-feature cache: ``T(view_k(x))`` computed once, stored on disk, memory-mapped for training.

The teacher ``T`` is frozen, so its features are a pure function of its input. For every item of a datalist
and each of ``K`` augmented views (view ``k`` of an item is reproduced by seeding the random transforms with
:func:`view_seed` of the item and ``k``), the cache stores ``T(view_k(x))`` in ``.npy`` chunk files that
training reads memory-mapped. Layout of a cache folder (one per split)::

    <cache_dir>/manifest.json      key parts, shapes, dtype, per-chunk item hashes and file checksums
    <cache_dir>/chunk_00000.npy    [items_in_chunk, K, *feature_shape] for items start..stop-1
    ...

The cache key is made of hashes of the teacher (registry name, options, SHA-256 of the weights file),
of the transform (a stable fingerprint of the transform objects) and, per chunk, of its items (path,
size and modification time of each image). A build reuses every chunk whose key still matches and
rebuilds the rest (so a changed key rebuilds and an interrupted build resumes); each chunk and the
manifest are written atomically (temporary file + rename). Opening a cache checks the key, the
shapes, the dtype and the checksums, and a mismatch or corruption raises :class:`FeatureCacheError`
naming the file, so a wrong cache is never used.
"""

from __future__ import annotations

import enum
import hashlib
import json
import logging
import os
import queue
import threading
from copy import deepcopy
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn as nn
from monai.transforms import Compose, Randomizable, apply_transform
from monai.utils import MAX_SEED

from monai_rd.data.loading import default_num_workers
from monai_rd.data.transform_split import apply_rest, deterministic_head, deterministic_path
from monai_rd.utils import atomic_path, atomic_write_json, sha256_file, sha256_json

__all__ = [
    "FEATURE_CACHE_FORMAT",
    "FeatureCacheError",
    "FeatureCache",
    "transform_fingerprint",
    "teacher_fingerprint",
    "item_fingerprint",
    "view_seed",
    "is_random_transform",
    "apply_view",
]

FEATURE_CACHE_FORMAT = "monai_rd.feature_cache/1"
MANIFEST = "manifest.json"
DTYPES = ("float32", "float16")
logger = logging.getLogger(__name__)

# attributes that hold the outcome of the last randomisation, not configuration (excluded from fingerprints)
_RANDOMISED_STATE = {
    "rotate_params", "shear_params", "translate_params", "scale_params", "affine", "gamma_value", "factor",
    "x", "y", "z", "x1", "y1", "z1", "x2", "y2", "z2", "a", "noise", "sampled_alpha", "sampled_k_intensity",
    "sampled_locs", "hole_coords", "reference_control_points", "floating_control_points",
}  # fmt: skip


class FeatureCacheError(RuntimeError):
    """A feature cache that is missing, incomplete, corrupt or built for other inputs (never used)."""


def _fingerprint(obj: Any, depth: int, seen: set[int], randomizable_parent: bool = False) -> Any:
    if obj is None or isinstance(obj, (bool, int, str)):
        return obj
    if isinstance(obj, float):
        return repr(obj)
    if isinstance(obj, enum.Enum):
        return f"{type(obj).__name__}.{obj.name}"
    if isinstance(obj, (np.random.RandomState, np.random.Generator, torch.Generator)):
        return "<rng>"
    if isinstance(obj, type) or callable(obj) and not hasattr(obj, "__dict__"):
        return getattr(obj, "__module__", "") + "." + getattr(obj, "__qualname__", repr(obj))
    if isinstance(obj, (np.ndarray, torch.Tensor)):
        arr = obj.detach().cpu().numpy() if isinstance(obj, torch.Tensor) else obj
        arr = np.ascontiguousarray(arr)
        return {"shape": list(arr.shape), "dtype": str(arr.dtype), "sha256": hashlib.sha256(arr.tobytes()).hexdigest()}
    if isinstance(obj, np.dtype) or isinstance(obj, torch.dtype):
        return str(obj)
    if isinstance(obj, np.generic):
        return _fingerprint(obj.item(), depth, seen)
    if depth > 12:
        return f"<{type(obj).__qualname__}>"
    if isinstance(obj, Mapping):
        return {str(k): _fingerprint(v, depth + 1, seen) for k, v in sorted(obj.items(), key=lambda kv: str(kv[0]))}
    if isinstance(obj, (list, tuple)):
        return [_fingerprint(v, depth + 1, seen) for v in obj]
    if id(obj) in seen:
        return "<cycle>"
    seen = seen | {id(obj)}
    cls = type(obj)
    out: dict[str, Any] = {"class": f"{cls.__module__}.{cls.__qualname__}"}
    if callable(obj) and not hasattr(obj, "__dict__"):
        return out["class"]
    random_obj = isinstance(obj, Randomizable)
    for name, value in sorted(vars(obj).items()) if hasattr(obj, "__dict__") else []:
        if name.startswith("_") or (random_obj and name in _RANDOMISED_STATE):
            continue
        out[name] = _fingerprint(value, depth + 1, seen)
    return out


def transform_fingerprint(transform: Callable | None) -> dict:
    """A stable, JSON-able description of a transform (class names and configuration attributes).

    Private attributes, random states and, on MONAI ``Randomizable`` objects, the attributes that hold
    the outcome of the last randomisation (``rotate_params``, ``gamma_value``, ``x``/``y``/``z`` ... see
    ``_RANDOMISED_STATE``) are left out, so the fingerprint of a transform is the same before and after it
    has been applied, and the same in every process that builds it from the same configuration.
    """
    if transform is None:
        return {"class": None}
    if isinstance(transform, Compose):
        return {"class": "Compose", "transforms": [transform_fingerprint(t) for t in transform.flatten().transforms]}
    return _fingerprint(transform, 0, set())


def is_random_transform(transform: Callable | None) -> bool:
    """Whether ``transform`` (or any transform in a Compose) is a MONAI ``Randomizable``."""
    if transform is None:
        return False
    if isinstance(transform, Compose):
        return any(isinstance(t, Randomizable) for t in transform.flatten().transforms)
    return isinstance(transform, Randomizable)


def view_seed(item_id: str, view: int) -> int:
    """The seed of view ``view`` of the item identified by ``item_id`` (stable across runs and processes)."""
    digest = hashlib.sha256(f"{item_id}\x00{int(view)}".encode()).digest()
    return int.from_bytes(digest[:8], "little") % MAX_SEED


def item_id(item: Any, image_key: str = "image") -> str:
    """The identity of a datalist item used to seed its views: its image path (or a JSON dump of it)."""
    value = item.get(image_key) if isinstance(item, Mapping) else item
    if isinstance(value, (str, os.PathLike)):
        return os.fspath(value)
    return json.dumps(value, sort_keys=True, default=str)


def apply_view(transform: Callable | None, item: Any, seed: int) -> Any:
    """``transform(item)`` with every random transform seeded by ``seed`` (so the view can be reproduced).

    ``transform`` is re-seeded in place: use one copy per thread (DataLoader workers each hold their own).
    """
    if transform is None:
        return item
    if is_random_transform(transform):
        transform.set_random_state(seed=int(seed))  # type: ignore[union-attr]
    return apply_transform(transform, dict(item) if isinstance(item, Mapping) else item)


def item_fingerprint(item: Any, image_key: str = "image") -> list:
    """``[path, size, mtime_ns]`` of an item's image file (or a hash of a non-path image value)."""
    value = item.get(image_key) if isinstance(item, Mapping) else item
    paths = value if isinstance(value, (list, tuple)) else [value]
    out = []
    for path in paths:
        if isinstance(path, (str, os.PathLike)):
            try:
                st = os.stat(path)
            except OSError as e:
                raise FileNotFoundError(f"Datalist image {os.fspath(path)!r} is not readable: {e}") from e
            out.append([os.fspath(path), st.st_size, st.st_mtime_ns])
        else:
            out.append(sha256_json(path))
    return out


def teacher_fingerprint(
    name: str, weights: str | os.PathLike | None = None, options: Mapping | None = None, state_dict_sha256=None
) -> dict:
    """The teacher part of the cache key: registry name, builder options and the weights file's SHA-256.

    ``weights=None`` (a randomly initialised teacher, for tests and dry runs) is keyed as ``"random-init"``
    plus ``state_dict_sha256`` when the caller knows it.
    """
    if weights is not None and not os.path.isfile(weights):
        raise FileNotFoundError(f"Teacher weights file {os.fspath(weights)!r} does not exist.")
    return {
        "name": str(name),
        "options": json.loads(json.dumps(dict(options or {}), sort_keys=True, default=str)),
        "weights_sha256": sha256_file(weights) if weights is not None else "random-init",
        **({"state_dict_sha256": state_dict_sha256} if state_dict_sha256 else {}),
    }


def state_dict_sha256(module: nn.Module) -> str:
    """SHA-256 over a module's state_dict (names, shapes, dtypes and values), in key order."""
    h = hashlib.sha256()
    for key, value in module.state_dict().items():
        arr = np.ascontiguousarray(value.detach().cpu().float().numpy())
        h.update(key.encode())
        h.update(str(arr.shape).encode())
        h.update(arr.tobytes())
    return h.hexdigest()


def _atomic_save_npy(path: str, array: np.ndarray) -> str:
    """``np.save`` through a temporary file and a rename; returns the file's SHA-256."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.save(f, array, allow_pickle=False)
            f.flush()
            os.fsync(f.fileno())
        digest = sha256_file(tmp)
    return digest


class _ViewImages(torch.utils.data.Dataset):
    """``(position, view, image)`` for the (item, view) pairs of one chunk, each view seeded as in training.

    The deterministic head of the transform (reading, scaling, cropping, resizing: everything before the first
    random transform, at any depth of nested ``Compose``; :mod:`monai_rd.data.transform_split`) runs once per item
    and is reused by its ``K`` views (consecutive pairs); each view is bit for bit ``apply_view`` of the whole
    transform.
    """

    def __init__(self, data, transform, pairs, image_key):
        self.data, self.transform, self.pairs, self.image_key = data, transform, pairs, image_key
        self.path = deterministic_path(transform) if is_random_transform(transform) else []
        self.head = deterministic_head(transform, self.path) if self.path else None
        self._last: tuple[int, Any] | None = None  # (item index, its head): the views of an item are consecutive

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, j):
        index, view = self.pairs[j]
        item = self.data[index]
        seed = view_seed(item_id(item, self.image_key), view)
        if self.head is None or not isinstance(item, Mapping):
            out = apply_view(self.transform, item, seed)
        else:
            if self._last is None or self._last[0] != index:
                self._last = (index, self.head(dict(item)))
            self.transform.set_random_state(seed=int(seed))
            out = apply_rest(self.transform, deepcopy(self._last[1]), self.path)
        image = out[self.image_key] if isinstance(out, Mapping) else out
        if isinstance(image, torch.Tensor):
            return index, view, image.as_subclass(torch.Tensor)
        return index, view, torch.as_tensor(np.asarray(image))


def _prefetched(iterable, depth: int = 2):
    """Iterate ``iterable`` in a background thread, ``depth`` items ahead (the teacher's forward releases the GIL,
    so reading and augmenting the next batch overlap it); an error in the thread is raised here, and leaving the
    loop early stops the thread."""
    buffer: queue.Queue = queue.Queue(depth)
    stop = threading.Event()
    done = object()

    def fill() -> None:
        try:
            for value in iterable:
                while not stop.is_set():
                    try:
                        buffer.put((value, None), timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            buffer.put((done, None))
        except BaseException as e:  # handed to the consumer
            buffer.put((done, e))

    thread = threading.Thread(target=fill, name="feature_cache_reader", daemon=True)
    thread.start()
    try:
        while True:
            value, error = buffer.get()
            if value is done:
                if error is not None:
                    raise error
                return
            yield value
    finally:
        stop.set()
        while thread.is_alive():  # unblock a put waiting on a full buffer
            try:
                buffer.get_nowait()
            except queue.Empty:
                pass
            thread.join(timeout=0.05)


class FeatureCache:
    """Teacher features of ``K`` views of every item of ``data``, on disk, keyed, verified, memory-mapped.

    Args:
        cache_dir: folder of this cache (one per split, e.g. ``<feature_cache>/training``).
        data: the datalist items (dicts with an image path under ``image_key``), in dataset order.
        transform: the split's transform (its random transforms make the views); not applied here
            until :meth:`build`.
        teacher: the teacher's registry name (key part; the teacher itself is passed to :meth:`build`).
        teacher_weights: the teacher's local weights file (its SHA-256 is a key part), ``None`` = random init.
        teacher_options: the teacher builder's other options (key part).
        image_key: key of the image in the items.

    Use :meth:`build` to fill it (resuming or rebuilding what is needed) and :meth:`open` to check it
    and read it: :meth:`features` returns ``[*feature_shape]`` arrays of view ``k`` of item ``i``.
    """

    def __init__(
        self,
        cache_dir: str | os.PathLike,
        data: Sequence,
        transform: Callable | None,
        teacher: str,
        teacher_weights: str | os.PathLike | None = None,
        teacher_options: Mapping | None = None,
        image_key: str = "image",
    ) -> None:
        self.cache_dir = os.path.abspath(os.fspath(cache_dir))
        self.data = data
        self.transform = transform
        self.image_key = image_key
        self.random = is_random_transform(transform)
        self.teacher_key = teacher_fingerprint(teacher, teacher_weights, teacher_options)
        self.transform_sha256 = sha256_json(transform_fingerprint(transform))
        self._item_fps: list | None = None
        self.manifest: dict | None = None
        self._mmaps: dict[int, np.ndarray] = {}

    # ---------------------------------------------------------------- keys
    @property
    def manifest_path(self) -> str:
        return os.path.join(self.cache_dir, MANIFEST)

    @property
    def item_fingerprints(self) -> list:
        if self._item_fps is None:
            self._item_fps = [item_fingerprint(item, self.image_key) for item in self.data]
        return self._item_fps

    def key_parts(self, views: int, dtype: str) -> dict:
        """Everything a cached feature depends on except the items (which are keyed per chunk)."""
        return {
            "format": FEATURE_CACHE_FORMAT,
            "teacher": self.teacher_key,
            "transform_sha256": self.transform_sha256,
            "image_key": self.image_key,
            "views": int(views),
            "dtype": dtype,
        }

    def _chunk_items_sha256(self, start: int, stop: int) -> str:
        return sha256_json(self.item_fingerprints[start:stop])

    @staticmethod
    def read_manifest(cache_dir: str | os.PathLike) -> dict:
        """The parsed ``manifest.json`` of a cache folder (``FeatureCacheError`` naming it if bad)."""
        path = os.path.join(os.fspath(cache_dir), MANIFEST)
        if not os.path.isfile(path):
            raise FeatureCacheError(
                f"No feature cache at {path}: build it with `monai-rd cache-features --config_file <train.json> "
                f"--feature_cache <dir>` (or set feature_cache to null to run the teacher in the loop)."
            )
        try:
            with open(path, encoding="utf-8") as f:
                manifest = json.load(f)
        except (OSError, json.JSONDecodeError) as e:
            raise FeatureCacheError(f"Feature cache manifest {path} is corrupt ({e}); delete it and rebuild.") from e
        if not isinstance(manifest, dict) or manifest.get("key_parts", {}).get("format") != FEATURE_CACHE_FORMAT:
            raise FeatureCacheError(f"{path} is not a {FEATURE_CACHE_FORMAT} manifest; delete it and rebuild.")
        return manifest

    # ---------------------------------------------------------------- build
    def _chunk_is_valid(
        self, entry: Mapping | None, start: int, stop: int, views: int, shape: tuple, dtype: str
    ) -> bool:
        if not entry or entry.get("start") != start or entry.get("stop") != stop:
            return False
        if entry.get("items_sha256") != self._chunk_items_sha256(start, stop):
            return False
        path = os.path.join(self.cache_dir, entry["file"])
        if entry.get("shape") != [stop - start, views, *shape] or entry.get("dtype") != dtype:
            return False
        if not os.path.isfile(path):
            return False
        return sha256_file(path) == entry.get("sha256")

    def build(
        self,
        teacher: nn.Module | Callable[[], nn.Module],
        views: int = 1,
        dtype: str = "float32",
        batch_size: int = 16,
        chunk_size: int = 64,
        num_workers: int | None = None,
        device: str | torch.device = "cpu",
        progress: bool = True,
    ) -> FeatureCache:
        """Compute and store the features that are missing or stale; return the opened cache.

        Args:
            teacher: the frozen teacher, or a zero-argument callable that builds it (called only if some
                chunk needs computing, so a complete cache never loads the teacher).
            views: ``K``; forced to 1 (with a warning) when the transform has no random transform.
            dtype: ``"float32"`` or ``"float16"`` storage.
            batch_size: images per teacher forward pass (independent of the training batch: as large as the
                teacher's device allows).
            chunk_size: items per chunk file (the unit of resumption).
            num_workers: DataLoader workers reading and augmenting images ahead of the teacher; ``None``:
                :func:`default_num_workers`. The features do not depend on it (byte-identical chunks).
            device: where the teacher runs.
            progress: show a tqdm progress bar over images.
        """
        if dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {DTYPES}, got {dtype!r}.")
        if views < 1:
            raise ValueError(f"views must be >= 1, got {views}.")
        if views > 1 and not self.random:
            logger.warning("The transform has no random transform: every view is the same, caching K=1 view.")
            views = 1
        if chunk_size < 1:
            raise ValueError(f"chunk_size must be >= 1, got {chunk_size}.")
        os.makedirs(self.cache_dir, exist_ok=True)
        key_parts = self.key_parts(views, dtype)
        key = sha256_json(key_parts)
        n = len(self.data)
        if n == 0:
            raise ValueError(f"No items to cache for {self.cache_dir}: the datalist is empty.")
        bounds = [(s, min(s + chunk_size, n)) for s in range(0, n, chunk_size)]

        old = None
        if os.path.isfile(self.manifest_path):
            try:
                old = self.read_manifest(self.cache_dir)
            except FeatureCacheError as e:
                logger.warning("%s Rebuilding.", e)
        entries: list = [None] * len(bounds)
        shape: tuple | None = None
        if old is not None and old.get("key") == key and old.get("chunk_size") == chunk_size:
            shape = tuple(old["feature_shape"]) if old.get("feature_shape") is not None else None
            by_start = {e["start"]: e for e in old.get("chunks", []) if e}
            for c, (s, t) in enumerate(bounds):
                if shape is not None and self._chunk_is_valid(by_start.get(s), s, t, views, shape, dtype):
                    entries[c] = by_start[s]
        elif old is not None:
            logger.info("Feature cache %s was built for other inputs: rebuilding it.", self.cache_dir)

        todo = [c for c, e in enumerate(entries) if e is None]
        manifest = {
            "key": key,
            "key_parts": key_parts,
            "num_items": n,
            "views": views,
            "dtype": dtype,
            "feature_shape": list(shape) if shape is not None else None,
            "chunk_size": chunk_size,
            "chunks": entries,
            "complete": False,
        }
        if todo:
            atomic_write_json(self.manifest_path, manifest)
            module = teacher if isinstance(teacher, nn.Module) else teacher()
            module = module.to(device).eval()
            bar = None
            if progress:
                from tqdm.auto import tqdm

                bar = tqdm(total=sum(bounds[c][1] - bounds[c][0] for c in todo) * views, desc="teacher features",
                           unit="img")  # fmt: skip
            try:
                shape = self._compute_chunks(module, [bounds[c] for c in todo], todo, entries, manifest, views, dtype,
                                             batch_size, num_workers, device, shape, bar)  # fmt: skip
            finally:
                if bar is not None:
                    bar.close()
        keep = {e["file"] for e in entries if e}
        for fname in os.listdir(self.cache_dir):  # chunks of a previous, longer or different build
            if fname.startswith("chunk_") and fname.endswith(".npy") and fname not in keep:
                os.remove(os.path.join(self.cache_dir, fname))
        manifest["complete"] = True
        atomic_write_json(self.manifest_path, manifest)
        return self.open(verify=False)

    def _compute_chunks(
        self,
        module,
        chunk_bounds,
        chunk_ids,
        entries,
        manifest,
        views,
        dtype,
        batch_size,
        num_workers,
        device,
        shape,
        bar,
    ):
        """Run the teacher over every (item, view) of the chunks to compute, in order, with one loader.

        Workers read and augment ahead of the teacher across chunk boundaries; the features stay on the
        teacher's device until a chunk is complete (one transfer per chunk, no per-item synchronisation) and
        each complete chunk is written (file, SHA-256, fsync) by a writer thread while the teacher runs on.
        The manifest lists a chunk only once its file is on disk, so an interruption resumes correctly.
        """
        from concurrent.futures import ThreadPoolExecutor

        pairs = [(i, k) for start, stop in chunk_bounds for i in range(start, stop) for k in range(views)]
        workers = default_num_workers() if num_workers is None else int(num_workers)
        on_cuda = torch.device(device).type == "cuda"
        loader = torch.utils.data.DataLoader(
            _ViewImages(self.data, self.transform, pairs, self.image_key),
            batch_size=batch_size, num_workers=workers, shuffle=False, pin_memory=on_cuda,
            prefetch_factor=4 if workers > 0 else None,
        )  # fmt: skip
        batches = loader if workers > 0 else _prefetched(loader)  # no workers: read the next batch in a thread
        writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="feature_cache_writer")
        pending: list = []  # (chunk id, start, stop, future of (array shape, sha256)) in chunk order

        def publish(block: bool, failed_ok: bool = False) -> None:
            while pending and (block or pending[0][3].done()):
                c, start, stop, future = pending.pop(0)
                if failed_ok and future.exception() is not None:
                    continue  # cleaning up after an error: list only the chunks that reached the disk
                array_shape, digest = future.result()
                entries[c] = {
                    "file": f"chunk_{c:05d}.npy", "start": start, "stop": stop,
                    "items_sha256": self._chunk_items_sha256(start, stop),
                    "shape": list(array_shape), "dtype": dtype, "sha256": digest,
                }  # fmt: skip
                atomic_write_json(self.manifest_path, manifest)

        def save(c: int, array: np.ndarray) -> tuple:
            return array.shape, _atomic_save_npy(os.path.join(self.cache_dir, f"chunk_{c:05d}.npy"), array)

        position = 0  # index into chunk_bounds of the chunk being filled
        parts: list[torch.Tensor] = []
        filled = 0
        try:
            with torch.no_grad():
                for _, _, images in batches:
                    feats = module(images.to(device, non_blocking=True).float())
                    if shape is None:
                        shape = tuple(feats.shape[1:])
                        manifest["feature_shape"] = list(shape)
                    elif tuple(feats.shape[1:]) != tuple(shape):
                        raise FeatureCacheError(
                            f"Teacher features have shape {tuple(feats.shape[1:])} but {self.manifest_path} "
                            f"records {tuple(shape)}; delete the cache folder and rebuild."
                        )
                    offset = 0
                    while offset < len(feats):  # a batch may straddle chunk boundaries
                        start, stop = chunk_bounds[position]
                        take = min(len(feats) - offset, (stop - start) * views - filled)
                        parts.append(feats[offset : offset + take])
                        offset, filled = offset + take, filled + take
                        if filled == (stop - start) * views:
                            array = torch.cat(parts).float().cpu().numpy().astype(dtype)
                            array = array.reshape(stop - start, views, *shape)
                            pending.append((chunk_ids[position], start, stop,
                                            writer.submit(save, chunk_ids[position], array)))  # fmt: skip
                            parts, filled, position = [], 0, position + 1
                    publish(block=False)
                    if bar is not None:
                        bar.update(len(feats))
            publish(block=True)
        finally:  # interrupted: the chunks already written stay listed, so the next build resumes after them
            writer.shutdown(wait=True)
            publish(block=True, failed_ok=True)
        return shape

    # ---------------------------------------------------------------- read
    def open(self, verify: bool = True) -> FeatureCache:
        """Check the cache against this dataset, transform and teacher; raise FeatureCacheError if it differs.

        Args:
            verify: also check every chunk file's SHA-256 (reads the cache once); shapes and dtypes are
                always checked.
        """
        manifest = self.read_manifest(self.cache_dir)
        path = self.manifest_path
        parts = manifest["key_parts"]
        expected = self.key_parts(parts.get("views", 1), parts.get("dtype", "float32"))
        diffs = [name for name in ("teacher", "transform_sha256", "image_key") if parts.get(name) != expected[name]]
        if diffs:
            details = "; ".join(f"{d}: cache has {parts.get(d)!r}, expected {expected[d]!r}" for d in diffs)
            raise FeatureCacheError(f"Feature cache {path} was built for other inputs ({details}). Rebuild it with "
                                    f"`monai-rd cache-features` (it rebuilds what changed).")  # fmt: skip
        if manifest.get("key") != sha256_json(parts):
            raise FeatureCacheError(f"Feature cache manifest {path} is corrupt (key does not match its parts).")
        if not manifest.get("complete"):
            raise FeatureCacheError(f"Feature cache {path} is incomplete (an interrupted build): run "
                                    f"`monai-rd cache-features` again to resume it.")  # fmt: skip
        if manifest.get("num_items") != len(self.data):
            raise FeatureCacheError(
                f"Feature cache {path} holds {manifest.get('num_items')} items but the datalist has {len(self.data)}: "
                f"rebuild it with `monai-rd cache-features`."
            )
        views, dtype, shape = int(manifest["views"]), manifest["dtype"], tuple(manifest["feature_shape"])
        covered = 0
        for entry in manifest["chunks"]:
            if not entry:
                raise FeatureCacheError(f"Feature cache {path} lists a missing chunk: rebuild it.")
            start, stop = entry["start"], entry["stop"]
            file = os.path.join(self.cache_dir, entry["file"])
            if start != covered:
                raise FeatureCacheError(f"Feature cache manifest {path} is corrupt (chunk {file} starts at {start}).")
            covered = stop
            if entry["items_sha256"] != self._chunk_items_sha256(start, stop):
                raise FeatureCacheError(
                    f"Feature cache chunk {file} was built for other images (datalist items {start}..{stop - 1} "
                    f"changed path, size or modification time): rebuild it with `monai-rd cache-features`."
                )
            if not os.path.isfile(file):
                raise FeatureCacheError(
                    f"Feature cache chunk {file} is missing: rebuild with `monai-rd cache-features`."
                )
            try:
                mm = np.load(file, mmap_mode="r", allow_pickle=False)
            except Exception as e:  # truncated header, not an npy file ...
                raise FeatureCacheError(f"Feature cache chunk {file} is corrupt ({e}): rebuild it.") from e
            if tuple(mm.shape) != (stop - start, views, *shape) or str(mm.dtype) != dtype:
                raise FeatureCacheError(
                    f"Feature cache chunk {file} has shape {tuple(mm.shape)} {mm.dtype}, expected "
                    f"{(stop - start, views, *shape)} {dtype}: it is corrupt, rebuild it."
                )
            del mm
            if verify and sha256_file(file) != entry["sha256"]:
                raise FeatureCacheError(f"Feature cache chunk {file} is corrupt (SHA-256 differs from {path}): "
                                        f"rebuild it with `monai-rd cache-features`.")  # fmt: skip
        if covered != len(self.data):
            raise FeatureCacheError(f"Feature cache manifest {path} is corrupt (chunks cover {covered} items).")
        self.manifest = manifest
        self._mmaps = {}
        return self

    @property
    def views(self) -> int:
        return int(self._opened()["views"])

    @property
    def dtype(self) -> str:
        return str(self._opened()["dtype"])

    @property
    def feature_shape(self) -> tuple[int, ...]:
        return tuple(self._opened()["feature_shape"])

    def _opened(self) -> dict:
        if self.manifest is None:
            raise RuntimeError("Call FeatureCache.open() (or build()) first.")
        return self.manifest

    def features(self, index: int, view: int) -> np.ndarray:
        """The cached ``T(view_k(x_i))``, ``[*feature_shape]`` in the stored dtype (a copy)."""
        manifest = self._opened()
        if not 0 <= view < manifest["views"]:
            raise IndexError(f"view {view} out of range: the cache holds {manifest['views']} views.")
        c = index // manifest["chunk_size"]
        mm = self._mmaps.get(c)
        if mm is None:  # opened lazily, so each DataLoader worker maps the files itself
            mm = self._mmaps[c] = np.load(os.path.join(self.cache_dir, manifest["chunks"][c]["file"]), mmap_mode="r")
        return np.array(mm[index - manifest["chunks"][c]["start"], view])

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_mmaps"] = {}  # memory maps are reopened in the receiving process, never pickled
        return state
