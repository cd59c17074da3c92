"""Fetch only the teacher a run needs into a bundle's ``models/``, with progress; offline, say where the file goes.

MONAI's ``python -m monai.bundle download_large_files`` fetches every file of ``large_files.yml`` (four teachers,
several GB) and, offline, ends in a long traceback. :func:`fetch_teacher` reads the same ``large_files.yml`` (same
urls, same optional ``hash_val``), picks the entry of one teacher (:data:`TEACHER_FILES`) and downloads it with
MONAI's ``download_url`` (a progress bar; Google Drive links through gdown; a wrong hash leaves no file). A failed
download raises :class:`FetchError`, whose message ends with where to put the file by hand.
"""

from __future__ import annotations

import logging
import os
from typing import Any

__all__ = ["TEACHER_FILES", "FetchError", "large_files", "teacher_entry", "bundle_teacher", "fetch_teacher"]

#: teacher id (``--teacher``) -> the file name its ``large_files.yml`` entry writes under ``models/``; the
#: bundles' ``teacher_weights`` default is ``<bundle>/models/<that file>`` for their default teacher
TEACHER_FILES = {
    "pmc_clip_rn50": "pmc_clip_checkpoint.pt",
    "slicewise:pmc_clip_rn50": "pmc_clip_checkpoint.pt",
    "lvmmed_resnet50": "lvmmed_resnet.torch",
    "lvmmed_vit_b": "lvmmed_vit.pth",
    "biomedclip_vit_b": "biomedclip_open_clip_pytorch_model.bin",
    "swin_unetr_ssl": "model_swinvit.pt",
}


class FetchError(RuntimeError):
    """A teacher that cannot be fetched; the message's last line says where to put the file by hand."""


def large_files(bundle_root: str) -> list[dict[str, Any]]:
    """The entries (``path``, ``url``, optional ``hash_val``/``hash_type``) of ``<bundle_root>/large_files.yml``."""
    from monai.bundle import ConfigParser

    path = os.path.join(bundle_root, "large_files.yml")
    if not os.path.isfile(path):
        raise FetchError(f"{path!r} does not exist: {bundle_root!r} is not a bundle folder with large_files.yml.")
    return list(ConfigParser.load_config_file(path).get("large_files", []))


def bundle_teacher(bundle_root: str) -> str:
    """The ``teacher`` id the bundle's ``train.json`` runs by default (the teacher a plain run needs)."""
    from monai.bundle import ConfigParser

    parser = ConfigParser()
    parser.read_config(os.path.join(bundle_root, "configs", "train.json"))
    parser["bundle_root"] = bundle_root
    return str(parser.get_parsed_content("teacher"))


def teacher_entry(bundle_root: str, teacher: str) -> dict[str, Any]:
    """The ``large_files.yml`` entry of ``teacher``, or :class:`FetchError` naming the teachers it has."""
    entries = large_files(bundle_root)
    listed = {t for t, name in TEACHER_FILES.items() for e in entries if os.path.basename(e["path"]) == name}
    if teacher not in TEACHER_FILES or teacher not in listed:
        raise FetchError(
            f"{os.path.join(bundle_root, 'large_files.yml')} lists no file for teacher {teacher!r}; it lists "
            f"{sorted(listed)}. Other teachers (radimagenet_*, hf-hub:, imagenet, your own file) are passed with "
            "--teacher_weights; docs/teachers.md says where each file comes from."
        )
    return next(dict(e) for e in entries if os.path.basename(e["path"]) == TEACHER_FILES[teacher])


def fetch_teacher(bundle_root: str, teacher: str | None = None, progress: bool = True) -> str:
    """Download ``teacher``'s file (default: the bundle's own teacher) into ``<bundle_root>/models/``.

    A file already there (with the right hash, where one is given) is kept. Returns the file's path.

    Raises:
        FetchError: no entry for ``teacher``, or the download failed (offline, a moved url, a wrong hash): the
            message names the url and the cause, and its last line says where to put the file by hand.
    """
    from monai.apps.utils import download_url

    bundle_root = os.path.abspath(bundle_root)
    teacher = bundle_teacher(bundle_root) if teacher is None else teacher
    entry = teacher_entry(bundle_root, teacher)
    target = os.path.join(bundle_root, entry["path"])
    os.makedirs(os.path.dirname(target), exist_ok=True)
    hashing = {k: entry[k] for k in ("hash_val", "hash_type") if entry.get(k)}
    monai_log = logging.getLogger("monai.apps")  # its error log repeats ours, with a traceback
    disabled, monai_log.disabled = monai_log.disabled, True
    try:
        download_url(entry["url"], target, progress=progress, **hashing)
    except Exception as e:  # noqa: BLE001 - every failure (network, gdown, hash) gets the same way out
        cause = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise FetchError(
            f"could not download teacher {teacher!r} from {entry['url']} ({type(e).__name__}: {cause}).\n"
            f"Put the file there by hand: save {entry['url']} as {target} (or pass --teacher_weights <file> to the "
            "bundle run)."
        ) from e
    finally:
        monai_log.disabled = disabled
    return target
