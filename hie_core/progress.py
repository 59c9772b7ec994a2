"""A progress line for commands that work case by case, and console output a closed pipe does not break.

- :class:`Progress`: after each item, done/total, the time elapsed and an estimate of the time
  left (the mean time per item so far times the items left). On a terminal it is a tqdm bar
  and the per-item messages go above it; otherwise (a log file, a pipe) each item is one plain,
  flushed line, ``hie-predict: [3/10] <message>; 12 s elapsed, about 28 s left``.
- :func:`say`: print and flush. When the reader of the output went away (``hie-score ... | head -1``),
  standard output is pointed at the null device for the rest of the process, so the command
  finishes its work (the files it writes do not depend on who reads its console) and exits
  without a ``BrokenPipeError``.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator, Sequence
from typing import IO, TypeVar

from hie_core.errors import quiet_closed_pipe

__all__ = ["Progress", "Tracked", "format_seconds", "say"]

T = TypeVar("T")


def say(text: str = "", file: IO[str] | None = None) -> None:
    """``print(text, flush=True)`` on standard output (or ``file``); a closed pipe silences it instead of raising."""
    stream = file or sys.stdout
    try:
        print(text, file=stream, flush=True)
    except BrokenPipeError:
        if stream is sys.stdout:
            quiet_closed_pipe()


def format_seconds(seconds: float) -> str:
    """``42 s``, ``3 min 05 s``, ``1 h 02 min``."""
    seconds = max(0.0, float(seconds))
    if seconds < 60:
        return f"{seconds:.0f} s"
    minutes, secs = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


class Progress:
    """Done/total, elapsed and time left, after each of ``total`` items.

    Args:
        total: the number of items.
        prog: the command's name, the plain lines' prefix.
        stream: where the bar or the lines go (default standard output).
        bar: a tqdm bar (default: when ``stream`` is a terminal); otherwise plain lines.
        clock: seconds (``time.monotonic``; tests pass their own).
    """

    def __init__(self, total: int, prog: str, stream: IO[str] | None = None, bar: bool | None = None,
                 clock=time.monotonic) -> None:  # fmt: skip
        self.total, self.prog, self.done = int(total), prog, 0
        self.stream = stream or sys.stdout
        self._clock = clock
        self._start = clock()
        if bar is None:
            bar = bool(getattr(self.stream, "isatty", lambda: False)())
        self._bar = None
        if bar:
            from tqdm import tqdm

            self._bar = tqdm(total=self.total, desc=prog, file=self.stream, unit="case", dynamic_ncols=True)

    def elapsed(self) -> float:
        """Seconds since the start."""
        return self._clock() - self._start

    def left(self) -> float | None:
        """Estimated seconds left: the mean seconds per item so far times the items left (None before the first)."""
        if not self.done:
            return None
        return self.elapsed() / self.done * (self.total - self.done)

    def line(self, message: str = "") -> str:
        """The plain line after the latest item."""
        left = self.left()
        timing = f"{format_seconds(self.elapsed())} elapsed" + (
            f", about {format_seconds(left)} left" if left is not None and self.done < self.total else ""
        )
        return f"{self.prog}: [{self.done}/{self.total}] " + (f"{message}; " if message else "") + timing

    def step(self, message: str = "") -> None:
        """One more item done; ``message`` says what it gave."""
        self.done += 1
        if self._bar is not None:
            if message:
                self._bar.write(f"[{self.done}/{self.total}] {message}", file=self.stream)
            self._bar.update(1)
            if self.done >= self.total:
                self.close()
        else:
            say(self.line(message), self.stream)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


class Tracked(Sequence[T]):
    """A sequence whose iteration advances a :class:`Progress` after each item is used.

    ``score(Tracked(items, progress))``: a function that loops over its argument reports its
    progress without knowing it (the step is counted when the loop asks for the next item, or ends).

    Args:
        items: the items.
        progress: counts them.
        describe: the message of an item's step (default none).
    """

    def __init__(
        self, items: Sequence[T], progress: Progress, describe: Callable[[T], str] | None = None
    ) -> None:
        self._items, self._progress = list(items), progress
        self._describe = describe or (lambda item: "")

    def __len__(self) -> int:
        return len(self._items)

    def __getitem__(self, index):  # type: ignore[override]
        return self._items[index]

    def __iter__(self) -> Iterator[T]:
        for item in self._items:
            yield item
            self._progress.step(self._describe(item))
