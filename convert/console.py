"""What ``convert-model`` shows on the console: its own lines, warnings once, progress bars; not the native
libraries' chatter unless ``-v``.

TensorFlow's converter (absl ``W0000 ...`` lines, ``fully_quantize: ...``) and the TFLite interpreter
(``INFO: Created TensorFlow Lite XNNPACK delegate``) write to file descriptor 2 from C++, past Python's
``sys.stderr``. :func:`quiet_native_output` points descriptor 2 at a log file for the duration of a command and
keeps Python's own ``sys.stderr`` (messages, warnings, progress bars) on the terminal through a duplicate of the
original descriptor. The log file is kept, and named, only when a command fails in a way the log may explain
(a failed export, a bug).

Progress bars (:func:`progress`) go to that terminal stream. A terminal that reports a size of 0 x 0 (a pseudo-terminal
opened without a size, as some CI runners, ``script`` and ``docker exec -t`` do) makes tqdm print nothing at all
(it hides bars below the last row): such a terminal gets 100 x 24.
"""
from __future__ import annotations

import contextlib
import logging
import os
import sys
import tempfile
import warnings
from collections.abc import Iterable, Iterator
from pathlib import Path

DEFAULT_COLUMNS = 100
DEFAULT_ROWS = 24


def hide_library_noise(verbose: bool) -> None:
    """Without ``-v``: TensorFlow's C++ log below ERROR, its Python loggers and absl at ERROR, and the Keras /
    TensorFlow UserWarnings (e.g. "The structure of `inputs` doesn't match") not shown."""
    if verbose:
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    for name in ("tensorflow", "absl", "keras"):
        logging.getLogger(name).setLevel(logging.ERROR)
    for module in (r"keras(\..*)?", r"tensorflow(\..*)?", r"tf_keras(\..*)?"):
        warnings.filterwarnings("ignore", category=UserWarning, module=module)
        warnings.filterwarnings("ignore", category=DeprecationWarning, module=module)


def _writes_to_fd(stream, fd: int) -> bool:
    try:
        return stream.fileno() == fd
    except (AttributeError, OSError, ValueError):   # pytest's capture objects and other in-memory streams
        return False


class NativeLog:
    """Where the native libraries' output went (``path``), for the error message when a command fails."""

    def __init__(self, path: Path | None):
        self.path = path
        self.keep = False          # set by whoever names the log in an error message

    def tail(self, lines: int = 15) -> str:
        if self.path is None or not self.path.is_file():
            return ""
        text = self.path.read_text(errors="replace").strip().splitlines()
        return "\n".join(text[-lines:])


@contextlib.contextmanager
def quiet_native_output(enabled: bool = True) -> Iterator[NativeLog]:
    """While active, file descriptor 2 goes to a temporary log; Python's ``sys.stderr`` keeps writing to the
    terminal. The log is deleted afterwards unless the command failed and ``NativeLog.keep`` was set (the error
    message names ``NativeLog.path``)."""
    if not enabled:
        yield NativeLog(None)
        return
    sys.stderr.flush()
    fd, name = tempfile.mkstemp(prefix="convert-model-native-", suffix=".log")
    log = NativeLog(Path(name))
    saved = os.dup(2)
    swap = _writes_to_fd(sys.stderr, 2)
    old_stderr = sys.stderr
    terminal = None
    moved: list[logging.StreamHandler] = []
    try:
        if swap:
            terminal = os.fdopen(os.dup(saved), "w", buffering=1, encoding=getattr(old_stderr, "encoding", None),
                                 errors="backslashreplace")
            sys.stderr = terminal
            moved = _move_log_handlers(old_stderr, terminal)
        os.dup2(fd, 2)
        yield log
    except BaseException:
        _restore(saved, old_stderr, terminal, swap, moved)
        if not log.keep:
            log.path.unlink(missing_ok=True)
            log.path = None
        raise
    else:
        _restore(saved, old_stderr, terminal, swap, moved)
        log.path.unlink(missing_ok=True)
        log.path = None
    finally:
        os.close(fd)


def _move_log_handlers(old, new) -> list[logging.StreamHandler]:
    """Logging handlers writing to the old ``sys.stderr`` object (made by ``basicConfig`` before the swap) follow
    it to the terminal; otherwise the command's own log lines would land in the native log."""
    moved = []
    for logger in [logging.getLogger()] + [l for l in logging.Logger.manager.loggerDict.values()
                                           if isinstance(l, logging.Logger)]:
        for handler in logger.handlers:
            if isinstance(handler, logging.StreamHandler) and handler.stream is old:
                handler.setStream(new)
                moved.append(handler)
    return moved


def _restore(saved: int, old_stderr, terminal, swap: bool, moved: list[logging.StreamHandler]) -> None:
    with contextlib.suppress(Exception):
        sys.stderr.flush()
    os.dup2(saved, 2)
    os.close(saved)
    for handler in moved:
        handler.setStream(old_stderr)
    if swap:
        sys.stderr = old_stderr
        with contextlib.suppress(Exception):
            terminal.close()


def _terminal_size(stream) -> tuple[int | None, int | None]:
    """(columns, rows) for tqdm: the terminal's, with DEFAULT_COLUMNS x DEFAULT_ROWS where a terminal reports 0
    (tqdm then prints nothing at all: a bar at a position >= rows is hidden); (None, None) for files and pipes."""
    try:
        if not stream.isatty():
            return None, None
        size = os.get_terminal_size(stream.fileno())
    except (AttributeError, OSError, ValueError):
        return None, None
    return (size.columns if size.columns > 0 else DEFAULT_COLUMNS), (size.lines if size.lines > 0 else DEFAULT_ROWS)


def progress(iterable: Iterable | None = None, *, desc: str, total: int | None = None, unit: str = "it",
             enabled: bool = True, leave: bool = False):
    """A tqdm bar on ``sys.stderr`` (the terminal, also under :func:`quiet_native_output`)."""
    from tqdm import tqdm
    stream = sys.stderr
    cols, rows = _terminal_size(stream)
    return tqdm(iterable, desc=desc, total=total, unit=unit, disable=not enabled, file=stream, leave=leave,
                ncols=cols, nrows=rows)
