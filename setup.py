"""Build hook: ship the top-level ``transforms/*.json`` modality presets and the ``bundles/`` inside the package.

The repository's ``transforms/`` and ``bundles/`` folders are the source of truth; the build copies them to
``monai_rd/transforms/presets/`` and ``monai_rd/bundles/`` in the wheel, so ``monai_rd.transforms.load_preset``
and ``monai_rd.bundle.bundle_root`` (``monai-rd bundle path rd_busi``) work after a non-editable install.
Everything else is configured in setup.cfg.
"""

import glob
import os
import shutil

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = os.path.dirname(os.path.abspath(__file__))


class BuildPyWithPresets(build_py):
    """``build_py`` that also copies ``transforms/*.json`` to ``<build_lib>/monai_rd/transforms/presets/`` and
    ``bundles/`` (without run outputs) to ``<build_lib>/monai_rd/bundles/``."""

    def run(self):
        super().run()
        presets = sorted(glob.glob(os.path.join(HERE, "transforms", "*.json")))
        if not presets:
            raise RuntimeError(f"No presets in {os.path.join(HERE, 'transforms')}; the source tree is incomplete.")
        target = os.path.join(self.build_lib, "monai_rd", "transforms", "presets")
        os.makedirs(target, exist_ok=True)
        for path in presets:
            shutil.copyfile(path, os.path.join(target, os.path.basename(path)))
        bundles = os.path.join(HERE, "bundles")
        if not os.path.isdir(bundles):
            raise RuntimeError(f"No {bundles}; the source tree is incomplete.")
        target = os.path.join(self.build_lib, "monai_rd", "bundles")
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(bundles, target, ignore=shutil.ignore_patterns("outputs", "models", "eval", "__pycache__"))


setup(cmdclass={"build_py": BuildPyWithPresets})
