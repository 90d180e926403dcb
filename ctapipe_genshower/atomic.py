"""Atomic outputs: a file or directory appears under its final name complete, or not at all.

Every writer of the package (model and training-state files, training files, loss curves,
IRF files, validation reports, generated DL1 files) writes to a hidden temporary name in
the target's directory and renames it onto the target only on success. A run killed by
SIGTERM, SIGKILL or the OOM killer therefore never leaves a file that looks usable under
the name the user asked for, and a resubmitted job starts clean.
"""

import os
import shutil
import signal
import tempfile
import threading
from contextlib import contextmanager
from pathlib import Path

__all__ = [
    "SIGTERM_EXIT_CODE",
    "TEMPORARY_PREFIX",
    "atomic_output",
    "exit_on_sigterm",
    "temporary_sibling",
]

#: Exit code of a run ended by SIGTERM, as a shell reports a process killed by it.
SIGTERM_EXIT_CODE = 128 + signal.SIGTERM

#: Hidden temporary outputs start with this prefix (``.<name>.<random>.tmp``).
TEMPORARY_PREFIX = "."


def temporary_sibling(path, directory=False):
    """A new, empty temporary file (or directory) beside ``path`` on the same file system."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    prefix = f"{TEMPORARY_PREFIX}{path.name}."
    if directory:
        return Path(tempfile.mkdtemp(prefix=prefix, suffix=".tmp", dir=path.parent))
    fd, name = tempfile.mkstemp(prefix=prefix, suffix=".tmp" + path.suffix, dir=path.parent)
    os.close(fd)
    return Path(name)


def _current_umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _permissions_from_umask(path, directory):
    # mkstemp/mkdtemp create private (0600/0700) entries; an output must get the
    # permissions any other new file of the user gets
    os.chmod(path, (0o777 if directory else 0o666) & ~_current_umask())


def _remove(path):
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


@contextmanager
def atomic_output(path, directory=False, overwrite=True):
    """Yield a temporary path; on success it replaces ``path``, on any error it is removed.

    Parameters
    ----------
    path : str or Path
        The final output name.
    directory : bool
        Yield a temporary directory instead of a file.
    overwrite : bool
        If False, refuse (``FileExistsError``) when ``path`` exists at the end.

    Examples
    --------
    >>> with atomic_output("model.safetensors") as tmp:  # doctest: +SKIP
    ...     save_file(tensors, tmp)
    """
    path = Path(path)
    tmp = temporary_sibling(path, directory=directory)
    try:
        yield tmp
        if path.exists():
            if not overwrite:
                raise FileExistsError(f"{path} exists")
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
        _permissions_from_umask(tmp, directory)
        os.replace(tmp, path)
    except BaseException:
        _remove(tmp)
        raise


def exit_on_sigterm(exit_stack, log):
    """Turn SIGTERM (a batch system's time limit) into ``SystemExit(SIGTERM_EXIT_CODE)``.

    The exit then unwinds like any failure, so the temporary outputs of
    :func:`atomic_output` are removed; the previous handler is restored when
    ``exit_stack`` closes. Signal handlers can only be set from the main thread, so
    elsewhere (a tool run inside a thread) this does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        return
    previous = signal.getsignal(signal.SIGTERM)

    def terminate(signum, frame):
        log.error("Terminated (SIGTERM)")
        raise SystemExit(SIGTERM_EXIT_CODE)

    signal.signal(signal.SIGTERM, terminate)
    # getsignal gives None for a handler not set from Python: restore the default then
    restore = signal.SIG_DFL if previous is None else previous
    exit_stack.callback(signal.signal, signal.SIGTERM, restore)
