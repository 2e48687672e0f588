"""Fixtures for the rules and alarms tests: a connection to a real SQLite file with the real schema
(``db_path``, shared with the other areas, is in tests/conftest.py)."""

import sys

import pytest

from edge.store import connect

JSON_CODEC = "rules_json"


@pytest.fixture
def conn(db_path):
    conn = connect(db_path)
    try:
        yield conn
    finally:
        conn.close()


@pytest.fixture
def json_codec(tmp_path, monkeypatch):
    """An installed codec plug-in that decodes a JSON list of values: a codec may give any value,
    text included. Returns its name (for devices.codec)."""
    (tmp_path / "fp_rules_codec.py").write_text(
        "import json\n\ndef decode(payload, port):\n    return json.loads(payload)\n"
    )
    info = tmp_path / "fp_rules_codec-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: fp-rules-codec\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[fieldpost.codecs]\n{JSON_CODEC} = fp_rules_codec:decode\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield JSON_CODEC
    sys.modules.pop("fp_rules_codec", None)
