"""Bad paths and URLs on the command line: exit 2, one message, nothing written."""

from __future__ import annotations

from tuner.cli import main


def test_out_pointing_at_a_file_exits_2(tmp_path, capsys):
    afile = tmp_path / "afile"
    afile.write_text("keep me")
    assert main(["tune", "--trials", "1", "--quiet", "--out", str(afile / "run")]) == 2
    assert "is not a folder" in capsys.readouterr().err
    assert afile.read_text() == "keep me"


def test_unusable_storage_url_exits_2_before_writing(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["tune", "--trials", "1", "--quiet", "--out", str(out), "--storage", "bogus://x"]) == 2
    assert "--storage / study.storage: must be an Optuna RDB URL" in capsys.readouterr().err
    assert not out.exists()


def test_validate_refuses_binary_bytes(tmp_path, capsys):
    path = tmp_path / "t.yaml"
    path.write_bytes(b"\x00\xff\xfe")
    assert main(["validate", str(path)]) == 2
    assert "is not UTF-8 text" in capsys.readouterr().err


def test_zero_trials_on_a_new_study_is_a_usage_error_not_exit_3(tmp_path, capsys):
    assert main(["tune", "--trials", "0", "--quiet", "--out", str(tmp_path / "run")]) == 2
    assert "no completed trial" in capsys.readouterr().err
