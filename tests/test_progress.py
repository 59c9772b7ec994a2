"""The progress line (done/total, elapsed, time left) and console output that a closed pipe does not break."""

from __future__ import annotations

import io
import subprocess
import sys

from hie_core.progress import Progress, Tracked, format_seconds


class _Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_plain_lines_give_done_total_elapsed_and_time_left():
    stream, clock = io.StringIO(), _Clock()
    progress = Progress(4, "hie-predict", stream=stream, clock=clock)
    for seconds in (10, 10, 20, 40):  # 10 s a case, then slower: the estimate is the mean so far
        clock.now += seconds
        progress.step(f"case {progress.done + 1}")
    assert stream.getvalue().splitlines() == [
        "hie-predict: [1/4] case 1; 10 s elapsed, about 30 s left",
        "hie-predict: [2/4] case 2; 20 s elapsed, about 20 s left",
        "hie-predict: [3/4] case 3; 40 s elapsed, about 13 s left",
        "hie-predict: [4/4] case 4; 1 min 20 s elapsed",
    ]


def test_a_terminal_gets_a_tqdm_bar_with_the_messages_above():
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    stream = Terminal()
    progress = Progress(2, "hie-score", stream=stream)
    list(Tracked(["a", "b"], progress, describe=str.upper))
    text = stream.getvalue()
    assert "[1/2] A" in text and "[2/2] B" in text and "2/2" in text and "hie-score" in text
    assert "elapsed" not in text  # tqdm's own bar, not the plain lines


def test_tracked_steps_after_each_item_is_used():
    stream = io.StringIO()
    progress = Progress(3, "x", stream=stream, bar=False)
    seen = []
    for item in Tracked([1, 2, 3], progress):
        seen.append((item, progress.done))
    assert seen == [(1, 0), (2, 1), (3, 2)] and progress.done == 3
    assert len(Tracked([1, 2], progress)) == 2 and Tracked([1, 2], progress)[1] == 2


def test_format_seconds():
    assert [format_seconds(s) for s in (0.4, 59.4, 61, 3599, 3725)] == ["0 s", "59 s", "1 min 01 s", "59 min 59 s",
                                                                        "1 h 02 min"]  # fmt: skip


def test_say_on_a_closed_pipe_goes_quiet():
    code = ("from hie_core.progress import say\nfor i in range(20000):\n    say('line %d' % i)\n"
            "import sys\nsys.stderr.write('finished')\n")  # fmt: skip
    proc = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    proc.stdout.readline()  # like head -1
    proc.stdout.close()
    err = proc.stderr.read()
    assert proc.wait(timeout=60) == 0 and err == "finished", err
