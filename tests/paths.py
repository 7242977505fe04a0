"""Where things are in the repository, for tests in any folder."""

import importlib.util
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[1]
APPS = ROOT / "tests" / "apps"


def deb_builder() -> ModuleType:
    """packaging/deb/build.py (`make deb`), a script in a folder that is no package, as a module."""
    spec = importlib.util.spec_from_file_location("ferry_deb_build", ROOT / "packaging" / "deb" / "build.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
