"""Where a network's weights come from: a local file, a Hugging Face hub file, ImageNet, or (spelled out) random.

A weights *spec* is one of:

- a local file path (``.pt``/``.pth``/``.bin``/``.safetensors``/``.h5`` ...);
- ``hf-hub:<org>/<repo>/<path/in/repo>[@<revision>]``: fetched through ``huggingface_hub.hf_hub_download`` (its
  cache, ``HF_HUB_OFFLINE``/``HF_HOME`` honoured); pin ``@<revision>`` (a commit) for reproducible runs;
- ``imagenet``: the architecture's own ImageNet weights, for ``torchvision:<arch>`` (and ``resnet50``,
  ``densenet121``) through torchvision's weight enums and torch hub cache (``TORCH_HOME``), and for
  ``timm:<arch>`` through timm's ``pretrained_cfg``;
- ``random``: random initialisation, only when spelled out (dry runs, tests); students also take ``none``.

:func:`resolve_weights` turns a spec into a :class:`WeightsRecord` (file path, source, SHA-256 of the file
actually loaded), the reproducibility record logged to MLflow. A teacher spec of ``None`` is refused by
:func:`check_teacher_weights` (bundles) and warned about by :func:`~monai_rd.networks.build_teacher` (Python):
distilling from a random teacher is never silent.
"""

from __future__ import annotations

import os
import warnings
from typing import NamedTuple
from urllib.parse import urlparse

from monai_rd.utils import sha256_file

__all__ = [
    "WeightsRecord",
    "WeightsSourceError",
    "MissingWeightsError",
    "RandomTeacherWarning",
    "RANDOM_WEIGHTS_WARNING",
    "resolve_weights",
    "check_teacher_weights",
    "parse_hf_hub",
    "imagenet_arch",
]

HF_PREFIX = "hf-hub:"
RANDOM = "random"
IMAGENET = "imagenet"
#: the line a run trained from a random teacher carries in its report and log
RANDOM_WEIGHTS_WARNING = (
    "WARNING: the teacher has RANDOM weights (teacher_weights=random): this run distils from noise; "
    "its numbers test the plumbing, not the method."
)


class WeightsRecord(NamedTuple):
    """What was loaded: ``spec`` as given, ``source`` (``file``/``hf-hub``/``imagenet``/``random``), the local
    ``path`` of the file (``None`` for random), its ``sha256`` (``"random-init"`` for random)."""

    spec: str
    source: str
    path: str | None
    sha256: str

    def as_dict(self) -> dict:
        return self._asdict()


class WeightsSourceError(ValueError):
    """A weights spec that names no usable source (unknown form, ``imagenet`` for a network without it)."""


class MissingWeightsError(FileNotFoundError):
    """The teacher's weights file is not there (or no teacher weights were given at all)."""


class RandomTeacherWarning(UserWarning):
    """A teacher was built with random weights."""


def parse_hf_hub(spec: str) -> tuple[str, str, str | None]:
    """``hf-hub:<org>/<repo>/<file>[@<revision>]`` -> ``(repo_id, filename, revision)``.

    The file may sit in a folder of the repository (``org/repo/sub/file.bin``); a revision is a branch, tag or
    (for reproducibility) a commit hash.
    """
    rest = spec[len(HF_PREFIX) :] if spec.startswith(HF_PREFIX) else spec
    rest, _, revision = rest.partition("@")
    parts = [p for p in rest.split("/") if p]
    if len(parts) < 3:
        raise WeightsSourceError(
            f"Hugging Face weights {spec!r} must read hf-hub:<org>/<repo>/<file>[@<revision>], e.g. "
            "hf-hub:microsoft/BiomedCLIP-PubMedBERT_256-vit_base_patch16_224/open_clip_pytorch_model.bin@<commit>."
        )
    return f"{parts[0]}/{parts[1]}", "/".join(parts[2:]), revision or None


def imagenet_arch(name: str) -> tuple[str, str] | None:
    """``(library, arch)`` of a network name that has ImageNet weights in its library, else ``None``.

    ``torchvision:<arch>`` and the registered short names (``resnet50``, ``resnet18`` ...) are torchvision;
    ``timm:<arch>`` is timm.
    """
    library, sep, arch = name.partition(":")
    if not sep:
        library, arch = "torchvision", name
    if library not in ("torchvision", "timm"):
        return None
    if library == "torchvision":
        import torchvision

        if arch not in torchvision.models.list_models(module=torchvision.models):
            return None
    return library, arch


def _hf_download(spec: str) -> str:
    from huggingface_hub import hf_hub_download

    repo_id, filename, revision = parse_hf_hub(spec)
    try:
        return hf_hub_download(repo_id, filename, revision=revision)
    except Exception as e:  # offline and not cached, no such repo/file/revision, network errors
        raise MissingWeightsError(
            f"Could not get {filename!r} from the Hugging Face repository {repo_id!r} (revision {revision or 'main'}) "
            f"for weights {spec!r}: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}. "
            "Check the name, or download it where the hub is reachable (the file is then cached; HF_HUB_OFFLINE=1 "
            "uses the cache only)."
        ) from e


def _torchvision_imagenet_file(arch: str) -> str:
    """Path of torchvision's ImageNet weights file for ``arch`` in the torch hub cache (downloaded when absent)."""
    import torch
    import torchvision

    weights = torchvision.models.get_model_weights(arch).DEFAULT
    path = os.path.join(torch.hub.get_dir(), "checkpoints", os.path.basename(urlparse(weights.url).path))
    if not os.path.isfile(path):
        try:
            weights.get_state_dict(progress=False, check_hash=True)  # torchvision's own download into the cache
        except Exception as e:
            raise MissingWeightsError(
                f"torchvision's ImageNet weights {weights} for {arch!r} are not in the torch hub cache ({path}) and "
                f"could not be downloaded ({type(e).__name__}: {e}). Download them where the internet is reachable "
                "(TORCH_HOME sets the cache folder) or pass a local weights file."
            ) from e
    return path


def _timm_imagenet_file(arch: str) -> str:
    """Path of the file timm's ``pretrained_cfg`` names for ``arch`` (Hugging Face hub cache, or torch hub)."""
    import timm

    if not timm.is_model(arch):
        raise WeightsSourceError(f"timm has no architecture {arch!r}.")
    cfg = timm.models.get_pretrained_cfg(arch)
    cfg = cfg.to_dict() if hasattr(cfg, "to_dict") else dict(cfg or {})
    hub_id = cfg.get("hf_hub_id")
    if hub_id:
        last = None
        for filename in (cfg.get("hf_hub_filename") or "model.safetensors", "pytorch_model.bin"):
            try:
                return _hf_download(f"{HF_PREFIX}{hub_id}/{filename}")
            except MissingWeightsError as e:
                last = e
        raise last  # type: ignore[misc]
    url = cfg.get("url")
    if not url:
        raise WeightsSourceError(f"timm's {arch!r} has no pretrained weights to fetch ('imagenet').")
    import torch

    path = os.path.join(torch.hub.get_dir(), "checkpoints", os.path.basename(urlparse(url).path))
    if not os.path.isfile(path):
        torch.hub.load_state_dict_from_url(url, progress=False, map_location="cpu", weights_only=True)
    return path


def resolve_weights(name: str, spec: str | os.PathLike | None, allow_none: bool = False) -> WeightsRecord:
    """Resolve the weights ``spec`` of the network registered as ``name`` to a local file and its SHA-256.

    Args:
        name: the network's registry name (``torchvision:resnet18``, ``pmc_clip_rn50`` ...), for ``imagenet``.
        spec: see the module docstring. ``None`` is refused unless ``allow_none`` (students: random init).
        allow_none: accept ``None``/``"none"`` as random initialisation (students); teachers must say ``random``.

    Raises:
        MissingWeightsError: a local file or hub file that is not there.
        WeightsSourceError: ``None`` for a teacher, ``imagenet`` for a network without ImageNet weights.
    """
    if spec is None or (allow_none and str(spec).lower() == "none"):
        if not allow_none:
            raise WeightsSourceError(
                f"No weights given for {name!r}: pass a file, hf-hub:<org>/<repo>/<file>[@rev], 'imagenet' "
                "(torchvision:/timm: networks) or, for a dry run, 'random'."
            )
        return WeightsRecord("none", RANDOM, None, "random-init")
    spec = os.fspath(spec)
    if spec == RANDOM:
        return WeightsRecord(spec, RANDOM, None, "random-init")
    if spec == IMAGENET:
        found = imagenet_arch(name)
        if found is None:
            raise WeightsSourceError(
                f"'imagenet' weights exist for torchvision:<arch> and timm:<arch> networks, not for {name!r}; "
                "pass its weights file (see docs/teachers.md)."
            )
        library, arch = found
        path = _torchvision_imagenet_file(arch) if library == "torchvision" else _timm_imagenet_file(arch)
        return WeightsRecord(spec, IMAGENET, path, sha256_file(path))
    if spec.startswith(HF_PREFIX):
        path = _hf_download(spec)
        return WeightsRecord(spec, "hf-hub", path, sha256_file(path))
    if not os.path.isfile(spec):
        raise MissingWeightsError(f"Weights file {spec!r} for {name!r} does not exist.")
    return WeightsRecord(spec, "file", os.path.abspath(spec), sha256_file(spec))


def check_teacher_weights(
    teacher: str, weights: str | os.PathLike | None, bundle_root: str | None = None, needed: bool = True
) -> WeightsRecord:
    """Stop a bundle run before anything else runs when its teacher weights are missing.

    Args:
        teacher: the bundle's ``teacher`` id.
        weights: its ``teacher_weights`` id (a spec, see the module docstring).
        bundle_root: the bundle folder, named in the error with its ``download_large_files`` command.
        needed: ``False`` when the method uses no teacher (then nothing is checked; source ``unused``).

    Returns:
        the :class:`WeightsRecord` (source, file, SHA-256) that the run logs to MLflow.

    Raises:
        MissingWeightsError: naming the missing file, the download command and ``--teacher_weights``.
    """
    if not needed:
        return WeightsRecord(str(weights), "unused", None, "unused")
    root = os.path.abspath(bundle_root) if bundle_root else "<bundle folder>"
    how = (
        f"Fetch this teacher with `monai-rd fetch-teacher {root} --teacher {teacher}` (all the paper's teachers: "
        f"`python -m monai.bundle download_large_files --bundle_path {root}`) "
        "(see docs/teachers.md), or pass --teacher_weights <file | hf-hub:org/repo/file@rev | imagenet | random> "
        "('random' only for dry runs)."
    )
    if weights is None or str(weights).strip() == "":
        raise MissingWeightsError(f"teacher_weights is not set for teacher {teacher!r}; nothing was run. {how}")
    try:
        record = resolve_weights(teacher, weights)
    except MissingWeightsError as e:
        raise MissingWeightsError(f"{e} Nothing was run. {how}") from e
    if record.source == RANDOM:
        warnings.warn(RANDOM_WEIGHTS_WARNING, RandomTeacherWarning, stacklevel=2)
        import logging

        logging.getLogger("monai_rd").warning(RANDOM_WEIGHTS_WARNING)
    return record
