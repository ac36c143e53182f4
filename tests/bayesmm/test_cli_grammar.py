"""The command line's grammar: a version, help for every argument, and errors a user can cause
given as one line naming the cause, never a traceback."""

from __future__ import annotations

import argparse

import pytest

from bayesmm.cli import build_parser, main
from tests.conftest import HL


def _subparsers(parser):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            yield from action.choices.items()


def test_version(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0 and capsys.readouterr().out.startswith("bayesmm ")


def test_every_argument_of_every_command_has_help():
    """Walks the parser: each subcommand's every argument (positionals included) has a description."""
    missing = []
    for name, sub in _subparsers(build_parser()):
        for action in sub._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            if not (action.help or "").strip():
                missing.append(f"{name} {'/'.join(action.option_strings) or action.dest}")
    assert not missing, missing


def test_one_grammar_for_data_outputs_and_held_out_data():
    """What a command reads (sessions, scenarios, a config to check) is positional, never an option;
    held-out data is `--holdout` wherever a command takes it; `--out` says in its metavar whether it
    names a file (FILE.parquet: the command writes one) or a directory (DIR: several)."""
    outs, options = {}, set()
    for name, sub in _subparsers(build_parser()):
        for action in sub._actions:
            options.update((name, o) for o in action.option_strings)
            if "--out" in action.option_strings:
                outs[name] = action.metavar
    assert not {o for _, o in options} & {"--session", "--sessions", "--scenario", "--test", "--test-sessions"}
    assert {n for n, o in options if o == "--holdout"} == {"calibrate", "sweep"}
    assert set(outs.values()) == {"FILE.parquet", "DIR"}, outs
    assert outs["ingest"] == outs["replay"] == "FILE.parquet"
    assert {outs[n] for n in ("fit", "calibrate", "pairs", "sweep")} == {"DIR"}


def test_every_gate_threshold_is_an_option_of_calibrate_with_its_default():
    """`bayesmm calibrate --max-rhat ... --max-khat ...`: one option per field of `models.gate.Gate`,
    defaulting to the field's default, shown in the help."""
    from dataclasses import fields

    from bayesmm.models.gate import Gate

    calibrate = dict(_subparsers(build_parser()))["calibrate"]
    by_dest = {a.dest: a for a in calibrate._actions}
    for f in fields(Gate):
        action = by_dest[f.name]
        assert action.option_strings == ["--" + f.name.replace("_", "-")] and action.default == f.default, f.name
    help_text = " ".join(calibrate.format_help().split())
    khat = help_text.split("--max-khat MAX_KHAT gate:", 1)[1].split("--ppc-low", 1)[0]
    assert "k-hat" in khat and khat.strip().endswith(f"(default: {Gate().max_khat})")


def _one_line_error(capsys, argv) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err and err.startswith(f"bayesmm {argv[0]}: error:")
    return err


def test_errors_a_user_causes_are_one_line(tmp_path, capsys):
    """A missing file, a raw recording given where a session is expected, and --out naming a file
    where an output folder is expected: one line each, naming the cause."""
    assert "no such file" in _one_line_error(capsys, ["replay", str(tmp_path / "nope.parquet"), "--out",
                                                      str(tmp_path / "b.parquet")])
    assert "bayesmm ingest" in _one_line_error(capsys, ["replay", str(HL), "--out", str(tmp_path / "b.parquet")])
    session = tmp_path / "s.parquet"
    assert main(["ingest", str(HL), "--quiet", "--out", str(session)]) == 0
    capsys.readouterr()
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    assert "folder" in _one_line_error(capsys, ["calibrate", str(session), "--out", str(a_file), "--quiet"])
