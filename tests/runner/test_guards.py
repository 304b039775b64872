"""runner/guards.py: what a stage's volume counts for, and its log and /out cut at the cap."""

from __future__ import annotations

import io
import os
from pathlib import Path

from runner.guards import ENTRY_SIZE, CappedLog, CappedWriter, volume_size


def test_a_volume_counts_files_folders_and_links_at_least_a_block(tmp_path: Path) -> None:
    (tmp_path / "a").write_bytes(b"x" * 10_000)
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "empty").touch()
    os.symlink("/usr", tmp_path / "link")  # never followed
    held = os.stat(tmp_path / "a").st_blocks * 512  # what the disk gives it, at least its length
    assert volume_size(tmp_path) == max(10_000, held) + 3 * ENTRY_SIZE


def test_a_sparse_file_counts_its_length(tmp_path: Path) -> None:
    with (tmp_path / "sparse").open("wb") as f:
        f.truncate(1 << 40)
    assert volume_size(tmp_path) == 1 << 40


def test_counting_stops_past_the_limit(tmp_path: Path) -> None:
    for i in range(1000):
        (tmp_path / str(i)).touch()
    assert 10 * ENTRY_SIZE < volume_size(tmp_path, limit=10 * ENTRY_SIZE) <= 11 * ENTRY_SIZE
    assert volume_size(tmp_path / "gone") == 0


def test_the_log_keeps_notes_past_the_cap() -> None:
    log = CappedLog(io.BytesIO(), 10)
    assert log.output(b"12345") and not log.cut
    assert log.output(b"abcdefgh")  # kept up to the cap, then the note
    assert not log.output(b"more")
    log.note("dockercise: --- attempt 2 ---")
    written = log.file.getvalue()  # type: ignore[attr-defined]
    assert written.startswith(b"12345\nabc\ndockercise: the log is cut here, at 10 B")
    assert written.endswith(b"\ndockercise: --- attempt 2 ---\n") and b"more" not in written


def test_out_keeps_the_first_bytes() -> None:
    out = io.BytesIO()
    writer = CappedWriter(out, 5)
    for chunk in (b"abc", b"defg", b"hij"):
        writer.write(chunk)
    assert out.getvalue() == b"abcde"
