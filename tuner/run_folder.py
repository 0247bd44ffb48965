"""The run folder: where a study's storage and outputs live, written safely.

Every output file is written to a temporary file in the same folder and then
renamed over the old one (``os.replace`` is atomic on POSIX), so an
interrupted or failed run never leaves a half-written report or export: the
previous version stays until the new one is complete.
"""

from __future__ import annotations

import os
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class RunFolder:
    """Paths of one run's outputs (e.g. ``runs/<study>/``)."""

    root: Path

    @property
    def study_db(self) -> Path:
        return self.root / "study.db"

    @property
    def default_storage(self) -> str:
        return f"sqlite:///{self.study_db.resolve()}"

    @property
    def tensorboard(self) -> Path:
        return self.root / "tb"

    @property
    def trials_csv(self) -> Path:
        return self.root / "trials.csv"

    @property
    def report(self) -> Path:
        return self.root / "report.md"

    @property
    def figures(self) -> Path:
        """PNG figures that ``report.md`` embeds."""
        return self.root / "figures"

    def recommendation(self, fmt: str) -> Path:
        return self.root / f"recommendation.{fmt}"

    def create(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)


def _umask() -> int:
    """The process's umask: from ``/proc`` on Linux, else by setting it and straight back."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` so that readers see the old or the new file, never a part."""
    write_atomic_bytes(path, text.encode("utf-8"))


def write_atomic_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old or the new file, never a part.

    A new file gets the permissions a plainly created file would (0666 less
    the umask), not ``mkstemp``'s owner-only 0600, so the other users or
    workers that share a run folder can read it; a file that is replaced
    keeps its own permissions.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        try:
            mode = stat.S_IMODE(path.stat().st_mode)
        except FileNotFoundError:
            mode = 0o666 & ~_umask()
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
