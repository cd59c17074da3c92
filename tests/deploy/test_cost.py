"""Cost table: parameter and FLOP counts checked against hand counts and torchvision's published numbers."""

from __future__ import annotations

import time

import pytest
import torch
import torch.nn as nn

from monai_rd.cli import main as cli_main
from monai_rd.deploy.cost import count_flops, count_parameters, cost_table, format_table, median_latency, table_csv
from monai_rd.networks import StudentClassifier


class SmallNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, kernel_size=3, padding=1)  # [B,3,8,8] -> [B,4,8,8]
        self.conv2 = nn.Conv2d(4, 6, kernel_size=2, stride=2, bias=False)  # -> [B,6,4,4]
        self.fc = nn.Linear(6 * 4 * 4, 5)

    def forward(self, x):
        return self.fc(torch.relu(self.conv2(torch.relu(self.conv(x)))).flatten(1))


def test_flops_and_params_match_hand_count():
    b = 2
    net = SmallNet()
    # multiply-adds: conv1 = out elements (B*4*8*8) x (3*3*3); conv2 = (B*6*4*4) x (4*2*2); fc = B x 96 x 5
    macs = b * 4 * 8 * 8 * 27 + b * 6 * 4 * 4 * 16 + b * 96 * 5
    assert count_flops(net, torch.rand(b, 3, 8, 8)) == 2 * macs
    assert count_parameters(net) == (4 * 27 + 4) + (6 * 16) + (96 * 5 + 5)


def test_resnet18_matches_torchvision_published_numbers():
    # torchvision docs: resnet18 has 11,689,512 parameters and 1.814 GMACs ("GFLOPS") at 224 px
    model = StudentClassifier("resnet18", num_classes=3)
    fc_1000 = 512 * 1000 + 1000
    assert count_parameters(model) == 11_689_512 - fc_1000 + (512 * 3 + 3)
    macs = count_flops(model, torch.rand(1, 3, 224, 224)) / 2
    assert macs == pytest.approx(1.814e9, rel=0.01)


def test_median_latency_measures_wall_time():
    calls = []
    ms = median_latency(lambda: (calls.append(1), time.sleep(0.02)), warmup=2, repeats=3)
    assert len(calls) == 5 and 19.0 <= ms < 200.0


@pytest.mark.slow
def test_cost_table_teacher_student_ratios(tmp_path):
    rows = cost_table(
        "torchvision:resnet18", ["mobilenet_v3_small"], num_classes=3, image_size=32, batch_size=2, warmup=1, repeats=1
    )
    teacher, student = rows
    assert (teacher.role, student.role) == ("teacher", "student")
    assert teacher.params == count_parameters(StudentClassifier("resnet18", 3))
    assert set(teacher.latency_ms) == {"eager", "torchscript", "onnxruntime"}
    assert all(v is not None and v > 0 for r in rows for v in r.latency_ms.values()), [r.errors for r in rows]
    text = format_table(rows)
    assert f"{teacher.params / student.params:.1f}x" in text and "T/S onnxruntime" in text
    csv_text = table_csv(rows, tmp_path / "cost.csv")
    assert (tmp_path / "cost.csv").read_text() == csv_text
    assert csv_text.splitlines()[2].split(",")[2] == str(student.params)
    assert format_table(rows, markdown=True).startswith("| role | model |")


def test_cli_cost(tmp_path, capsys):
    code = cli_main(
        [
            "cost",
            "--teacher",
            "torchvision:mobilenet_v3_small",
            "--students",
            "mobilenet_v3_small",
            "--image_size",
            "32",
            "--batch_size",
            "1",
            "--warmup",
            "0",
            "--repeats",
            "1",
            "--backends",
            "eager",
            "onnxruntime",
            "--markdown",
            str(tmp_path / "cost.md"),
        ]
    )
    assert code == 0
    out = capsys.readouterr().out
    assert "1.0x" in out and "onnxruntime (ms/batch)" in out and "torchscript" not in out
    assert (tmp_path / "cost.md").read_text().count("\n") == 4
