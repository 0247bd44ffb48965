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


def test_zero_trials_on_a_new_study_is_a_usage_error_not_exit_3_and_writes_nothing(tmp_path, capsys):
    assert main(["tune", "--trials", "0", "--quiet", "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert "--trials: 0 trials asked for, but " in err and "holds no study yet" in err
    assert "already holds" not in err
    assert not (tmp_path / "run").exists()


def test_an_unreachable_database_is_named_without_its_password(tmp_path, capsys):
    """Port 1 on this machine refuses at once: exit 2, the URL shown with its password masked."""
    url = "postgresql://tuner:S3cret-pw@127.0.0.1:1/privtune"
    assert main(["tune", "--trials", "1", "--quiet", "--out", str(tmp_path / "run"), "--storage", url]) == 2
    err = capsys.readouterr().err
    assert "cannot open the study storage 'postgresql://tuner:***@127.0.0.1:1/privtune'" in err
    assert "S3cret-pw" not in err and "Traceback" not in err


def test_a_malformed_url_is_shown_without_its_password(tmp_path, capsys):
    url = "postgresql+nodriver://tuner:S3cret-pw@db/privtune"
    assert main(["tune", "--trials", "1", "--quiet", "--out", str(tmp_path / "run"), "--storage", url]) == 2
    err = capsys.readouterr().err
    assert "'postgresql+nodriver://tuner:***@db/privtune'" in err and "S3cret-pw" not in err
