"""Atomic writes: the whole file or the old one, with the permissions of a plainly created file."""

from __future__ import annotations

import os
import stat

import pytest

from tuner.run_folder import write_atomic


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_an_atomic_write_has_the_permissions_of_a_plain_write(tmp_path, umask):
    old = os.umask(umask)
    try:
        write_atomic(tmp_path / "atomic.txt", "new\n")
        (tmp_path / "plain.txt").write_text("new\n")
    finally:
        os.umask(old)
    mode = stat.S_IMODE((tmp_path / "atomic.txt").stat().st_mode)
    assert mode == 0o666 & ~umask == stat.S_IMODE((tmp_path / "plain.txt").stat().st_mode)


def test_an_atomic_write_replaces_the_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "report.md"
    target.write_text("old\n")
    write_atomic(target, "new\n")
    assert target.read_text() == "new\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.md"]


def test_a_replaced_file_keeps_its_own_permissions(tmp_path):
    target = tmp_path / "defense.yaml"
    target.write_text("old\n")
    target.chmod(0o600)  # the user restricted it
    write_atomic(target, "new\n")
    assert stat.S_IMODE(target.stat().st_mode) == 0o600 and target.read_text() == "new\n"
