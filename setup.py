"""Build hook: ship the top-level ``transforms/*.json`` modality presets inside the package.

The repository's ``transforms/`` folder is the source of truth; the build copies it to
``monai_rd/transforms/presets/`` in the wheel so ``monai_rd.transforms.load_preset`` works after a
non-editable install. Everything else is configured in setup.cfg.
"""

import glob
import os
import shutil

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = os.path.dirname(os.path.abspath(__file__))


class BuildPyWithPresets(build_py):
    """``build_py`` that also copies ``transforms/*.json`` to ``<build_lib>/monai_rd/transforms/presets/``."""

    def run(self):
        super().run()
        presets = sorted(glob.glob(os.path.join(HERE, "transforms", "*.json")))
        if not presets:
            raise RuntimeError(f"No presets in {os.path.join(HERE, 'transforms')}; the source tree is incomplete.")
        target = os.path.join(self.build_lib, "monai_rd", "transforms", "presets")
        os.makedirs(target, exist_ok=True)
        for path in presets:
            shutil.copyfile(path, os.path.join(target, os.path.basename(path)))


setup(cmdclass={"build_py": BuildPyWithPresets})
