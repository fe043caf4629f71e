"""setuptools hook (everything else is in pyproject.toml): installs agentgym-gymnasium.pth.

The .pth file goes next to the installed packages (also with ``pip install -e``), so that
``gymnasium.make("agentgym/...")`` works after ``import gymnasium`` alone (see
_agentgym_gymnasium.py; Gymnasium 1.x has no plugin entry points).
"""

from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

PTH = "agentgym-gymnasium.pth"


class BuildPyWithPth(build_py):
    """build_py that also writes the .pth into the wheel's root (the editable wheel's too)."""

    def run(self) -> None:
        super().run()
        roots = [self.build_lib]
        if getattr(self, "editable_mode", False):  # the editable wheel is built from here
            roots.append(self.distribution.get_command_obj("install").install_lib)
        source = str(Path(__file__).parent / PTH)
        for root in filter(None, roots):
            self.copy_file(source, str(Path(root) / PTH), preserve_mode=False)


setup(cmdclass={"build_py": BuildPyWithPth})
