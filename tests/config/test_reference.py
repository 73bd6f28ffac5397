"""The README's configuration reference is the one generated from the schema."""

from __future__ import annotations

from pathlib import Path

from appliance.config.reference import END, START, reference, replace_block

README = Path(__file__).resolve().parents[2] / "README.md"


def test_readme_reference_matches_schema() -> None:
    text = README.read_text("utf-8")
    assert START in text and END in text, "README lacks the reference markers"
    assert replace_block(text, reference()) == text, (
        "README.md's configuration reference is stale: run "
        ".venv/bin/python -m appliance.config.reference --update README.md"
    )


def test_reference_names_every_table() -> None:
    ref = reference()
    for header in (
        "[service]",
        "[web]",
        "[sip]",
        "[sip.registrar]",
        "[sip.upstream]",
        "[[sip.accounts]]",
        "[webrtc]",
        "[[webrtc.turn_servers]]",
        "[media]",
        "[rtt]",
        "[msrp]",
        "[network]",
        "[[network.interfaces]]",
        "[[network.routes]]",
        "[serial]",
        "[[serial.devices]]",
        "[[operators]]",
    ):
        assert f"#### `{header}`" in ref
