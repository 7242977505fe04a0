"""The docs stay true to the repository: generated pages are fresh, links and paths resolve, and
README's Architecture tree is the tree that is committed."""

from __future__ import annotations

import importlib.util
import re
import subprocess
from pathlib import Path

import pytest

from tests.paths import ROOT

PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")
# a path into the repository written in backticks: `agent/spool.py`, `tests/integration/`
REPO_PATH = re.compile(r"`((?:agent|bench|client|collector|docs|packaging|proto|tests)/[A-Za-z0-9_./-]*)`")
OUTPUTS = {"bench/results/latest.json"}  # written by `make bench`, never committed


def _generator():
    spec = importlib.util.spec_from_file_location("docs_generate", ROOT / "docs" / "generate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _tracked() -> set[str]:
    out = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True)
    return set(out.stdout.split())


def _prose(text: str) -> str:
    """The text outside fenced code blocks (a link-like string in code is code)."""
    return re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)


def _anchors(page: Path) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens."""
    out = set()
    for line in _prose(page.read_text()).splitlines():
        if line.startswith("#"):
            title = line.lstrip("#").strip().lower()
            out.add(re.sub(r"[^\w\- ]", "", title).replace(" ", "-"))
    return out


def test_generated_pages_are_fresh():
    """docs/self-metrics.md, and the generated block of docs/events-logs.md."""
    stale = [path.name for path, text in _generator().pages().items() if path.read_text() != text]
    assert not stale, f"stale: {stale}; run `make docs`"


def test_record_kinds_block_follows_the_declarations():
    from ferry.records import KINDS

    text = (ROOT / "docs" / "events-logs.md").read_text()
    for kind in KINDS:
        assert f"`ferry {kind.name}`, `Query.{kind.rpc}`" in text
        for field in kind.message.DESCRIPTOR.fields:
            assert f"| `{field.name}` |" in text
        for flag in kind.shortcuts:
            assert f"`--{flag}`" in text


def test_every_self_metric_is_on_the_page():
    from ferry.agent import selfmetrics as agent_metrics
    from ferry.collector import selfmetrics as collector_metrics

    gen = _generator()
    text = gen.PAGE.read_text()
    metrics = gen.declared(agent_metrics) + gen.declared(collector_metrics)
    assert len(metrics) >= 38, "the generator no longer finds the declared metrics"
    for metric in metrics:
        assert f"| `{gen.exposed_name(metric)}` |" in text
    assert "| `ferry_agent_spool_dropped_points_total` | counter | — |" in text


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_relative_links_resolve(page):
    broken = []
    for target in LINK.findall(_prose(page.read_text())):
        if re.match(r"[a-z]+:", target):
            continue  # http(s):, mailto:
        path, _, anchor = target.partition("#")
        dest = (page.parent / path).resolve() if path else page
        if not dest.exists():
            broken.append(target)
        elif anchor and dest.suffix == ".md" and anchor not in _anchors(dest):
            broken.append(f"{target} (no such heading)")
    assert not broken, f"{page.name}: broken links {broken}"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_repository_paths_exist(page):
    missing = [p for p in REPO_PATH.findall(page.read_text()) if p not in OUTPUTS and not (ROOT / p).exists()]
    assert not missing, f"{page.name} names paths that are not in the repository: {missing}"


def _architecture_tree() -> list[str]:
    text = (ROOT / "README.md").read_text()
    section = text.split("\n## Architecture\n", 1)[1].split("\n## ", 1)[0]
    # the tree is the block after "as committed (`git ls-files`):"; the flow diagram comes first
    tree = section.split("(`git ls-files`):", 1)[1]
    return tree.split("```", 2)[1].splitlines()[1:]


def test_readme_tree_is_the_committed_tree():
    """Every entry of README's tree exists, and every top-level folder is in the tree."""
    tracked = _tracked()
    top, parent, missing = set(), "", []
    for line in _architecture_tree():
        names = re.split(r"\s{2,}", line.strip(), maxsplit=1)[0].split()
        indented = line.startswith(" ")
        for name in names:
            path = parent + name if indented else name
            if not indented:
                parent = name
                top.add(name.split("/")[0])
            if not any(f == path.rstrip("/") or f.startswith(path) for f in tracked):
                missing.append(path)
    assert not missing, f"README's Architecture tree names what is not committed: {missing}"
    folders = {f.split("/")[0] for f in tracked if "/" in f and not f.startswith(".")}
    assert folders <= top, f"top-level folders missing from README's tree: {sorted(folders - top)}"


def test_bad_input_page_quotes_the_declared_limits():
    """The numbers in docs/bad-input.md's table are the defaults of ferry.limits.Limits and of
    the frame caps; change one there and this names the phrase to update."""
    from ferry.collector.pipeline import AGENT_ID_RE
    from ferry.limits import DAY_MS, LABEL_KEY_RE, NAME_RE, Limits, RecordLimits
    from ferry.wire.frames import DEFAULT_MAX_FRAME_BYTES, DEFAULT_MAX_RAW_BYTES, LZ4_MAX_RATIO

    lim, rec, mib = Limits(), RecordLimits(), 1024 * 1024
    text = (ROOT / "docs" / "bad-input.md").read_text()
    phrases = [
        f"`max_frame_bytes` ({DEFAULT_MAX_FRAME_BYTES // mib} MiB)",
        f"`max_raw_bytes` ({DEFAULT_MAX_RAW_BYTES // mib} MiB)",
        f"name > {lim.max_name_len} chars",
        f"label value > {lim.max_label_value_bytes} bytes",
        f"> {lim.max_labels} labels",
        f"over {lim.max_label_key_len} chars",
        f"more than {lim.max_bounds} bounds",
        f"more than {lim.max_series:,} series or {lim.max_points:,} points",
        f"more than {lim.max_series:,} series, {lim.max_series_labels:,} series label keys, "
        f"{rec.max_records:,} records (all kinds) or {lim.max_fields:,} protobuf fields",
        f"a series `unit` over {lim.max_unit_bytes} bytes; `resource.agent_version` over "
        f"{lim.max_agent_version_bytes} bytes",
        f"more than {LZ4_MAX_RATIO}x its size",
        f"older than {lim.max_past_ms // DAY_MS} days",
        f"more than {lim.max_future_ms // 60_000} minutes ahead",
        *(f"`{r.pattern.replace(chr(92), '')}`" for r in (NAME_RE, LABEL_KEY_RE, AGENT_ID_RE)),
    ]
    assert [p for p in phrases if p not in text] == []


def _subcommands() -> dict:
    """The parser of every `ferry` subcommand, by name."""
    import argparse

    from ferry.collector.cli.main import build_parser

    return next(a.choices for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))


def _cli_flags() -> dict[str, set[str]]:
    """The flags of every `ferry` subcommand, and of the two executables (from their --help,
    the interface a reader types)."""
    import sys

    flags = {f"ferry {name}": set(sub._option_string_actions) for name, sub in _subcommands().items()}
    for exe, module in (("ferry-agent", "ferry.agent.main"), ("ferry-collector", "ferry.collector.main")):
        out = subprocess.run(
            [sys.executable, "-m", module, "--help"], capture_output=True, text=True, cwd=ROOT
        )
        assert out.returncode == 0, out.stderr
        flags[exe] = set(re.findall(r"--[a-z][a-z0-9-]*", out.stdout))
    out = subprocess.run(
        [sys.executable, "-m", "ferry.collector.main", "token", "new", "--help"],
        capture_output=True, text=True, cwd=ROOT,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    flags["ferry-collector token"] = set(re.findall(r"--[a-z][a-z0-9-]*", out.stdout))
    return flags


# `ferry query ... --since 5m`, `.venv/bin/ferry-agent --collector ...`: a command and its flags
COMMAND = re.compile(r"\b(ferry-agent|ferry-collector token|ferry-collector|ferry [a-z]+)\b([^`\n]*)")


def test_every_flag_the_docs_name_exists():
    flags, unknown = _cli_flags(), []
    for page in PAGES:
        for command, rest in COMMAND.findall(page.read_text()):
            if command not in flags:
                continue  # prose: "ferry moves ...", "ferry itself"
            unknown += [
                f"{page.name}: {command} {flag}"
                for flag in re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", rest)
                if flag not in flags[command]
            ]
    assert not unknown, f"flags the docs name that the commands do not take: {unknown}"


def test_every_self_metric_the_docs_name_is_declared():
    from ferry.agent import selfmetrics as agent_metrics
    from ferry.collector import selfmetrics as collector_metrics

    gen = _generator()
    names = set()
    for metric in gen.declared(agent_metrics) + gen.declared(collector_metrics):
        family = metric.describe()[0].name
        names |= {family, gen.exposed_name(metric)}
        names |= {f"{family}_{s}" for s in ("bucket", "sum", "count", "created")}
    unknown = [
        f"{page.name}: {name}"
        for page in PAGES
        for line in page.read_text().splitlines()
        if "grep" not in line  # `curl ... | grep ferry_agent_frames` names a prefix
        for name in re.findall(r"\bferry_(?:agent|collector)_[a-z0-9_]*[a-z0-9]", line)
        if name not in names
    ]
    assert not unknown, f"self-metrics the docs name that are not declared: {unknown}"


def test_local_api_page_quotes_the_declared_limits():
    """docs/local-api.md's limits table, against ferry.limits and the agent's Local server."""
    import inspect

    from ferry.agent.local.server import MAX_MESSAGE_BYTES, LocalService
    from ferry.limits import DAY_MS, LABEL_KEY_RE, MAX_RECORDS, NAME_RE, Limits, RecordLimits, on_arrival

    lim, rec = Limits(), RecordLimits()
    local = on_arrival(lim)  # the window the Local service checks times by
    max_pending = inspect.signature(LocalService).parameters["max_pending"].default
    text = (ROOT / "docs" / "local-api.md").read_text()
    phrases = [
        f"required, ≤ {lim.max_name_len} chars, matches `{NAME_RE.pattern}`",
        f"≤ {lim.max_labels} labels per record; key ≤ {lim.max_label_key_len} chars, "
        f"matches `{LABEL_KEY_RE.pattern}`",
        f"| label values | ≤ {lim.max_label_value_bytes} bytes (UTF-8) |",
        f"| histogram `bounds` | ≤ {lim.max_bounds}, finite, strictly ascending;",
        f"| metric / histogram `unit` | ≤ {lim.max_unit_bytes} bytes (UTF-8) |",
        f"within now \N{MINUS SIGN} {local.max_past_ms // DAY_MS} days … "
        f"now + {local.max_future_ms // 60_000} minutes: the collector's window "
        f"({lim.max_past_ms // DAY_MS} days, {lim.max_future_ms // 60_000} minutes)",
        f"`session_id`, `service` ≤ {rec.max_field_bytes} bytes each",
        f"`message` ≤ {rec.max_message_bytes:,} bytes; `trace_id`, `span_id` ≤ {rec.max_id_len} chars",
        f"≤ {rec.max_attributes} per record; keys ≤ {rec.max_field_bytes} chars matching "
        f"`{LABEL_KEY_RE.pattern}`; values ≤ {rec.max_attribute_value_bytes:,} bytes",
        f"| records per request | ≤ {MAX_RECORDS:,} ",
        f"| request size | ≤ {MAX_MESSAGE_BYTES // (1024 * 1024)} MiB ",
        f"more than {max_pending:,} records wait inside the agent",
    ]
    assert [p for p in phrases if p not in text] == []


def test_every_make_target_the_docs_name_exists():
    targets = set(re.findall(r"^([a-z][a-z0-9-]*):", (ROOT / "Makefile").read_text(), flags=re.M))
    unknown = [
        f"{page.name}: make {name}"
        for page in PAGES
        for name in re.findall(r"`make ([a-z][a-z0-9-]*)", page.read_text())
        if name not in targets
    ]
    assert not unknown, f"make targets the docs name that the Makefile lacks: {unknown}"


def _toml_blocks(page: Path) -> list[str]:
    return re.findall(r"^```toml\n(.*?)^```", page.read_text(), flags=re.S | re.M)


@pytest.mark.parametrize("page", [p for p in PAGES if _toml_blocks(p)], ids=lambda p: p.name)
def test_toml_examples_are_agent_configs_that_load(page, tmp_path):
    """Every ```toml block is an agent config file the agent accepts, as written (or, where it says
    so, the collector's config file or its auth file)."""
    from ferry.agent.config import AgentConfig
    from ferry.collector.alerting.rulesfile import load_rules
    from ferry.collector.auth.principals import Principals
    from ferry.collector.config import CollectorConfig
    from ferry.runtime.config import ConfigSource

    for i, block in enumerate(_toml_blocks(page)):
        path = tmp_path / f"{page.stem}-{i}.toml"
        # a file the example names and its parser reads (a key file) is made with 32 bytes in it
        for name in set(re.findall(r'"(/etc/ferry/[^"]+\.key)"', block)):
            made = tmp_path / Path(name).name
            made.write_text("k" * 32)
            block = block.replace(name, str(made))
        path.write_text(block)
        if "[[principals]]" in block:  # the collector's auth file (security.md)
            Principals.load(str(path))
        elif any(f"[[{t}]]" in block for t in ("alerts", "receivers", "routes")):  # a rules file
            load_rules(str(path))
        elif block.startswith("# /etc/ferry/collector.toml"):
            ConfigSource(CollectorConfig, str(path), {}).load()
        else:
            ConfigSource(AgentConfig, str(path), {}).load()  # raises ConfigError naming file, line, key


def test_querying_page_lists_every_aggregation():
    choices = next(a.choices for a in _subcommands()["query"]._actions if "--agg" in a.option_strings)
    text = (ROOT / "docs" / "querying.md").read_text()
    sentence = re.search(r"Aggregations: (.*?)\.\n", text, flags=re.S).group(1)
    assert set(re.findall(r"`(\w+)`", sentence)) == set(choices)
