"""The built wheels: `ferry` is their only top-level package, the two distributions never ship
the same file, and ferry-client alone, in a fresh venv, sends to a real agent with nothing but
grpcio and protobuf installed beside it."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import pytest

from tests.integration.procs import collector_and_agent, wait_for
from tests.paths import APPS, ROOT, deb_builder

pytestmark = pytest.mark.integration  # builds wheels and a venv, starts processes

HEAVY = ("numpy", "lz4", "chdb", "orjson", "clickhouse_connect", "psutil", "pyarrow")


@pytest.fixture(scope="module")
def wheels(tmp_path_factory) -> dict[str, Path]:
    # as `make deb` builds them: from a copy of the files git knows, without their dependencies
    builder = deb_builder()
    tree = builder.source_tree(tmp_path_factory.mktemp("tree"))
    built = builder.wheels(tree, tmp_path_factory.mktemp("wheels"))
    return {"ferry": built["ferry"], "ferry-client": built["ferry_client"]}


def _files(wheel: Path) -> list[str]:
    with zipfile.ZipFile(wheel) as z:
        return [n for n in z.namelist() if ".dist-info/" not in n]


def test_ferry_is_the_only_top_level_package_and_no_file_is_shipped_twice(wheels):
    main, client = _files(wheels["ferry"]), _files(wheels["ferry-client"])
    assert {n.split("/")[0] for n in main + client} == {"ferry"}
    assert set(main).isdisjoint(client)
    assert {
        "ferry/__init__.py",
        "ferry/client/__init__.py",
        "ferry/v1/local_pb2.py",
        "ferry/limits.py",
    } <= set(client)
    assert not [n for n in client if n.startswith(("ferry/agent/", "ferry/collector/", "ferry/wire/"))]
    assert {"ferry/agent/main.py", "ferry/collector/main.py", "ferry/wire/codec.py"} <= set(main)
    for typed in ("ferry/py.typed", "ferry/client/py.typed", "ferry/v1/py.typed"):
        assert typed in client
    for typed in ("ferry/agent/py.typed", "ferry/collector/py.typed"):
        assert typed in main
    folders = {"ferry/agent/": "agent/", "ferry/collector/": "collector/", "ferry/client/": "client/"}

    def source(name: str) -> Path:
        for package, folder in folders.items():
            if name.startswith(package):
                return ROOT / (folder + name.removeprefix(package))
        return ROOT / "proto" / name

    assert [n for n in main + client if not source(n).is_file()] == []  # nothing stale, nothing made up
    # and nothing left out: every module of the code folders is in one wheel or the other (a
    # package missing from pyproject's list was missing from the wheel, editable installs hid it)
    shipped = {source(n).resolve() for n in main + client if n.endswith(".py")}
    code = [
        *(ROOT / "agent").rglob("*.py"),
        *(ROOT / "collector").rglob("*.py"),
        *(ROOT / "proto/ferry").rglob("*.py"),
    ]
    assert sorted(str(f.relative_to(ROOT)) for f in code if f.resolve() not in shipped) == []


@pytest.fixture
def venv(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("client-venv")
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_the_client_alone_in_a_fresh_venv_sends_to_a_real_agent(wheels, venv, tmp_path):
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    py = venv / "bin" / "python"
    subprocess.run(
        [py, "-m", "pip", "install", "--quiet", str(wheels["ferry-client"])],
        check=True,
        capture_output=True,
        timeout=300,
    )
    listed = subprocess.run(
        [py, "-m", "pip", "list", "--format", "json"], check=True, capture_output=True, text=True
    ).stdout
    installed = {d["name"].lower().replace("_", "-") for d in json.loads(listed)}
    assert {"ferry-client", "grpcio", "protobuf"} <= installed
    assert not installed & {m.replace("_", "-") for m in HEAVY}
    requires = subprocess.run(
        [py, "-c", "import importlib.metadata as m; print(sorted(m.requires('ferry-client')))"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    assert requires.strip() == "['grpcio<2,>=1.85', 'protobuf<8,>=7.35.1']"

    sock_dir = Path(tempfile.mkdtemp(prefix="ferry-cv-"))  # unix socket paths stay under 108 bytes
    socket_path = sock_dir / "agent.sock"
    flags = ("--collectors", "", "--batch-max-age", "1s", "--local-socket", str(socket_path))
    # the sample app (tests/apps/sample_app.py) run by the fresh venv's python, from a directory
    # outside the repository; afterwards it reports which of the heavy modules got imported
    script = (
        "import importlib.util, json, runpy, sys\n"
        f"sys.argv = [{str(APPS / 'sample_app.py')!r}, {f'unix:{socket_path}'!r}, 'burst']\n"
        "runpy.run_path(sys.argv[0], run_name='__main__')\n"
        f"heavy = {HEAVY!r}\n"
        "print(json.dumps({'imported': [m for m in heavy if m in sys.modules],\n"
        "    'importable': [m for m in heavy if importlib.util.find_spec(m)],\n"
        "    'agent': importlib.util.find_spec('ferry.agent') is not None}))\n"
    )
    from ferry.collector.query.client import query_range

    with collector_and_agent(tmp_path, *flags) as (collector, _agent):
        done = subprocess.run(
            [py, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False
        )
        assert done.returncode == 0 and not done.stderr, done.stderr
        stats, report = (json.loads(line) for line in done.stdout.splitlines()[-2:])
        assert stats["flushed"] and stats["dropped"] == 0, stats
        assert report == {"imported": [], "importable": [], "agent": False}

        def routes() -> dict[str, float]:
            resp = query_range(collector.addr, "app.requests", agg="sum", window_ms=600_000, by=["route"])
            return {s.labels["route"]: s.value[-1] for s in resp.series if s.value}

        wait_for(lambda: sum(routes().values()) == 100_000, 60, what="100k increments stored")
        assert routes() == {f"/r{i}": 10_000.0 for i in range(10)}
    socket_path.unlink(missing_ok=True)
    sock_dir.rmdir()
