"""The manifest of every shell command in the README and docs/*.md: each is RUN by tests/project/test_docs_commands.py
as written, or COVERED by a named test that exercises it, with the reason it cannot run as written here.

A documented command is one line of a fenced ```bash (or ```sh) block, continuation lines joined, the trailing
``  # comment`` and comment-only lines dropped, whitespace collapsed (see ``documented_commands``). Every such
line must be an entry below, and every entry must still be in the docs (a fast test checks both).

How a ``Run`` entry is executed (the convention the README's "How the docs' commands are tested" describes):

* in a fresh *workspace*: a temporary copy of the repository's ``monai_rd``, ``bundles`` (no ``models/`` nor
  ``outputs/``), ``transforms``, ``apps``, ``grids`` and ``benchmarks``, used as the working directory and as
  ``PYTHONPATH`` (so ``bundles/rd_busi/...`` and the bundles' own ``bundle_root`` are that copy, and nothing is
  written into the repository), ``OMP_NUM_THREADS=1``, by ``bash -c`` exactly as written after two changes:
* placeholders and example paths (``<BUSI folder>``, ``<output_dir>``, ``/data/ISIC2018``, ``D``, ``O``,
  ``/models/ResNet50.pt`` ...) are replaced, as whole words, by data fabricated in that dataset's real on-disk
  layout (``GROUP_PLACEHOLDERS`` and the entry's ``subs``); weight files named relative to the working
  directory (``resnet_18_23dataset.pth``) are fabricated there, in their authors' formats;
* the fast-run suffix ``FAST`` is set on bundle runs: ``--max_epochs 1 --image_size 32 --batch_size 4
  --num_workers 0 --progress_bar false`` (``--stage1_epochs 1`` where the command sets it) on training runs and
  ``monai-rd cache-features`` (there ``--image_size 32 --num_workers 0 --no_progress``), ``--num_workers 0`` on
  evaluate/inference runs; a flag the command already sets gets the fast value in place.

An entry whose documented text elides arguments (``python -m monai.bundle run ... --method hint``) or is a
fragment of the command above it (``--teacher medicalnet_resnet18 ...``) gives the full command it implies in
``run``. Entries of one group run in the order listed here, in one workspace, so evaluation, inference, export
and packaging use the training run listed before them.
"""

from __future__ import annotations

import glob
import os
import re
from dataclasses import dataclass, field
from tests.helpers import REPO

DOCS = [os.path.join(REPO, "README.md"), *sorted(glob.glob(os.path.join(REPO, "docs", "*.md")))]


def documented_commands() -> list[tuple[str, str]]:
    """``(doc, command)`` for every command line of every ```bash/```sh block of the README and docs/*.md."""
    out = []
    for path in DOCS:
        text = open(path, encoding="utf-8").read()
        for block in re.findall(r"^```(?:bash|sh)\n(.*?)^```", text, re.S | re.M):
            for line in block.replace("\\\n", " ").splitlines():
                line = re.sub(r"\s{2,}#.*$", "", line).strip()
                if line and not line.startswith("#"):
                    out.append((os.path.relpath(path, REPO), " ".join(line.split())))
    return out


@dataclass(frozen=True)
class Run:
    """Run by ``test_documented_commands_run_as_written[group]``; ``expect``: files (workspace-relative) it writes."""

    doc: str
    command: str
    group: str
    expect: tuple[str, ...] = ()
    run: str | None = None  # the full command when the documented one elides arguments or is a fragment
    subs: dict = field(default_factory=dict)  # placeholders of this entry only (e.g. ``O``)
    stdout: str | None = None  # text the command must print
    note: str = ""


@dataclass(frozen=True)
class Covered:
    """Exercised by the test ``test`` (``tests/<file>.py::<function>``); ``why`` it is not run as written here."""

    doc: str
    command: str
    test: str
    why: str


BUSI_TRAIN = "python -m monai.bundle run --config_file bundles/rd_busi/configs/train.json --dataset_dir D"
MOSMED_DATA = "--dataset_dir /data/MosMedData/COVID19_1110 --labeling binary"
INSTALL_WHY = (
    "builds a virtual environment of its own (minutes, network); CI's .ci/run builds it with this very command "
    "and the named test serves from it"
)
LABEL_TEST = "tests/apps/test_monailabel_app.py::test_server_in_its_own_venv_serves_png_and_dicom_like_model_pt"
DEPLOY_TEST = "tests/apps/test_monai_deploy_app.py::test_app_classifies_a_dicom_series_like_model_pt"
SERVE_TEST = "tests/deploy/test_deploy_serving.py::test_registered_pyfunc_serves_over_http_like_model_pt"
PARSE_TEST = "tests/project/test_docs_commands.py::test_documented_benchmark_and_protocol_arguments_parse"

MANIFEST = [
    # ------------------------------------------------------------------------------------------ docs/bundles.md
    Covered(
        "docs/bundles.md",
        "monai-rd render-bundles",
        "tests/bundle/test_bundle_render.py::test_check_names_each_differing_file_and_render_fixes_it",
        "writes into the repository's bundles/; the named test renders into a copy and checks what it wrote",
    ),
    Covered(
        "docs/bundles.md",
        "monai-rd render-bundles --check",
        "tests/bundle/test_bundle_render.py::test_check_names_each_differing_file_and_render_fixes_it",
        "the named test runs it on a copy with one differing, one missing and one stale file, and on a clean copy",
    ),
    # ------------------------------------------------------------------------------------------ README: set-up
    Covered(
        "README.md",
        'pip install -e ".[dev]"',
        "tests/project/test_packaging.py::test_the_bundles_are_installed_with_the_package",
        "installs into the environment running the tests; the named test pip-installs the same tree (non-editable) "
        "and runs the README's commands from it",
    ),
    Covered(
        "README.md",
        'pytest -n 2 -m "not slow"',
        "tests/project/test_ci.py::test_ci_runs_the_readmes_install_and_test_commands",
        "the test suite's fast tier itself: .ci/run runs it as written, which the named test checks",
    ),
    Covered(
        "README.md",
        "pytest -n 2 -m slow",
        "tests/project/test_ci.py::test_ci_runs_the_readmes_install_and_test_commands",
        "the test suite's slow tier itself: .ci/run runs it as written, which the named test checks",
    ),
    Covered("README.md", "apps/monailabel/install.sh ~/.cache/monai_rd/monailabel", LABEL_TEST, INSTALL_WHY),
    Covered("README.md", "apps/monai_deploy/install.sh ~/.cache/monai_rd/monai_deploy", DEPLOY_TEST, INSTALL_WHY),
    Covered(
        "README.md",
        "monai-rd demo",
        "tests/cli/test_cli_demo.py::test_demo_learns_and_reuses_its_source_teacher",
        "3.5 minutes on 2 cores; the named test runs `monai-rd demo` itself, with smaller sizes",
    ),
    Covered(
        "README.md",
        "python -m monai.bundle run --config_file bundles/rd_busi/configs/train.json --dataset_dir rd_demo/data/Dataset_BUSI_with_GT --teacher torchvision:resnet18 --teacher_weights rd_demo/teacher/source_teacher_resnet18.pt --image_size 48 --max_epochs 15 --batch_size 8 --learning_rate 0.001 --output_dir rd_offline",
        "tests/cli/test_cli_demo.py::test_demo_learns_and_reuses_its_source_teacher",
        "needs the demo's pretrained teacher file (minutes); the demo's RD run is this command with that file "
        "(the test checks its printed --teacher_weights <teacher file>), on its own data and settings",
    ),
    # -------------------------------------------------- README + the docs that continue its BUSI run, in order
    Run(
        "README.md",
        "monai-rd fetch-teacher bundles/rd_busi",
        "busi",
        expect=("bundles/rd_busi/models/pmc_clip_checkpoint.pt",),
        note="the workspace's large_files.yml lists the default teacher only, at a file:// URL of a PMC-CLIP "
        "checkpoint fabricated in its release layout; fetch-teacher fetches it into models/",
    ),
    Run(
        "README.md",
        "python -m monai.bundle run --config_file bundles/rd_busi/configs/train.json --dataset_dir <BUSI folder>",
        "busi",
        expect=("bundles/rd_busi/outputs/model.pt", "bundles/rd_busi/outputs/report/test_metrics.json"),
    ),
    Run(
        "README.md",
        "python -m monai.bundle run --config_file \"['bundles/rd_busi/configs/train.json','bundles/rd_busi/configs/evaluate.json']\" --output_dir <output_dir>",
        "busi",
        expect=("bundles/rd_busi/outputs/eval/test/metrics.csv", "bundles/rd_busi/outputs/eval/test/summary.json"),
        stdout="Scored the 'test' split",
    ),
    Run(
        "README.md",
        "python -m monai.bundle run --config_file bundles/rd_busi/configs/inference.json --output_dir <output_dir> --input_dir <folder of PNG/JPG>",
        "busi",
        expect=("bundles/rd_busi/outputs/predictions.csv",),
    ),
    Run(
        "README.md",
        "python -m monai.bundle verify_metadata --meta_file bundles/rd_busi/configs/metadata.json --filepath monai_rd/schemas/bundle_metadata_schema.json",
        "busi",
    ),
    Covered(
        "README.md",
        'MLFLOW_TRACKING_URI=sqlite:///bundles/rd_busi/outputs/mlruns.db mlflow models serve -m "models:/rd_busi_student@champion" --env-manager local -h 127.0.0.1 -p 5001',
        SERVE_TEST,
        "a server on a fixed port; the named test serves the registered model with this command on a free port",
    ),
    Run(
        "docs/export.md",
        "monai-rd export --ckpt outputs/model.pt --student resnet18 --output_dir models --image_size 224",
        "busi",
        expect=("models/model.ts", "models/model.onnx"),
        note="`outputs` is the training run above (the workspace links it to bundles/rd_busi/outputs)",
    ),
    Run("docs/export.md", "mkdir -p models", "busi"),
    Run(
        "docs/export.md",
        "python -m monai.bundle ckpt_export --net_id network_def --filepath models/model.ts --ckpt_file outputs/model.pt --meta_file bundles/rd_busi/configs/metadata.json --config_file bundles/rd_busi/configs/inference.json --output_dir outputs",
        "busi",
        expect=("models/model.ts",),
    ),
    Run(
        "docs/export.md",
        "python -m monai.bundle run --config_file bundles/rd_busi/configs/inference.json --output_dir outputs --input_dir /path/to/images",
        "busi",
        expect=("outputs/predictions.csv",),
    ),
    Run(
        "docs/export.md",
        "monai-rd label-bundle --output_dir outputs --dest apps/monailabel/model/rd_busi",
        "busi",
        expect=("apps/monailabel/model/rd_busi/models/model.pt",),
    ),
    Run(
        "docs/feature_cache.md",
        "monai-rd cache-features --config_file bundles/rd_busi/configs/train.json --dataset_dir /data/Dataset_BUSI_with_GT --teacher resnet50 --teacher_weights /models/ResNet50.pt --feature_cache /data/rd_busi_cache --views 8 --dtype float16",
        "busi",
        expect=("data/rd_busi_cache",),
        note="/models/ResNet50.pt: a torchvision ResNet-50 state dict, random",
    ),
    Run(
        "docs/feature_cache.md",
        "python -m monai.bundle run --config_file bundles/rd_busi/configs/train.json --dataset_dir /data/Dataset_BUSI_with_GT --teacher resnet50 --teacher_weights /models/ResNet50.pt --feature_cache /data/rd_busi_cache",
        "busi",
        expect=("bundles/rd_busi/outputs/model.pt",),
    ),
    Run(
        "docs/methods.md",
        f"{BUSI_TRAIN.replace(' D', ' D --output_dir O')} --method kd --stage1_epochs 240 --stage1_patience 20 --max_epochs 240",
        "busi",
        subs={"O": "runs/kd"},
        expect=("runs/kd/model.pt",),
    ),
    Covered(
        "docs/methods.md",
        "python -m monai.bundle run ... --method hint --method_options \"{'weight': 50.0}\"",
        "tests/bundle/test_bundle_methods.py::test_method_trains_and_saves_its_deployable",
        "another teacher-in-the-loop training (~40 s on 2 cores) beyond the slow tier's budget; the named test "
        "trains --method hint through the bundle, and the kd command above runs this section's command as written",
    ),
    Covered(
        "docs/methods.md",
        "python -m monai.bundle run ... --method rd --method_options \"{'co_training': False}\"",
        "tests/bundle/test_bundle_methods.py::test_rd_co_training_off_is_direct_reprogramming",
        "as above (budget); the named test trains rd with co_training False through the bundle",
    ),
    Run(
        "docs/teachers.md",
        "python -m monai.bundle download_large_files --bundle_path bundles/rd_busi",
        "busi",
        expect=("bundles/rd_busi/models/pmc_clip_checkpoint.pt",),
        note="MONAI's own command on the file the README's fetch-teacher fetched: a second download is a no-op",
    ),
    Covered(
        "docs/teachers.md",
        "PYTHONPATH=$PWD python -m monai.bundle run --config_file bundles/rd_busi/configs/train.json --dataset_dir D --output_dir O --teacher pmc_clip_rn50 --teacher_weights /models/pmc_clip/checkpoint.pt",
        "tests/networks/test_teacher_weights.py::test_download_large_files_then_the_bundle_trains_with_that_teacher",
        "the README's BUSI run above with the default teacher's file named explicitly (budget: ~40 s more); the "
        "named test trains with a PMC-CLIP checkpoint in the release layout and checks its MLflow record",
    ),
    Covered(
        "docs/teachers.md",
        "... --teacher radimagenet_densenet121 --teacher_weights RadImageNet-DenseNet121_notop.h5 --teacher_def::pooled False",
        "tests/networks/test_zoo_radimagenet.py::test_keras_densenet121_h5",
        "a DenseNet-121 teacher run adds a minute to the 2-core budget; the named test loads a Keras .h5 in that "
        "layout against a NumPy forward, and the `teacher_def::` override is run by the PMC-CLIP entry below",
    ),
    Covered(
        "docs/methods.md",
        "monai-rd task-families --split held_out --tasks_per_family 2 --seeds 0 1 2 --workdir runs/families",
        "tests/experiments/test_task_families.py::test_task_families_command_runs_the_bundle_scores_held_out_images_and_resumes",
        "432 bundle trainings, hours of CPU; the named test runs the same command on one held-out family for one "
        "epoch (two settings), scores the held-out images, reports and resumes",
    ),
    Covered(
        "docs/methods.md",
        "monai-rd task-families --workdir runs/families --report_only",
        "tests/experiments/test_task_families.py::test_task_families_command_runs_the_bundle_scores_held_out_images_and_resumes",
        "needs recorded runs; the named test's command writes and prints the same report from its state.json",
    ),
    *(
        Covered(
            "docs/methods.md",
            f"OMP_NUM_THREADS=1 monai-rd task-families --split held_out --tasks_per_family 2 --seeds 0 "
            f"--workdir runs/families --shard {k}/2",
            "tests/experiments/test_task_families.py::test_task_families_command_runs_the_bundle_scores_held_out_images_and_resumes",
            "one shard of the 144 measured trainings (about 50 min each on 2 cores); the named test runs the same "
            "command on one held-out family for one epoch, scores the held-out images, reports and resumes",
        )
        for k in (0, 1)
    ),
    *(
        Covered(
            "docs/methods.md",
            f"OMP_NUM_THREADS=1 monai-rd task-families --split {split} --tasks_per_family 2 --seeds {seeds} --settings "
            f"{settings} --workdir runs/{workdir} --shard {k}/2",
            "tests/experiments/test_task_families.py::test_task_families_command_runs_the_bundle_scores_held_out_images_and_resumes",
            "one shard of the measured distillation-gate trainings (tens of minutes on 2 cores); the named test runs "
            "the same command with --settings student rd_gate on one family for one epoch, scores the held-out "
            "images, reports and resumes",
        )
        for split, seeds, settings, workdir in (
            ("tune", "0", "student rd rd_gate", "families_tune"),
            ("held_out", "0", "rd_gate", "families"),
            ("held_out", "0", "student rd rd_gate", "families_paired"),
            ("tune", "0", "student rd_gate_strict", "families_tune_paired"),
            ("held_out", "1 2", "student rd_gate", "families_paired"),
            ("held_out", "0 1 2", "kd", "families_paired"),
            ("held_out", "0 1 2", "rd_paper", "families_rd_paper"),
        )
        for k in (0, 1)
    ),  # fmt: skip
    *(
        Covered(
            "docs/methods.md",
            f"monai-rd task-families --workdir runs/{workdir} --report_only --score_teachers",
            "tests/experiments/test_task_families.py::test_task_families_command_runs_the_bundle_scores_held_out_images_and_resumes",
            "needs recorded runs; the named test runs the same command on its state.json and reads back the task's "
            "rank-teachers table",
        )
        for workdir in ("families", "families_paired")
    ),
    Covered(
        "docs/methods.md",
        "monai-rd task-families --workdir runs/families_rd_paper --report_only --score_teachers --runs_csv "
        "benchmarks/results/task_families_held_out_paired/runs.csv",
        "tests/experiments/test_task_families.py::test_a_report_read_back_from_its_runs_csv_reports_the_same_and_the_workdir_takes_precedence",
        "needs the recorded rd_paper runs and scores 36 tasks' teachers; the named test runs the same command with "
        "--runs_csv on a report it wrote and a workdir that re-ran one run, and checks the report is the same, gates "
        "included, with the workdir's run taken; --score_teachers is run by the test of the command above",
    ),
    Covered(
        "docs/teachers.md",
        "monai-rd rank-teachers --bundle rd_busi --dataset_dir /data/Dataset_BUSI_with_GT --teachers pmc_clip_rn50 radimagenet_resnet50 lvmmed_resnet50 torchvision:resnet50 --teacher_weights radimagenet_resnet50=/models/ResNet50.pt lvmmed_resnet50=/models/lvmmed_resnet.torch torchvision:resnet50=imagenet --output_dir runs/rank_busi",
        "tests/cli/test_cli_rank_teachers.py::test_rank_teachers_writes_table_plot_and_mlflow",
        "needs four foundation models' weights (hundreds of MB, unreachable offline) and 224 px ResNet-50s on CPU; "
        "the named test runs the same command in-process on fabricated BUSI data with two torchvision teachers "
        "(one random, one from a weights file) at 32 px and reads back the CSV, the plot and the MLflow runs",
    ),
    Run(
        "docs/teachers.md",
        "... --teacher pmc_clip_rn50 --teacher_weights 'image_encoder(resnet50).pth' --teacher_def::pool attn",
        "busi",
        run=f"{BUSI_TRAIN} --output_dir O --teacher pmc_clip_rn50 --teacher_weights 'image_encoder(resnet50).pth' --teacher_def::pool attn",  # noqa: E501
        subs={"O": "runs/pmc_attn"},
        expect=("runs/pmc_attn/model.pt",),
        note="`...`: the command above; image_encoder(resnet50).pth fabricated in the working directory (release layout)",
    ),
    # --------------------------------------------------------------------------------------------- datasets
    Run(
        "docs/datasets.md",
        "python -m monai.bundle run --config_file bundles/rd_isic/configs/train.json --dataset_dir /data/ISIC2018 --output_dir runs/isic",
        "datasets",
        expect=("runs/isic/model.pt",),
    ),
    Run(
        "docs/datasets.md",
        "python -m monai.bundle run --config_file bundles/rd_isic/configs/train.json --dataset_dir /data/HAM10000 --dataset_format ham10000",
        "datasets",
        expect=("bundles/rd_isic/outputs/model.pt",),
    ),
    Run(
        "docs/datasets.md",
        "python -m monai.bundle run --config_file bundles/rd_covid/configs/train.json --dataset_dir /data/COVID-CT",
        "datasets",
        expect=("bundles/rd_covid/outputs/model.pt",),
    ),
    Run(
        "docs/datasets.md",
        "python -m monai.bundle run --config_file bundles/rd_btc/configs/train.json --dataset_dir /data/BTC",
        "datasets",
        expect=("bundles/rd_btc/outputs/model.pt",),
    ),
    Run(
        "docs/datasets.md",
        "python -m monai.bundle run --config_file bundles/rd_chestxray/configs/train.json --dataset_dir /data/ChestX-ray14",
        "datasets",
        expect=("bundles/rd_chestxray/outputs/model.pt",),
    ),
    # ---------------------------------------------------------------------------------------- volumes (MosMed)
    Run(
        "docs/results.md",
        f"python -m monai.bundle run --config_file bundles/rd_mosmed/configs/train.json {MOSMED_DATA} --teacher medicalnet_resnet18 --teacher_weights resnet_18_23dataset.pth",
        "mosmed",
        expect=("bundles/rd_mosmed/outputs/model.pt",),
        note="resnet_18_23dataset.pth: a MedicalNet ResNet-18 in its DataParallel release layout, random",
    ),
    Covered(
        "docs/results.md",
        "monai-rd cost --spatial_dims 3 --image_size 96 --batch_size 1 --teacher swin_unetr_ssl --students monai:resnet10",
        "tests/deploy/test_deploy_volumes.py::test_cost_table_on_volumes",
        "about 40 s per 96^3 forward on 2 cores; the named test runs the same 3D cost table at a small size",
    ),
    Run(
        "docs/volumes.md",
        "python -m monai.bundle download_large_files --bundle_path bundles/rd_mosmed",
        "mosmed",
        expect=("bundles/rd_mosmed/models/model_swinvit.pt",),
        note="large_files.yml points at a file:// URL of a model_swinvit.pt fabricated in MONAI's release layout",
    ),
    Run(
        "docs/volumes.md",
        f"python -m monai.bundle run --config_file bundles/rd_mosmed/configs/train.json {MOSMED_DATA}",
        "mosmed",
        expect=("bundles/rd_mosmed/outputs/model.pt",),
    ),
    Covered(
        "docs/volumes.md",
        "--teacher medicalnet_resnet18 --teacher_weights resnet_18_23dataset.pth",
        "tests/project/test_docs_commands.py::test_documented_commands_run_as_written",
        "a fragment of the command above: docs/results.md's MosMed command with these arguments is run (group mosmed)",
    ),
    Covered(
        "docs/volumes.md",
        '--teacher slicewise:pmc_clip_rn50 --teacher_weights "image_encoder(resnet50).pth" --teacher_input_size 224',
        "tests/bundle/test_bundle_rd_mosmed.py::test_train_with_slicewise_2d_teacher",
        "a ResNet-50 at 224 px on every slice of every volume: minutes on 2 cores; the named test trains rd_mosmed "
        "with a slice-wise PMC-CLIP teacher at a small input size",
    ),
    Run(
        "docs/volumes.md",
        "monai-rd cache-features --config_file bundles/rd_mosmed/configs/train.json --dataset_dir ... --feature_cache /data/cache",
        "mosmed",
        run="monai-rd cache-features --config_file bundles/rd_mosmed/configs/train.json --dataset_dir /data/MosMedData/COVID19_1110 --set labeling binary --feature_cache /data/cache",
        expect=("data/cache",),
        note="`...`: the MosMed folder of the training command (and its --labeling binary)",
    ),
    Run(
        "docs/volumes.md",
        "python -m monai.bundle run --config_file bundles/rd_mosmed/configs/train.json --dataset_dir /data/MosMedData/COVID19_1110 --labeling binary --feature_cache /data/cache",
        "mosmed",
        expect=("bundles/rd_mosmed/outputs/model.pt",),
    ),
    Run(
        "docs/volumes.md",
        "python -m monai.bundle run --config_file \"['bundles/rd_mosmed/configs/train.json','bundles/rd_mosmed/configs/evaluate.json']\" ...",
        "mosmed",
        run="python -m monai.bundle run --config_file \"['bundles/rd_mosmed/configs/train.json','bundles/rd_mosmed/configs/evaluate.json']\"",
        expect=("bundles/rd_mosmed/outputs/eval/test/metrics.csv",),
        note="`...`: nothing more is needed, the training run's output_dir is the default one",
    ),
    Run(
        "docs/volumes.md",
        "python -m monai.bundle run --config_file bundles/rd_mosmed/configs/inference.json --input_dir <NIfTI files and/or DICOM series folders>",
        "mosmed",
        expect=("bundles/rd_mosmed/outputs/predictions.csv",),
    ),
    Covered(
        "docs/volumes.md",
        "monai-rd export --ckpt bundles/rd_mosmed/outputs/model.pt --student monai:resnet10 --image_size 96",
        "tests/deploy/test_deploy_volumes.py::test_3d_student_onnx_and_torchscript_parity",
        "eager, TorchScript and ONNX forwards of a 96^3 ResNet-10 at batch 1 and 3: minutes on 2 cores; the named "
        "test exports a 3D student with the same parity check at a small size",
    ),
    Covered(
        "docs/volumes.md",
        "monai-rd cost --spatial_dims 3 --image_size 96 --batch_size 1 --teacher swin_unetr_ssl --students monai:resnet10 monai:resnet18",
        "tests/deploy/test_deploy_volumes.py::test_cost_table_on_volumes",
        "as the README's 3D cost command",
    ),
    Covered(
        "docs/volumes.md",
        "python -m monai.bundle run --config_file bundles/rd_clinical/configs/train.json --dataset_dir /data/my_ct_study --spatial_dims 3",
        "tests/bundle/test_bundle_rd_clinical.py::test_spatial_dims_3_trains_a_3d_student_on_whole_volumes",
        "the default slice-wise PMC-CLIP teacher runs a ResNet-50 at 224 px on every slice: minutes on 2 cores; the "
        "named test runs --spatial_dims 3 through the bundle with a small slice-wise teacher",
    ),
    Covered(
        "docs/volumes.md",
        "python -m monai.bundle run --config_file bundles/rd_clinical/configs/inference.json --output_dir bundles/rd_clinical/outputs --input_dir <NIfTI files and/or DICOM series folders>",
        "tests/bundle/test_bundle_rd_clinical.py::test_spatial_dims_3_trains_a_3d_student_on_whole_volumes",
        "needs the training above; the named test runs inference.json on a NIfTI file and a DICOM series folder",
    ),
    # -------------------------------------------------------------------------- docs/results.md: benchmarks
    *[
        Covered(
            "docs/results.md",
            c,
            "tests/experiments/test_bench.py::test_benchmark_runs_end_to_end_on_cpu",
            "a benchmark (minutes to tens of minutes at these sizes); the named test runs the script end to end at a "
            "tiny size and the parse test checks these exact arguments",
        )
        for c in (
            "OMP_NUM_THREADS=1 nice -n 19 monai-rd bench --teachers resnet50 --students resnet18 mobilenet_v3_small --image_size 112 --images_per_class 4 --batch_size 4 --teacher_batch_size 8 --views 2 --epochs 1 --threads 1 --build_workers 1",
            "OMP_NUM_THREADS=1 nice -n 19 monai-rd bench --teachers resnet50 --students mobilenet_v3_small resnet18 --image_size 112 --images_per_class 16 --batch_size 4 --teacher_batch_size 16 --views 2 --epochs 2 --threads 1 --build_workers 1 --no_memory",
            "OMP_NUM_THREADS=1 nice -n 19 monai-rd bench --teachers torchvision:resnet18 lvmmed_vit_b --students resnet18 mobilenet_v3_small --image_size 32 --images_per_class 4 --batch_size 4 --teacher_batch_size 8 --threads 1",
            "OMP_NUM_THREADS=1 monai-rd bench --teachers resnet50 --student mobilenet_v3_small --image_size 96 --images_per_class 12 --views 2 --epochs 1 --threads 1",
            "OMP_NUM_THREADS=1 monai-rd bench --teachers lvmmed_vit_b --student mobilenet_v3_small --image_size 96 --images_per_class 12 --views 2 --epochs 1 --threads 1",
            "OMP_NUM_THREADS=1 monai-rd bench --teachers resnet50 lvmmed_vit_b --student mobilenet_v3_small --image_size 96 --images_per_class 12 --views 2 --epochs 1 --threads 1 --build_repeats 3",
        )
    ],
    # ----------------------------------------------------------------------------------------- docs/export.md
    Covered(
        "docs/export.md",
        "monai-rd cost --teacher resnet50 --students resnet18 mobilenet_v2 shufflenet_v2_x1_0 --image_size 224 --batch_size 8 --warmup 3 --repeats 5 [--threads N] [--csv cost.csv] [--markdown cost.md]",
        "tests/deploy/test_cost.py::test_cli_cost",
        "three backends x four networks at batch 8 x 224 px, 8 repeats: minutes on 2 cores; the named test runs "
        "`monai-rd cost` with --csv/--markdown at a small size",
    ),
    Covered(
        "docs/export.md",
        'MLFLOW_TRACKING_URI=sqlite:///outputs/mlruns.db mlflow models serve -m "models:/rd_busi_student@champion" --env-manager local -h 127.0.0.1 -p 5001',
        SERVE_TEST,
        "a server on a fixed port; the named test serves the registered model with this command on a free port",
    ),
    Covered(
        "docs/export.md",
        'curl -s -H \'Content-Type: application/json\' -d "{\\"inputs\\": [\\"$(base64 -w0 image.png)\\", \\"$(base64 -w0 slice.dcm)\\"]}" http://127.0.0.1:5001/invocations',
        SERVE_TEST,
        "needs the server above; the named test posts base64 PNG and DICOM files",
    ),
    Covered("docs/export.md", "apps/monailabel/install.sh ~/.venvs/monailabel", LABEL_TEST, INSTALL_WHY),
    Covered(
        "docs/export.md",
        "~/.venvs/monailabel/bin/monailabel start_server --app apps/monailabel --studies /path/to/studies --conf bundle apps/monailabel/model/rd_busi",
        LABEL_TEST,
        "needs the MONAI Label venv (skipped without MONAI_RD_LABEL_VENV; CI sets it); the named test starts this server",
    ),
    Covered(
        "docs/export.md",
        'curl -F "file=@image.png" -F \'params={"device":"cpu"}\' "http://127.0.0.1:8000/infer/rd_busi?output=json"',
        LABEL_TEST,
        "needs the server above; the named test posts a PNG and a DICOM file the same way",
    ),
    Covered("docs/export.md", "apps/monai_deploy/install.sh ~/.venvs/monai_deploy", DEPLOY_TEST, INSTALL_WHY),
    Covered(
        "docs/export.md",
        "~/.venvs/monai_deploy/bin/python apps/monai_deploy/app.py -i <dicom study folder> -o out -m <serving folder>",
        DEPLOY_TEST,
        "needs the MONAI Deploy venv (skipped without MONAI_RD_DEPLOY_VENV; CI sets it); the named test runs the app",
    ),
    Covered(
        "docs/export.md",
        "~/.venvs/monai_deploy/bin/python -m apps.monai_deploy -i ... -o ... -m ...",
        DEPLOY_TEST,
        "as above, the module form",
    ),
    Covered(
        "docs/export.md",
        "monai-deploy package apps/monai_deploy -c apps/monai_deploy/app.yaml -m <serving folder> -t rd-classifier:1.0 --platform x86_64 -l DEBUG",
        DEPLOY_TEST,
        "needs docker (not available here or in CI); only the app it packages is tested",
    ),
    Covered(
        "docs/export.md",
        "monai-deploy run rd-classifier-x64-workstation-dgpu-linux-amd64:1.0 -i <dicom folder> -o out",
        DEPLOY_TEST,
        "needs docker and the packaged image; only the app is tested",
    ),
    # ----------------------------------------------------------------------------------------- docs/mlflow.md
    Covered(
        "docs/mlflow.md",
        "mlflow ui --backend-store-uri sqlite:///$PWD/outputs/mlruns.db --port 5000",
        "tests/bundle/test_mlflow_bundle.py::test_bundle_run_logs_reports_and_registers_to_sqlite",
        "an interactive UI server on a fixed port; the named test reads that SQLite store with MLflow's own client",
    ),
    Covered(
        "docs/mlflow.md",
        "mlflow server --host 127.0.0.1 --port 5000 --backend-store-uri sqlite:///$PWD/mlflow/backend.db --artifacts-destination $PWD/mlflow/artifacts --serve-artifacts",
        "tests/bundle/test_mlflow_bundle.py::test_server_killed_mid_run_training_finishes_and_says_what_was_not_logged",
        "a server on a fixed port; tests/conftest.py:start_mlflow_server starts exactly this command on a free port",
    ),
    Covered(
        "docs/mlflow.md",
        "MLFLOW_TRACKING_URI=http://127.0.0.1:5000 python -m monai.bundle run --config_file bundles/rd_busi/configs/train.json --dataset_dir D --output_dir O",
        "tests/bundle/test_mlflow_bundle.py::test_server_killed_mid_run_training_finishes_and_says_what_was_not_logged",
        "needs the server above; the named test trains the bundle against a real `mlflow server`",
    ),
    # --------------------------------------------------------------------------------------- docs/protocol.md
    Covered(
        "docs/protocol.md",
        "monai-rd reproduce --grid grids/cpu_small.yaml --fabricate --output_dir runs/cpu_small",
        "tests/experiments/test_protocol.py::test_two_fold_grid_reports_the_test_split",
        "the whole CPU grid trains many cells (tens of minutes); the named test runs a small grid through the bundles",
    ),
    Covered(
        "docs/protocol.md",
        "monai-rd reproduce --grid grids/paper_table3.yaml --output_dir runs/table3",
        "tests/experiments/test_protocol.py::test_grid_runs_records_failure_and_resumes",
        "the paper's grid: real data and GPUs",
    ),
    Covered(
        "docs/protocol.md",
        "monai-rd reproduce --grid grids/paper_table3.yaml --output_dir runs/table3 --only busi__",
        "tests/experiments/test_protocol.py::test_grid_runs_records_failure_and_resumes",
        "real data and GPUs; the parse test checks --only",
    ),
    Covered(
        "docs/protocol.md",
        "monai-rd reproduce --grid grids/paper_table2_ablation.yaml --fabricate --fast_run",
        "tests/experiments/test_protocol.py::test_fast_run_starts_each_table2_row_through_the_bundle",
        "150 cells of 40-80 s each on 2 cores (an RD cell: 78 s measured here, machine shared); the named test runs one cell per row of this grid with these flags",
    ),
    Covered(
        "docs/protocol.md",
        "monai-rd reproduce --grid grids/paper_table3.yaml --output_dir runs/table3 --report_only",
        "tests/experiments/test_protocol.py::test_tables_match_hand_computed_values",
        "needs the runs above; the parse test checks --report_only",
    ),
    *[
        Covered(
            doc,
            c,
            PARSE_TEST,
            "a benchmark of tens of minutes with no smaller test; the named test parses these exact "
            "arguments with the script's own parser",
        )
        for doc, c in (
            (
                "docs/protocol.md",
                "OMP_NUM_THREADS=1 PYTHONPATH=$PWD python benchmarks/modality_gap.py --seeds 0 1 2 --workdir /tmp/gap --json /tmp/gap/results.json",
            ),
            (
                "docs/protocol.md",
                "OMP_NUM_THREADS=1 PYTHONPATH=$PWD python benchmarks/modality_gap.py --seeds 0 1 2 --train_per_class 40 --teacher_weights /tmp/gap/source_teacher_resnet18.pt --json /tmp/gap/results_40.json",
            ),
            (
                "docs/speed.md",
                "OMP_NUM_THREADS=1 nice -n 19 python benchmarks/modality_gap.py --seeds 0 --student mobilenet_v3_small --source_images 1200 --source_epochs 6 --only_rd --rd_reprogrammers full budget:0.25 budget:0.1",
            ),
            (
                "docs/speed.md",
                "OMP_NUM_THREADS=1 nice -n 19 python benchmarks/modality_gap.py --student resnet18 --rd_reprogrammers full width:64 width:128 --seeds 0 1 2 --source_images 3000 --source_epochs 8 --only_rd --threads 1",
            ),
            (
                "docs/methods.md",
                "OMP_NUM_THREADS=1 PYTHONPATH=$PWD python benchmarks/rd_dynamics.py --seeds 0 1 2 --epochs 15 60 --train_per_class 16 --workdir /tmp/gap --json /tmp/gap/rd_dyn_16.json --curves /tmp/gap/curves",
            ),
            (
                "docs/methods.md",
                "OMP_NUM_THREADS=1 PYTHONPATH=$PWD python benchmarks/rd_dynamics.py --seeds 0 1 2 --epochs 15 60 --train_per_class 40 --workdir /tmp/gap --json /tmp/gap/rd_dyn_40.json",
            ),
            (
                "docs/methods.md",
                "OMP_NUM_THREADS=1 PYTHONPATH=$PWD python benchmarks/rd_dynamics.py --seeds 0 1 2 --epochs 15 --train_per_class 16 --workdir /tmp/gap --rd cotrain_only cotrain_only+head_from_student --no_direct",
            ),
            (
                "docs/methods.md",
                "OMP_NUM_THREADS=1 PYTHONPATH=$PWD python benchmarks/rd_dynamics.py --seeds 0 1 2 --epochs 15 60 --train_per_class 16 --rd default+teacher_warmup --no_direct --workdir /tmp/gap --json /tmp/gap/rd_dyn_16_tw.json --curves /tmp/gap/curves_tw",
            ),
            (
                "docs/methods.md",
                "OMP_NUM_THREADS=1 PYTHONPATH=$PWD python benchmarks/rd_dynamics.py --seeds 0 1 2 --epochs 15 60 --train_per_class 40 --rd default+teacher_warmup --no_direct --workdir /tmp/gap --json /tmp/gap/rd_dyn_40_tw.json --curves /tmp/gap/curves_tw",
            ),
            (
                "docs/methods.md",
                "OMP_NUM_THREADS=1 PYTHONPATH=$PWD python benchmarks/rd_dynamics.py --seeds 0 1 2 --epochs 15 --train_per_class 40 --batch_size 32 --rd default default+teacher_warmup --no_direct --workdir /tmp/gap --json /tmp/gap/rd_dyn_40_bs32.json",
            ),
            (
                "docs/methods.md",
                "OMP_NUM_THREADS=1 PYTHONPATH=$PWD python benchmarks/rd_dynamics.py --seeds 0 1 2 --epochs 15 --train_per_class 40 --cka_memory 32 --rd default default+teacher_warmup --no_direct --workdir /tmp/gap --json /tmp/gap/rd_dyn_40_mem32.json",
            ),
            (
                "docs/methods.md",
                "OMP_NUM_THREADS=1 PYTHONPATH=$PWD python benchmarks/rd_dynamics.py --seeds 0 1 2 --epochs 240 --train_per_class 16 --rd default --no_direct --workdir /tmp/gap --json /tmp/gap/rd_dyn_16_240.json",
            ),
            (
                "docs/methods.md",
                "OMP_NUM_THREADS=1 PYTHONPATH=$PWD python benchmarks/rd_dynamics.py --seeds 0 1 2 --epochs 15 60 --train_per_class 16 --rd default --no_direct --workdir /tmp/gap --json /tmp/gap/rd_dyn_16_default.json",
            ),
            (
                "docs/methods.md",
                "OMP_NUM_THREADS=1 PYTHONPATH=$PWD python benchmarks/rd_dynamics.py --seeds 0 1 2 --epochs 15 60 --train_per_class 40 --rd default --no_direct --workdir /tmp/gap --json /tmp/gap/rd_dyn_40_default.json",
            ),
            (
                "docs/methods.md",
                "OMP_NUM_THREADS=1 PYTHONPATH=$PWD python benchmarks/rd_dynamics.py --seeds 3 4 --epochs 15 60 --train_per_class 16 --rd default default+teacher_warmup --no_direct --workdir /tmp/gap --json /tmp/gap/rd_dyn_16_s34.json",
            ),
            (
                "docs/methods.md",
                "OMP_NUM_THREADS=1 PYTHONPATH=$PWD python benchmarks/rd_dynamics.py --seeds 3 4 --epochs 15 60 --train_per_class 40 --rd default default+teacher_warmup --no_direct --workdir /tmp/gap --json /tmp/gap/rd_dyn_40_s34.json",
            ),
            (
                "docs/methods.md",
                "OMP_NUM_THREADS=1 PYTHONPATH=$PWD python benchmarks/rd_dynamics.py --seeds 3 4 --epochs 240 --train_per_class 16 --rd default --no_direct --workdir /tmp/gap --json /tmp/gap/rd_dyn_16_240_s34.json",
            ),
            (
                "docs/methods.md",
                "OMP_NUM_THREADS=1 PYTHONPATH=$PWD python benchmarks/rd_dynamics.py --seeds 0 1 2 3 4 --epochs 15 --train_per_class 40 --batch_size 32 --rd default default+teacher_warmup --no_direct --workdir /tmp/gap --json /tmp/gap/rd_dyn_40_bs32_s5.json",
            ),
            (
                "docs/methods.md",
                "OMP_NUM_THREADS=1 PYTHONPATH=$PWD python benchmarks/rd_dynamics.py --plot_seeds benchmarks/results/rd_dynamics_5_seeds.json docs/images/rd_vs_student_5_seeds.png",
            ),
            (
                "docs/methods.md",
                "OMP_NUM_THREADS=1 PYTHONPATH=$PWD python benchmarks/rd_dynamics.py --seeds 0 1 2 3 4 --epochs 15 --train_per_class 16 --rd default default+teacher_warmup default+g_lr0.1 default+teacher_warmup+g_lr0.1 warmup+teacher_warmup+g_lr0.1 --no_direct --workdir /tmp/gap --json /tmp/gap/g_lr_16_15.json",
            ),
            (
                "docs/methods.md",
                "OMP_NUM_THREADS=1 PYTHONPATH=$PWD python benchmarks/rd_dynamics.py --seeds 0 1 2 3 4 --epochs 15 --train_per_class 40 --rd default default+teacher_warmup default+g_lr0.1 default+teacher_warmup+g_lr0.1 warmup+teacher_warmup+g_lr0.1 --no_direct --workdir /tmp/gap --json /tmp/gap/g_lr_40_15.json",
            ),
            (
                "docs/methods.md",
                "OMP_NUM_THREADS=1 PYTHONPATH=$PWD python benchmarks/rd_dynamics.py --seeds 0 1 2 3 4 --epochs 60 --train_per_class 40 --rd default+teacher_warmup+g_lr0.1 --no_direct --no_baselines --workdir /tmp/gap --json /tmp/gap/g_lr_40_60.json",
            ),
            (
                "docs/methods.md",
                "OMP_NUM_THREADS=1 PYTHONPATH=$PWD python benchmarks/rd_dynamics.py --seeds 0 1 2 3 4 --epochs 15 --train_per_class 40 --batch_size 32 --rd default+teacher_warmup+g_lr0.1 --no_direct --workdir /tmp/gap --json /tmp/gap/g_lr_40_bs32.json",
            ),
            (
                "docs/methods.md",
                "OMP_NUM_THREADS=1 PYTHONPATH=$PWD python benchmarks/rd_dynamics.py --seeds 0 1 2 3 4 --epochs 15 --train_per_class 40 --warmup_epochs 240 --rd default+teacher_warmup --no_direct --no_baselines --workdir /tmp/gap --json /tmp/gap/warmup240_40_15.json",
            ),
            (
                "docs/methods.md",
                "OMP_NUM_THREADS=1 PYTHONPATH=$PWD python benchmarks/rd_dynamics.py --seeds 0 1 2 3 4 --epochs 60 --train_per_class 40 --warmup_epochs 240 --rd default+teacher_warmup default+teacher_warmup+g_lr0.1 --no_direct --no_baselines --workdir /tmp/gap --json /tmp/gap/warmup240_40_60.json",
            ),
            (
                "docs/methods.md",
                "OMP_NUM_THREADS=1 PYTHONPATH=$PWD python benchmarks/rd_dynamics.py --seeds 0 1 2 3 4 --epochs 15 --train_per_class 40 --batch_size 32 --warmup_epochs 240 --rd default+teacher_warmup --no_direct --no_baselines --workdir /tmp/gap --json /tmp/gap/warmup240_40_bs32.json",
            ),
            (
                "docs/methods.md",
                "OMP_NUM_THREADS=1 PYTHONPATH=$PWD python benchmarks/rd_dynamics.py --seeds 0 1 2 3 4 --epochs 15 60 --train_per_class 16 --warmup_epochs 240 --rd default+teacher_warmup --no_direct --no_baselines --workdir /tmp/gap --json /tmp/gap/warmup240_16.json",
            ),
            (
                "docs/methods.md",
                "OMP_NUM_THREADS=1 PYTHONPATH=$PWD python benchmarks/rd_dynamics.py --seeds 0 1 2 3 4 --epochs 15 --train_per_class 40 --warmup_epochs 60 --rd default+teacher_warmup default+teacher_warmup+g_lr0.1 --no_direct --no_baselines --workdir /tmp/gap --json /tmp/gap/warmup60_40_15.json",
            ),
            (
                "docs/methods.md",
                "OMP_NUM_THREADS=1 PYTHONPATH=$PWD python benchmarks/rd_dynamics.py --seeds 0 1 2 3 4 --epochs 15 --train_per_class 40 --batch_size 32 --warmup_epochs 60 --rd default+teacher_warmup --no_direct --no_baselines --workdir /tmp/gap --json /tmp/gap/warmup60_40_bs32.json",
            ),
            (
                "docs/methods.md",
                "OMP_NUM_THREADS=1 PYTHONPATH=$PWD python benchmarks/rd_dynamics.py --seeds 0 1 2 3 4 --epochs 15 --train_per_class 40 --rd paper+teacher_warmup+hold_kd --no_direct --no_baselines --workdir /tmp/gap --json /tmp/gap/hold_kd_40_15.json",
            ),
            (
                "docs/methods.md",
                "OMP_NUM_THREADS=1 PYTHONPATH=$PWD python benchmarks/rd_dynamics.py --seeds 0 --epochs 15 --train_per_class 40 --warmup_epochs 240 --rd default default+teacher_warmup --no_direct --no_baselines --workdir /tmp/gap --curves /tmp/gap/curves_warmup240",
            ),
        )
    ],
]

#: placeholders and example paths of each group -> what the workspace fabricates (``{ws}``: the workspace)
GROUP_PLACEHOLDERS = {
    "busi": {
        "<BUSI folder>": "{ws}/data/busi/Dataset_BUSI_with_GT",
        "D": "{ws}/data/busi/Dataset_BUSI_with_GT",
        "/data/Dataset_BUSI_with_GT": "{ws}/data/busi/Dataset_BUSI_with_GT",
        "<output_dir>": "bundles/rd_busi/outputs",
        "<folder of PNG/JPG>": "{ws}/data/busi/Dataset_BUSI_with_GT",
        "/path/to/images": "{ws}/data/busi/Dataset_BUSI_with_GT",
        "/models/ResNet50.pt": "{ws}/abs/models/ResNet50.pt",
        "/models/pmc_clip/checkpoint.pt": "{ws}/abs/models/pmc_clip/checkpoint.pt",
        "/data/rd_busi_cache": "{ws}/data/rd_busi_cache",
    },
    "datasets": {
        "/data/ISIC2018": "{ws}/data/ISIC2018",
        "/data/HAM10000": "{ws}/data/HAM10000",
        "/data/COVID-CT": "{ws}/data/COVID-CT",
        "/data/BTC": "{ws}/data/BTC",
        "/data/ChestX-ray14": "{ws}/data/ChestX-ray14",
    },
    "mosmed": {
        "/data/MosMedData/COVID19_1110": "{ws}/data/COVID19_1110",
        "/data/cache": "{ws}/data/cache",
        "<NIfTI files and/or DICOM series folders>": "{ws}/data/to_predict",
    },
}
