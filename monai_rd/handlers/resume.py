"""Crash-safe training: atomic checkpoints holding the whole training state, per-epoch reseeding, resume.

A run that is killed (SIGKILL, pre-emption, power loss) and restarted with ``resume: true`` continues from the
last completed epoch and, in deterministic mode (``set_determinism``, ``num_workers=0``), ends with the same
weights and metrics as an uninterrupted run: at most the interrupted epoch is repeated.

What makes that hold:

- :class:`AtomicCheckpointSaver` is MONAI's ``CheckpointSaver`` with every file written to a temporary file in
  the same folder and renamed over the target (MONAI's own saver writes in place, ``atomic=False``), so a kill
  during a write leaves at worst a stray ``tmp*`` file, which :func:`latest_checkpoint` never returns.
- :func:`resume_objects` collects what the checkpoint holds: the trainer's engine state (epoch, iteration),
  the networks (:class:`NetworkState`: without a frozen teacher's weights, which training never changes; their
  SHA-256 instead, checked on resume), the optimizer, an LR scheduler and AMP grad scaler when present, the RNG states
  (:class:`RNGState`) and the validation's best metric (:class:`BestMetricState`). The RD loss weights need no
  entry: :class:`~monai_rd.handlers.LossWeightSchedule` derives them from the engine's iteration alone.
- :class:`EpochSeed` reseeds the global RNGs and the training transforms right before the first batch of each
  epoch, so the epoch's shuffling and augmentation depend only on ``(seed, epoch)``, not on what ran before.
"""

from __future__ import annotations

import glob
import hashlib
import logging
import os
import random
import re
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from monai.data.utils import set_rnd
from monai.handlers import CheckpointSaver
from monai.utils import IgniteInfo, min_version, optional_import

Events, _ = optional_import("ignite.engine", IgniteInfo.OPT_IMPORT_VERSION, min_version, "Events")
if TYPE_CHECKING:
    from ignite.engine import Engine
else:
    Engine, _ = optional_import("ignite.engine", IgniteInfo.OPT_IMPORT_VERSION, min_version, "Engine")

__all__ = [
    "AtomicCheckpointSaver",
    "BestMetricState",
    "CKAMemoryState",
    "EpochSeed",
    "NetworkState",
    "RNGState",
    "latest_checkpoint",
    "resume_objects",
    "RESUME_PREFIX",
    "resume_checkpoint",
]

RESUME_PREFIX = "resume"
_RESUME_RE = re.compile(r"_checkpoint_epoch=(\d+)\.pt$")
logger = logging.getLogger(__name__)


class AtomicCheckpointSaver(CheckpointSaver):
    """MONAI :class:`monai.handlers.CheckpointSaver` whose writes are atomic (temp file + ``os.replace``).

    Takes exactly the arguments of ``CheckpointSaver``. MONAI's saver passes ``atomic=False`` to ignite's
    ``DiskSaver``; this one switches every underlying ``DiskSaver`` (final, key-metric, interval) back to
    ignite's atomic mode: the file is written to ``tmp*`` in ``save_dir`` and renamed when complete. The
    target name (e.g. ``model.pt``) therefore always holds a complete file, the previous or the new one.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for name in ("_final_checkpoint", "_key_metric_checkpoint", "_interval_checkpoint"):
            checkpoint = getattr(self, name, None)
            if checkpoint is not None:
                checkpoint.save_handler._atomic = True


class RNGState:
    """The process's random number generators as a checkpointable object.

    ``state_dict()`` holds the torch CPU generator, every CUDA generator when CUDA is initialised, NumPy's
    legacy global generator and Python's ``random``, all as tensors / ints / tuples so that the checkpoint
    loads with ``torch.load(..., weights_only=True)``.
    """

    def state_dict(self) -> dict:
        kind, keys, pos, has_gauss, cached = np.random.get_state()
        state = {
            "torch": torch.get_rng_state(),
            "numpy": {
                "kind": str(kind),
                "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
                "pos": int(pos),
                "has_gauss": int(has_gauss),
                "cached_gaussian": float(cached),
            },
            "python": random.getstate(),
        }
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            state["cuda"] = torch.cuda.get_rng_state_all()
        return state

    def load_state_dict(self, state: dict) -> None:
        torch.set_rng_state(state["torch"].cpu())
        n = state["numpy"]
        np.random.set_state(
            (n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached_gaussian"])
        )
        version, internal, gauss = state["python"]
        random.setstate((version, tuple(internal), gauss))
        if "cuda" in state and torch.cuda.is_available():
            torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])


class BestMetricState:
    """The validation's best metric, and which checkpoint holds it, as a checkpointable object.

    Holds ``evaluator.state.best_metric`` / ``best_metric_epoch`` and the record of every key-metric
    ``CheckpointSaver`` attached to ``evaluator`` (ignite's ``Checkpoint`` state: the saved file and its
    score), so that a resumed run overwrites the best-model file only with a better model.

    Args:
        evaluator: the MONAI evaluator run by the trainer's ``ValidationHandler``; ``None`` for no validation.
    """

    def __init__(self, evaluator: Engine | None = None) -> None:
        self.evaluator = evaluator

    def _key_metric_checkpoints(self) -> list:
        found = []
        if self.evaluator is None:
            return found
        for handlers in self.evaluator._event_handlers.values():
            for handler, _, _ in handlers:
                owner = getattr(handler, "__self__", None)
                checkpoint = getattr(owner, "_key_metric_checkpoint", None)
                if isinstance(owner, CheckpointSaver) and checkpoint is not None and checkpoint not in found:
                    found.append(checkpoint)
        return found

    def state_dict(self) -> dict:
        if self.evaluator is None:
            return {}
        return {
            "best_metric": float(self.evaluator.state.best_metric),
            "best_metric_epoch": int(self.evaluator.state.best_metric_epoch),
            "key_metric_checkpoints": [c.state_dict() for c in self._key_metric_checkpoints()],
            # every metric of the best epoch (kept by MLflowModelRegistryHandler), so a resumed run can tag it
            "best_epoch_metrics": dict(getattr(self.evaluator.state, "best_epoch_metrics", {})),
        }

    def load_state_dict(self, state: dict) -> None:
        if self.evaluator is None or not state:
            return
        self.evaluator.state.best_metric = state["best_metric"]
        self.evaluator.state.best_metric_epoch = state["best_metric_epoch"]
        self.evaluator.state.best_epoch_metrics = dict(state.get("best_epoch_metrics", {}))
        for checkpoint, saved in zip(self._key_metric_checkpoints(), state["key_metric_checkpoints"]):
            checkpoint.load_state_dict(saved)


class CKAMemoryState:
    """The recent features an :class:`monai_rd.losses.RDLoss` keeps for its CKA term (``cka_memory``), as a
    checkpointable object: without it a resumed run would start that memory empty and differ from an uninterrupted one.
    """

    def __init__(self, loss: torch.nn.Module) -> None:
        self.loss = loss

    def state_dict(self) -> dict:
        return self.loss.memory_state()

    def load_state_dict(self, state: dict) -> None:
        self.loss.load_memory_state(state)


class EpochSeed:
    """Reseed at the start of every epoch, so the epoch depends only on ``(seed, epoch)``.

    At ``EPOCH_STARTED`` of epoch ``e`` it seeds ``torch``, NumPy and ``random`` with ``seed + e``, gives every
    randomizable transform of the engine's training dataset a random state derived from it
    (``monai.data.utils.set_rnd``) and then starts the epoch's data-loader iterator itself. Creating the
    iterator draws from torch's generator, and ignite creates it at a different point in a fresh run (when
    the previous epoch's iterator runs out) than in a resumed one (before the first batch); starting it here,
    after the reseed, makes the loader's shuffling (a ``RandomSampler`` draws its permutation seed from the
    global generator) and the augmentation identical in both. This needs ``epoch_length == len(loader)`` (the
    default); with a shorter ``epoch_length`` ignite carries one iterator across epochs and only the seeds are
    set. With ``num_workers > 0`` the workers' seeds come from the iterator too and are covered, but worker
    scheduling is not: deterministic resume is tested with ``num_workers=0``.

    Args:
        seed: the run's seed.
    """

    def __init__(self, seed: int = 0) -> None:
        self.seed = int(seed)

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.EPOCH_STARTED, self)

    def epoch_seed(self, epoch: int) -> int:
        return (self.seed + int(epoch)) % (2**32)

    def __call__(self, engine: Engine) -> None:
        seed = self.epoch_seed(engine.state.epoch)
        torch.manual_seed(seed)
        np.random.seed(seed)
        random.seed(seed)
        loader = engine.state.dataloader
        dataset = getattr(loader, "dataset", None)
        if dataset is not None:
            set_rnd(dataset, seed)
        try:
            n = len(loader)
        except TypeError:
            return
        if engine.state.epoch_length not in (None, n):
            return
        # ignite's own iterator set-up (private API of ignite 0.5): a fresh iterator for this epoch, now
        if engine._dataloader_iter is None:
            engine._setup_engine()
        else:
            engine._setup_dataloader_iter()


def latest_checkpoint(directory: str, prefix: str = RESUME_PREFIX) -> str | None:
    """The resume checkpoint of the highest epoch in ``directory`` (``<prefix>_checkpoint_epoch=N.pt``).

    Only complete files carry that name (:class:`AtomicCheckpointSaver` renames a finished temp file onto
    it); temporary files of an interrupted write are ignored. ``None`` when there is none.
    """
    best, best_epoch = None, -1
    for path in glob.glob(os.path.join(glob.escape(directory), f"{prefix}_checkpoint_epoch=*.pt")):
        match = _RESUME_RE.search(os.path.basename(path))
        if match and int(match.group(1)) > best_epoch:
            best, best_epoch = path, int(match.group(1))
    return best


def resume_checkpoint(directory: str, resume: bool, prefix: str = RESUME_PREFIX) -> str | None:
    """The checkpoint to resume from when ``resume`` is true (logged), else ``None``.

    A resume request with no checkpoint yet in ``directory`` starts from scratch (so a job script can always
    pass ``resume true``) and says so in the log. A checkpoint that cannot be read raises ``RuntimeError``
    naming the file, never trains from a partial state.
    """
    if not resume:
        return None
    path = latest_checkpoint(directory, prefix)
    if path is None:
        logger.warning(f"resume: no '{prefix}_checkpoint_epoch=*.pt' in {directory}; training from scratch.")
        return None
    try:
        torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise RuntimeError(
            f"resume: the checkpoint {path} cannot be read ({type(e).__name__}: {e}). Delete it to resume from "
            "scratch, or restore it from a backup."
        ) from e
    logger.info(f"resume: continuing from {path}")
    return path


def _method_network(network: torch.nn.Module) -> torch.nn.Module:
    """The method's own network inside ``DDP(TrainableParts(network, loss))``, so that a checkpoint written under
    DDP has the keys of a single-process one (the loss is saved under its own key) and resumes in either mode."""
    from monai_rd.networks.distributed import TrainableParts

    inner = getattr(network, "module", network)
    return inner.network if isinstance(inner, TrainableParts) else network


class NetworkState:
    """The method's network as a resume checkpoint holds it: every entry but a frozen teacher's, and their SHA-256.

    A frozen teacher (a :class:`monai_rd.networks.FrozenTeacher` none of whose parameters train; it stays in eval
    mode, so its BatchNorm statistics never move either) is the same at every epoch, and it is most of an RD
    checkpoint (a ResNet-50 teacher is 94 MB of fp32 weights), written once an epoch. The checkpoint keeps the
    digest of those entries instead, and loading checks it against the network being resumed: a resume under
    another teacher (other weights, another architecture) is refused with what to do, never trained on silently.
    Checkpoints that hold the whole network (written before this class) load as they are.

    State: ``{"state": {name: tensor} without the frozen entries, "frozen_sha256": hex digest, "frozen_entries":
    count}``.
    """

    def __init__(self, network: torch.nn.Module) -> None:
        self.network = network
        self._digest: str | None = None  # frozen entries never change: hashed once per process

    def _frozen_prefixes(self) -> tuple[str, ...]:
        from monai_rd.networks import FrozenTeacher

        prefixes: list[str] = []
        for name, module in self.network.named_modules():
            if not isinstance(module, FrozenTeacher) or any(p.requires_grad for p in module.parameters()):
                continue
            if name and not any(name.startswith(p) for p in prefixes):
                prefixes.append(name + ".")
        return tuple(prefixes)

    def _split(self) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        prefixes = self._frozen_prefixes()
        full = self.network.state_dict()
        frozen = {k: v for k, v in full.items() if k.startswith(prefixes)} if prefixes else {}
        return {k: v for k, v in full.items() if k not in frozen}, frozen

    @staticmethod
    def _sha256(frozen: dict[str, torch.Tensor]) -> str:
        h = hashlib.sha256()
        for key in sorted(frozen):
            t = frozen[key].detach().cpu().contiguous()
            h.update(f"{key}|{t.dtype}|{tuple(t.shape)}|".encode())
            h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
        return h.hexdigest()

    def state_dict(self) -> dict[str, Any]:
        trained, frozen = self._split()
        if self._digest is None:
            self._digest = self._sha256(frozen)
        return {"state": trained, "frozen_sha256": self._digest, "frozen_entries": len(frozen)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if "frozen_sha256" not in state:  # a checkpoint with the whole network
            self.network.load_state_dict(state, strict=True)
            return
        trained, frozen = self._split()
        digest = self._sha256(frozen)
        if digest != state["frozen_sha256"] or len(frozen) != state["frozen_entries"]:
            raise RuntimeError(
                f"The resume checkpoint was written with another frozen teacher ({state['frozen_entries']} entries, "
                f"sha256 {state['frozen_sha256'][:12]}...) than this run builds ({len(frozen)} entries, sha256 "
                f"{digest[:12]}...). Resume with the teacher and teacher_weights of the interrupted run, or start "
                "again without --resume in a new output_dir."
            )
        missing = sorted(set(trained) - set(state["state"]))
        unexpected = sorted(set(state["state"]) - set(trained))
        if missing or unexpected:
            raise RuntimeError(
                f"The resume checkpoint does not fit this network: missing {missing[:5]}, unexpected "
                f"{unexpected[:5]} ({len(missing)} and {len(unexpected)} in all). Resume with the settings of the "
                "interrupted run (method, student, method_options), or start again in a new output_dir."
            )
        self.network.load_state_dict({**frozen, **state["state"]}, strict=True)
        self._digest = digest


def resume_objects(
    trainer: Engine,
    network: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    evaluator: Engine | None = None,
    lr_scheduler: Any = None,
    loss: torch.nn.Module | None = None,
    gate: Any = None,
) -> dict[str, Any]:
    """Everything a resume checkpoint holds, as a ``save_dict`` / ``load_dict`` for MONAI's checkpoint handlers.

    Keys: ``trainer`` (ignite engine state: epoch, iteration), ``network`` (:class:`NetworkState` of the method's
    network, also under DDP: the same keys in both modes), ``optimizer``, ``lr_scheduler`` (when given), ``loss`` (when it has state: the
    regressors, projectors, memory banks of feature-distillation losses train with the network), ``cka_memory``
    (:class:`CKAMemoryState`, when RD's loss keeps recent features for CKA), ``distillation_gate`` (an active
    :class:`monai_rd.handlers.DistillationGate`: open or closed, and its history), ``scaler`` (the
    trainer's AMP ``GradScaler``, when it has one), ``rng`` (:class:`RNGState`) and ``best`` (:class:`BestMetricState`).
    """
    objects: dict[str, Any] = {"trainer": trainer, "network": NetworkState(_method_network(network)),
                               "optimizer": optimizer}  # fmt: skip
    if loss is not None and loss.state_dict():
        objects["loss"] = loss
    if getattr(loss, "cka_memory", 0):
        objects["cka_memory"] = CKAMemoryState(loss)
    if gate is not None and gate.active:
        objects["distillation_gate"] = gate
    if lr_scheduler is not None:
        objects["lr_scheduler"] = lr_scheduler
    scaler = getattr(trainer, "scaler", None)
    if scaler is not None:
        objects["scaler"] = scaler
    objects["rng"] = RNGState()
    objects["best"] = BestMetricState(evaluator)
    return objects
