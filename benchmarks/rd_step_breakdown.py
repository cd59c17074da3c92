"""Where one cached-RD training step spends its time next to a student-only step (not a test; CPU process time).

    OMP_NUM_THREADS=1 PYTHONPATH=$PWD nice -n 19 python benchmarks/rd_step_breakdown.py \
        --student mobilenet_v3_small --image_size 112 --batch_size 4

Prints the mean CPU milliseconds over ``--steps`` steps (after one warm-up) of: the student-only
step (forward, cross-entropy, backward, AdamW), the cached-RD step (``RDNet`` with teacher features given,
``RDLoss``, backward, AdamW), ``g`` + head forward/backward alone, and the ``RDLoss`` forward alone.
"""

from __future__ import annotations

import argparse
import time

import torch

from monai_rd.losses import RDLoss
from monai_rd.networks import RDNet, StudentClassifier


def _ms(fn, steps: int) -> float:
    fn()
    t0 = time.process_time()
    for _ in range(steps):
        fn()
    return (time.process_time() - t0) / steps * 1000


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--student", default="mobilenet_v3_small")
    p.add_argument("--teacher_dim", type=int, default=2048, help="d_T of the cached teacher vector")
    p.add_argument("--image_size", type=int, default=112)
    p.add_argument("--batch_size", type=int, default=4)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--threads", type=int, default=1)
    cfg = p.parse_args(argv)
    torch.set_num_threads(cfg.threads)
    torch.manual_seed(0)
    b = cfg.batch_size
    x, y = torch.rand(b, 3, cfg.image_size, cfg.image_size), torch.arange(b) % 3
    feats = torch.rand(b, cfg.teacher_dim)
    student = StudentClassifier(cfg.student, 3)
    opt = torch.optim.AdamW(student.parameters())
    net = RDNet(None, StudentClassifier(cfg.student, 3), teacher_feature_shape=(cfg.teacher_dim,))
    opt_rd = torch.optim.AdamW([q for q in net.parameters() if q.requires_grad])
    loss = RDLoss(gather_distributed=False)

    def student_step():
        opt.zero_grad()
        torch.nn.functional.cross_entropy(student(x), y).backward()
        opt.step()

    def rd_step():
        opt_rd.zero_grad()
        loss(net(x, teacher_features=feats), y)["loss"].backward()
        opt_rd.step()

    def g_only():
        opt_rd.zero_grad()
        torch.nn.functional.cross_entropy(net.head(net.reprogrammer(feats)), y).backward()

    with torch.no_grad():
        out = net(x, teacher_features=feats)
    print(
        f"{cfg.student}, g width {net.reprogrammer.width or 'full'}, {cfg.image_size} px, batch {b}: student step "
        f"{_ms(student_step, cfg.steps):.1f} ms, cached-RD step {_ms(rd_step, cfg.steps):.1f} ms, g+h fwd/bwd "
        f"{_ms(g_only, cfg.steps):.1f} ms, RD loss fwd {_ms(lambda: loss(out, y), cfg.steps):.1f} ms (CPU time)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
