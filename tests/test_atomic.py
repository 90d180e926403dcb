"""Atomic outputs: complete under the final name, or absent."""

import os
import stat

import pytest

from ctapipe_genshower.atomic import atomic_output


def test_file_appears_only_on_success(tmp_path):
    target = tmp_path / "out.txt"
    with atomic_output(target) as tmp:
        tmp.write_text("done")
        assert not target.exists()
        assert tmp.parent == tmp_path and tmp.name.startswith(".out.txt.")
    assert target.read_text() == "done"
    assert os.listdir(tmp_path) == ["out.txt"]


def test_failure_leaves_nothing(tmp_path):
    target = tmp_path / "out.txt"
    with pytest.raises(KeyboardInterrupt), atomic_output(target) as tmp:
        tmp.write_text("half")
        raise KeyboardInterrupt
    assert os.listdir(tmp_path) == []


def test_directory_replaces_old(tmp_path):
    target = tmp_path / "report"
    target.mkdir()
    (target / "old.txt").write_text("old")
    with atomic_output(target, directory=True) as tmp:
        (tmp / "new.txt").write_text("new")
    assert sorted(os.listdir(target)) == ["new.txt"]


def test_no_overwrite(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("keep")
    with pytest.raises(FileExistsError), atomic_output(target, overwrite=False) as tmp:
        tmp.write_text("new")
    assert target.read_text() == "keep"
    assert os.listdir(tmp_path) == ["out.txt"]


@pytest.mark.parametrize("directory", [False, True])
def test_permissions_follow_umask(tmp_path, directory):
    old = os.umask(0o022)
    try:
        with atomic_output(tmp_path / "out", directory=directory):
            pass
    finally:
        os.umask(old)
    mode = stat.S_IMODE((tmp_path / "out").stat().st_mode)
    assert mode == (0o755 if directory else 0o644)


def test_sigterm_becomes_an_exit_that_removes_the_output(tmp_path):
    """A batch system's SIGTERM unwinds like a failure: the temporary output goes, the
    exit code is a shell's for SIGTERM, and the previous handler is back afterwards."""
    import signal
    from contextlib import ExitStack
    from logging import getLogger

    from ctapipe_genshower.atomic import SIGTERM_EXIT_CODE, exit_on_sigterm

    before = signal.getsignal(signal.SIGTERM)
    target = tmp_path / "out.txt"
    with pytest.raises(SystemExit) as exit_info, ExitStack() as stack:
        exit_on_sigterm(stack, getLogger("test"))
        assert signal.getsignal(signal.SIGTERM) is not before
        with atomic_output(target) as tmp:
            tmp.write_text("half")
            os.kill(os.getpid(), signal.SIGTERM)
    assert exit_info.value.code == SIGTERM_EXIT_CODE == 143
    assert os.listdir(tmp_path) == []
    assert signal.getsignal(signal.SIGTERM) == before
