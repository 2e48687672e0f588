"""Build hook: the wheel carries firmware/, hardware/ and packaging/ as package data.

Everything else about the package is declared in setup.cfg. The three folders stay at
the top of the checkout, where people and the firmware tools expect them; built into a
wheel they are copied under edge/_assets/, where edge.assets finds them once installed.
The sdist carries them through MANIFEST.in, so a wheel built from the sdist has them too.
"""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ASSETS = ("firmware", "hardware", "packaging")


class BuildPyWithAssets(build_py):
    def run(self):
        super().run()
        if getattr(self, "editable_mode", False):
            return  # an editable install reads the checkout's own folders
        for name in ASSETS:
            target = Path(self.build_lib) / "edge" / "_assets" / name
            shutil.rmtree(target, ignore_errors=True)
            shutil.copytree(name, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))


setup(cmdclass={"build_py": BuildPyWithAssets})
