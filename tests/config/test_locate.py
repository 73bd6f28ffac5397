"""The TOML line locator finds keys past everything that can hide or fake one."""

from __future__ import annotations

import tomllib

from hypothesis import given, settings
from hypothesis import strategies as st

from appliance.config.locate import Locator

SOURCE = '''\
# comment with key = value
top = 1
[service]
name = "a = b [not.a.table]"
text = """
fake = 1
[fake.table]
"""
literal = \'\'\'
also = "fake"
\'\'\'
list = [
  "x = 1",
  "[y]",  # comment ]
]
"quoted key" = 2
dotted.inner = 3
after = true

[[ops]]
name = "first"
[[ops]]
name = "second"
[ops.sub]
deep = 1
[[ops]]
  name = "third"
'''


def test_lines() -> None:
    tomllib.loads(SOURCE)  # the sample itself is valid TOML
    loc = Locator(SOURCE)
    assert loc.line_of((), "top") == 2
    assert loc.line_of(("service",)) == 3
    assert loc.line_of(("service",), "name") == 4
    assert loc.line_of(("service",), "text") == 5
    assert loc.line_of(("service",), "fake") == 3  # inside a string: falls back to the table
    assert loc.line_of(("fake", "table")) is None
    assert loc.line_of(("service",), "literal") == 9
    assert loc.line_of(("service",), "also") == 3
    assert loc.line_of(("service",), "list") == 12
    assert loc.line_of(("service",), "quoted key") == 16
    assert loc.line_of(("service", "dotted"), "inner") == 17
    assert loc.line_of(("service",), "after") == 18
    assert loc.line_of(("ops", 0), "name") == 21
    assert loc.line_of(("ops", 1), "name") == 23
    assert loc.line_of(("ops", 1, "sub"), "deep") == 25
    assert loc.line_of(("ops", 2), "name") == 27
    assert loc.line_of(("ops", 2), "missing") == 26
    assert loc.line_of((), "ops") == 20


def test_escaped_quote_in_multiline_basic_string() -> None:
    source = 'a = """ends with \\""""\nb = 2\n'
    assert tomllib.loads(source) == {"a": 'ends with "', "b": 2}
    assert Locator(source).line_of((), "b") == 2


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=300))
def test_never_raises(text: str) -> None:
    Locator(text).line_of(("a", 0), "b")
