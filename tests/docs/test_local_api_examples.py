"""docs/local-api.md quotes the Go and Node examples whole: the page and the files agree."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "local-api.md"


@pytest.mark.parametrize(
    "lang,path",
    [("go", "docs/examples/go/main.go"), ("js", "docs/examples/node/send.js")],
    ids=["go", "node"],
)
def test_the_page_quotes_the_example_as_it_is(lang, path):
    blocks = re.findall(rf"^```{lang}\n(.*?)^```", PAGE.read_text(), flags=re.S | re.M)
    source = (ROOT / path).read_text()
    assert source in blocks, f"docs/local-api.md has no ```{lang} block equal to {path}: copy the file in"
