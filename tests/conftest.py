"""Run trial-style tests under pytest the way trial would: in a scratch directory.

``TestCase.mktemp()`` makes paths relative to the working directory; trial runs
in ``_trial_temp``, so under pytest the session moves into a temporary
directory of its own instead of littering the checkout.

The processes the tests start (``twistd aigw``, ``aigw`` commands, test servers)
import the code of this checkout: its root goes first on their ``PYTHONPATH``, so a
virtualenv whose editable install points at another checkout (a second worktree, a
clean clone) never runs that one's code instead.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import hypothesis  # imported early: a late import under pytest hits a CPython 3.11 AST bug
import pytest

# Every property test, not only the fuzz ones (tests/unit/fuzz/strategies.py ``FUZZ``):
# the same examples on every run (a failure in CI is one a developer reproduces) and no
# per-example deadline, which on a shared, loaded machine is a timed assertion that
# fails for the machine, not the code.
hypothesis.settings.register_profile(
    "aigw", deadline=None, derandomize=True, database=None, print_blob=True
)
hypothesis.settings.load_profile("aigw")

ROOT = Path(__file__).resolve().parent.parent
os.environ["PYTHONPATH"] = os.pathsep.join(
    [str(ROOT), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
)


@pytest.fixture(autouse=True, scope="session")
def _scratch_directory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    scratch = tmp_path_factory.mktemp("trial")
    previous = os.getcwd()
    os.chdir(scratch)
    try:
        yield scratch
    finally:
        os.chdir(previous)
