"""The `bayesmm ingest` and `inspect` commands, run in-process through `main`."""

from __future__ import annotations

from bayesmm.cli import main
from bayesmm.events import read_session
from tests.conftest import HL


def test_ingest_then_inspect(tmp_path, capsys):
    out = tmp_path / "hl.parquet"
    assert main(["ingest", str(HL), "--quiet", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "trade_print" in printed and "wrote" in printed
    session = read_session(out)
    assert session.counts()["trade_print"] > 0
    png = tmp_path / "hl.png"
    assert main(["inspect", str(out), "--plot", str(png)]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_ingest_error_exit_code(tmp_path, capsys):
    """A bad recording exits 2 with the file, line and field on stderr, and writes nothing."""
    bad = tmp_path / "bad.txt"
    bad.write_text('1 {"channel": "nope", "data": {}}\n')
    out = tmp_path / "x.parquet"
    assert main(["ingest", str(bad), "--venue", "hyperliquid", "--quiet", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "bad.txt:1" in err and "channel" in err
    assert not out.exists()
