"""Build the Debian packages declared in packaging/deb/packages.toml with dpkg-deb (`make deb`).

Each package carries a virtual environment made with Debian 12's /usr/bin/python3 under
/opt/ferry/NAME: the project's wheels and the package's extra are installed into it by the
build venv's pip (`pip --python`), so the shipped venv has no pip of its own. Paths that pip
wrote for the staging tree are rewritten to the installed ones, the console scripts are linked
into /usr/bin, and the unit, conffile, maintainer scripts, copyright and changelog are added.

    python packaging/deb/build.py [--out dist] [--only ferry-agent]
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import re
import shutil
import subprocess
import sys
import tempfile
import textwrap
import tomllib
from email.utils import formatdate
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HERE = ROOT / "packaging" / "deb"
SYSTEM_PYTHON = "/usr/bin/python3"  # Debian 12's: the venv's interpreter on the target host
# .invalid (RFC 2606): the project has no mail domain yet, and this says so rather than invent one
MAINTAINER = "Ferry developers <ferry@ferry.invalid>"
# the venv is tied to the interpreter's minor version (its site-packages path, compiled wheels)
PYTHON_DEPENDS = "python3 (>= 3.11~), python3 (<< 3.12~)"
# procps: the units' ExecReload is /bin/kill, which a minimal Debian 12 lacks (the systemd test's
# first reload failed with status=203/EXEC there). libc6 is added from the ELF files.
DEPENDS = f"{PYTHON_DEPENDS}, adduser, init-system-helpers (>= 1.54~), procps"
# Lintian tags this layout raises on purpose, each with the reason (see docs/packaging.md)


# The lintian errors both packages raise on purpose, overridden in each with the reason (a
# package adds its own in packages.toml); tests/packaging/test_deb.py checks that these, and only
# these, are what lintian reports without the overrides. Its warnings: docs/packaging.md.
OVERRIDES = {
    "dir-or-file-in-opt [opt/ferry/*]": "the venv lives under /opt/ferry, as a vendor package "
    "outside the Debian archive may (FHS 3.13); /usr is for packages built by Debian's tools",
    "embedded-library zlib [opt/ferry/*/site-packages/grpc/_cython/cygrpc.cpython-*.so]": "grpcio's "
    "manylinux wheel links zlib statically; relinking it against Debian's is a grpcio build",
}


SCRIPTS = ("postinst", "prerm", "postrm")  # packaging/deb/scripts/, templates of maintainer scripts


def overrides_of(spec: dict) -> dict[str, str]:
    return OVERRIDES | spec.get("lintian_overrides", {})


def declared() -> dict[str, dict]:
    return tomllib.loads((HERE / "packages.toml").read_text())


def version() -> str:
    """The Debian version: the project's version, Debian revision 1."""
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"] + "-1"


def architecture() -> str:
    return _run(["dpkg", "--print-architecture"]).strip()


def _run(cmd: list[str], check: bool = True, **kw) -> str:
    done = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if check and done.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed ({done.returncode}):\n{done.stdout}{done.stderr}")
    return done.stdout


def source_tree(dest: Path) -> Path:
    """The files git knows (tracked, and new ones not ignored): a build in the work tree would
    pick up its build/ folder, stale modules included."""
    names = _run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT).split("\n")
    for name in filter(None, names):
        if (ROOT / name).is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, dest / name)
    return dest


def wheels(tree: Path, out: Path) -> dict[str, Path]:
    for source in (tree, tree / "client"):
        _run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(out), str(source)])
    return {w.name.split("-")[0]: w for w in out.glob("*.whl")}


def make_venv(stage: Path, venv: str, extra: str, built: dict[str, Path]) -> Path:
    target = stage / venv.lstrip("/")
    _run([SYSTEM_PYTHON, "-m", "venv", "--without-pip", str(target)])
    python = target / "bin" / "python"
    ferry = built["ferry"]
    _run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-compile",
         "--no-warn-script-location", str(built["ferry_client"]), f"{ferry}[{extra}]"]
    )  # fmt: skip
    _relocate(target, venv)
    return target


def _relocate(target: Path, venv: str) -> None:
    """Rewrite what pip and venv wrote for the staging path to the installed path."""
    staged = str(target)
    for script in (target / "bin").iterdir():
        if script.is_symlink() or not script.is_file():
            continue
        text = script.read_bytes()
        if staged.encode() in text:
            script.write_bytes(text.replace(staged.encode(), venv.encode()))
    for name in ("activate", "Activate.ps1", "activate.csh", "activate.fish"):
        (target / "bin" / name).unlink(missing_ok=True)  # the units run bin/ directly: nobody activates it
    cfg = target / "pyvenv.cfg"
    cfg.write_text(cfg.read_text().replace(staged, venv))
    for direct in target.glob("lib/python3*/site-packages/*.dist-info/direct_url.json"):
        direct.unlink()  # names the build's wheel file; the RECORD does not list it by hash
        record = direct.parent / "RECORD"
        record.write_text("".join(r for r in record.read_text().splitlines(True) if "direct_url" not in r))
    for cache in target.rglob("__pycache__"):
        shutil.rmtree(cache)  # postinst compiles on the host
    include = target / "include"
    if include.is_dir() and not any(p.is_file() for p in include.rglob("*")):
        shutil.rmtree(include)  # headers for building extensions in place: nothing is built there
    leftover = _run(["grep", "-rlF", staged, str(target)], check=False).split()
    if leftover:
        raise SystemExit(f"the staging path {staged} is still written in: {leftover[:5]}")


def elf_files(target: Path) -> dict[Path, list[str] | None]:
    """Every ELF file of the venv, with its RUNPATH (None: it has none)."""
    found = (p for p in target.rglob("*") if p.is_file() and not p.is_symlink() and _is_elf(p))
    return {p: _runpath(p) for p in found}


def _is_elf(path: Path) -> bool:
    with path.open("rb") as f:
        return f.read(4) == b"\x7fELF"


def strip(elves: dict[Path, list[str] | None]) -> None:
    """Symbol tables and debug sections out of the wheels' own extension modules, as dh_strip
    does. Not those auditwheel patched (a RUNPATH, or a vendored copy in a *.libs folder):
    `strip` rewrites the layout patchelf left, and numpy's OpenBLAS then failed to load with
    "ELF load command address/offset not page-aligned"."""
    for path, runpath in elves.items():
        if any(part.endswith(".libs") for part in path.parts) or runpath is not None:
            continue
        if "not stripped" in _run(["file", "-b", str(path)]):
            _run(["strip", "--strip-unneeded", "--remove-section=.comment", str(path)])


def _runpath(path: Path) -> list[str] | None:
    found = re.search(r"\((?:RUNPATH|RPATH)\).*\[(.*)\]", _run(["readelf", "-d", str(path)], check=False))
    return found.group(1).split(":") if found else None


def smoke(target: Path, modules: list[str]) -> None:
    """The packaged venv imports its entry points with Debian's python3 (a broken library fails
    the build, not the first start on a host)."""
    code = "import importlib, sys\nfor m in sys.argv[1:]:\n    importlib.import_module(m)\n"
    _run([str(target / "bin" / "python"), "-I", "-B", "-c", code, *modules])  # -B: no __pycache__


def drop_foreign_runpaths(elves: dict[Path, list[str] | None]) -> None:
    """A RUNPATH naming a folder outside the venv (chdb's names its CI runner's build tree) finds
    nothing here, and would load whatever someone later puts there: keep only $ORIGIN entries."""
    for path, entries in elves.items():
        if entries is None:
            continue
        kept = [e for e in entries if e.startswith("$ORIGIN")]
        if kept != entries:
            _run(["patchelf", "--set-rpath", ":".join(kept), str(path)] if kept else
                 ["patchelf", "--remove-rpath", str(path)])  # fmt: skip


def libc_depends(elves: dict[Path, list[str] | None]) -> str:
    """libc6 at the newest GLIBC_x.y symbol version any extension module needs."""
    newest = (2, 17)  # manylinux2014's floor
    for path in elves:
        for found in re.findall(r"GLIBC_(\d+)\.(\d+)", _run(["objdump", "-T", str(path)])):
            newest = max(newest, (int(found[0]), int(found[1])))
    return f"libc6 (>= {newest[0]}.{newest[1]})"


def distributions(target: Path) -> list[dict[str, str]]:
    """Name, version and licence of every distribution in the venv (for the copyright file)."""
    code = (
        "import importlib.metadata as m, json\n"
        "def lic(d):\n"
        "    text = d.metadata.get('License-Expression') or (d.metadata.get('License') or '')\n"
        "    classes = [c.split(' :: ')[-1] for c in d.metadata.get_all('Classifier') or []\n"
        "               if c.startswith('License ::')]\n"
        "    return text.split('\\n')[0][:60] or ', '.join(classes) or 'see its metadata'\n"
        "rows = [{'name': d.metadata['Name'], 'version': d.version, 'license': lic(d)}\n"
        "        for d in m.distributions()]\n"
        "print(json.dumps(sorted(rows, key=lambda r: r['name'].lower())))\n"
    )
    return json.loads(_run([str(target / "bin" / "python"), "-I", "-c", code]))


def copyright_text(dists: list[dict[str, str]], venv: str) -> str:
    bundled = "\n".join(f" {d['name']} {d['version']}: {d['license']}" for d in dists)
    return f"""Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: ferry
Source: https://github.com/ferry/ferry

Files: *
Copyright: 2026 Ferry developers
License: Apache-2.0

Files: {venv}/lib/*
Copyright: the authors of each distribution listed below
License: various
 The virtual environment bundles these Python distributions, each under its own licence
 (their texts are in each one's .dist-info folder):
 .
{bundled}

License: Apache-2.0
 On Debian systems, the full text of the Apache License 2.0 is in
 /usr/share/common-licenses/Apache-2.0.
"""


def changelog(name: str, ver: str) -> bytes:
    text = (
        f"{name} ({ver}) unstable; urgency=medium\n\n"
        "  * Built from the Ferry repository by packaging/deb/build.py.\n\n"
        f" -- {MAINTAINER}  {formatdate(0, localtime=False)}\n"
    )
    return gzip.compress(text.encode(), mtime=0)


def _script(name: str, pkg: str, spec: dict, others: list[str]) -> str:
    text = (HERE / "scripts" / name).read_text()
    return (
        text.replace("@PACKAGE@", pkg)
        .replace("@UNIT@", spec["unit"])
        .replace("@VENV@", spec["venv"])
        .replace("@STATE@", " ".join(spec["state"]))
        .replace("@OTHERS@", " ".join(others))
    )


def control(pkg: str, spec: dict, ver: str, arch: str, size_kib: int, libc: str) -> str:
    text = " ".join(spec["description"].split())
    body = "\n".join(" " + line for line in textwrap.wrap(text, 79))
    return (
        f"Package: {pkg}\nVersion: {ver}\nArchitecture: {arch}\nMaintainer: {MAINTAINER}\n"
        f"Installed-Size: {size_kib}\nDepends: {DEPENDS}, {libc}\nSection: {spec['section']}\n"
        f"Priority: optional\nHomepage: https://github.com/ferry/ferry\n"
        f"Description: {spec['synopsis']}\n{body}\n"
    )


def build(pkg: str, spec: dict, others: list[str], built: dict[str, Path], out: Path, work: Path) -> Path:
    stage = work / pkg
    target = make_venv(stage, spec["venv"], spec["extra"], built)
    ver, arch, dists = version(), architecture(), distributions(target)
    present = {d["name"].lower() for d in dists}
    leaked = sorted(present & {f.lower() for f in spec["forbidden"]})
    if leaked:
        raise SystemExit(f"{pkg}: its venv must not carry {leaked}")
    _drop_scripts(target, keep=spec["scripts"])
    elves = elf_files(target)
    strip(elves)
    drop_foreign_runpaths(elves)
    smoke(target, spec["imports"])
    usr_bin = stage / "usr" / "bin"
    usr_bin.mkdir(parents=True)
    for script in spec["scripts"]:
        (usr_bin / script).symlink_to(f"{spec['venv']}/bin/{script}")
    _install(ROOT / "systemd" / spec["unit"], stage / "lib/systemd/system" / spec["unit"], 0o644)
    _install(ROOT / "packaging/config" / spec["conffile"], stage / "etc/ferry" / spec["conffile"], 0o644)
    doc = stage / "usr/share/doc" / pkg
    _install(ROOT / "README.md", doc / "README.md", 0o644)
    (doc / "copyright").write_text(copyright_text(dists, spec["venv"]))
    (doc / "changelog.Debian.gz").write_bytes(changelog(pkg, ver))
    overrides = stage / "usr/share/lintian/overrides" / pkg
    overrides.parent.mkdir(parents=True)
    overrides.write_text("".join(f"# {why}\n{pkg}: {tag}\n" for tag, why in overrides_of(spec).items()))
    meta = stage / "DEBIAN"
    meta.mkdir()
    for name in SCRIPTS:
        (meta / name).write_text(_script(name, pkg, spec, others))
    (meta / "conffiles").write_text(f"/etc/ferry/{spec['conffile']}\n")
    size = int(_run(["du", "-sk", "--exclude=DEBIAN", str(stage)]).split()[0])
    (meta / "control").write_text(control(pkg, spec, ver, arch, size, libc_depends(elves)))
    for path in stage.rglob("*"):
        if not path.is_symlink():
            # executables: the venv's bin and the maintainer scripts; the rest (extension
            # modules included, as Debian's policy has shared objects) 0644
            runs = path.is_dir() or path.parent == target / "bin" or path.name in SCRIPTS
            path.chmod(0o755 if runs else 0o644)
    (meta / "md5sums").write_text(
        "".join(
            f"{hashlib.md5(p.read_bytes()).hexdigest()}  {p.relative_to(stage)}\n"
            for p in sorted(stage.rglob("*"))
            if p.is_file() and not p.is_symlink() and meta not in p.parents
        )
    )
    deb = out / f"{pkg}_{ver}_{arch}.deb"
    kind, level = spec["compress"].split(":")
    _run(["dpkg-deb", "--root-owner-group", f"-Z{kind}", f"-z{level}", "--build", str(stage), str(deb)])
    return deb


def _drop_scripts(target: Path, keep: list[str]) -> None:
    """The one `ferry` distribution declares every console script; a package keeps its own
    (the agent's venv has no store, so its ferry-collector could only fail)."""
    declared_scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    for name in set(declared_scripts) - set(keep):
        (target / "bin" / name).unlink(missing_ok=True)


def _install(src: Path, dest: Path, mode: int) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dest)
    dest.chmod(mode)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "dist")
    parser.add_argument("--only", action="append", help="build only this package (repeatable)")
    args = parser.parse_args(argv)
    specs = declared()
    unknown = set(args.only or ()) - set(specs)
    if unknown:
        parser.error(f"unknown package {sorted(unknown)}; declared: {sorted(specs)}")
    if not Path(SYSTEM_PYTHON).exists():
        parser.error(f"{SYSTEM_PYTHON} is missing: the packages are built with Debian 12's python3")
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="ferry-deb-") as tmp:
        work = Path(tmp)
        built = wheels(source_tree(work / "tree"), work / "wheels")
        for pkg, spec in specs.items():
            if args.only and pkg not in args.only:
                continue
            deb = build(pkg, spec, [p for p in specs if p != pkg], built, args.out, work)
            print(f"{deb.relative_to(ROOT) if deb.is_relative_to(ROOT) else deb}  {deb.stat().st_size:,} B")
    return 0


if __name__ == "__main__":
    sys.exit(main())
