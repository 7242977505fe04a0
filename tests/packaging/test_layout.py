"""One namespace: the folders agent/, collector/ and client/ are ferry.agent, ferry.collector and
ferry.client, never top-level packages, even from the repository root (where Python puts the
current directory first on sys.path)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.paths import ROOT


@pytest.mark.parametrize("name", ["agent", "collector", "client"])
def test_a_folder_is_no_top_level_package(name):
    done = subprocess.run([sys.executable, "-c", f"import {name}"], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 1
    assert f"the folder {name}/ is imported as ferry.{name}" in done.stderr


def test_the_packages_import_under_ferry():
    code = "import ferry.agent.main, ferry.collector.main, ferry.client, ferry.v1.local_pb2, ferry.wire.codec"
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
