"""The one child-process contract (detprof.process.child): real children forked from the fork
server, each ending one way, and how each is read back: by exit status and the document's own
fields, never by what a message or the log says."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path
from typing import TypedDict

import pytest

from detprof.process.child import Child, Ending, run_child


def writes(document: object, out: str) -> int:
    Path(out).write_text(json.dumps(document))
    return 0


def writes_text(text: str, out: str) -> int:
    Path(out).write_text(text)
    return 0


def kills_itself(_out: str) -> int:
    print("RuntimeError: CUDA out of memory. Tried to allocate 2.00 GiB", flush=True)  # said, not shown
    os.kill(os.getpid(), signal.SIGKILL)
    return 0


def exits(code: int, _out: str) -> int:
    os._exit(code)


def sleeps(seconds: float, out: str) -> int:
    time.sleep(seconds)
    return writes({"status": "ok"}, out)


class Reading(TypedDict, total=False):
    """What these children's results may hold."""

    status: str
    value: int
    error: str
    traceback: str


def _run(function: str, *args: object, timeout_s: float = 60, reads: type | None = Reading) -> object:
    return run_child(Child(f"tests.test_child:{function}", args, dict(os.environ), timeout_s, reads=reads))


@pytest.mark.parametrize(("function", "args", "ending"), [
    ("writes", ({"status": "ok", "value": 1},), Ending.OK),
    ("writes", ({"error": "ValueError: no data"},), Ending.FAILED),
    ("writes", ({"status": "oom", "error": "OutOfMemoryError: ..."},), Ending.OUT_OF_MEMORY),
    ("writes_text", ("{cut sho",), Ending.UNREADABLE),
    ("writes", ([1, 2],), Ending.UNREADABLE),
    ("exits", (3,), Ending.CRASHED),
    ("exits", (0,), Ending.CRASHED),  # exit code 0 without its result is no success
    ("kills_itself", (), Ending.KILLED),
])
def test_each_ending_is_read_from_the_exit_status_and_the_documents_fields(function: str, args: tuple[object, ...],
                                                                          ending: Ending) -> None:
    ended = _run(function, *args)
    assert ended.ending is ending, ended  # type: ignore[attr-defined]


def test_a_killed_child_is_killed_whatever_its_log_says_and_its_words_name_the_signal() -> None:
    ended = _run("kills_itself")
    assert ended.ending is Ending.KILLED and ended.exitcode == -9  # type: ignore[attr-defined]
    assert ended.how == "killed by signal 9 (SIGKILL)" and "out of memory" in ended.log_tail  # type: ignore[attr-defined]


def test_a_child_past_its_limit_is_killed_and_said_to_have_timed_out() -> None:
    started = time.monotonic()
    ended = _run("sleeps", 60, timeout_s=1)
    assert ended.ending is Ending.TIMEOUT and ended.how == "exceeded 1 s and was killed"  # type: ignore[attr-defined]
    assert time.monotonic() - started < 30
    # control: within its limit the same child ends as it should
    assert _run("sleeps", 0, timeout_s=30).ending is Ending.OK  # type: ignore[attr-defined]


def test_the_document_and_its_error_come_back_whole() -> None:
    ended = _run("writes", {"error": "ValueError: no data", "traceback": "..."})
    assert ended.error == "ValueError: no data" and ended.document["traceback"] == "..."  # type: ignore[attr-defined]
    assert _run("writes", {"status": "ok"}).error is None  # type: ignore[attr-defined]


def test_a_result_with_a_misspelt_field_is_unreadable_and_the_well_spelt_one_is_read() -> None:
    from detprof.documents import JobResult

    misspelt = _run("writes", {"status": "ok", "step_mss": [1.0, 2.0]}, reads=JobResult)
    assert misspelt.ending is Ending.UNREADABLE and misspelt.document is None  # type: ignore[attr-defined]
    assert misspelt.how == ("its result is not a JobResult: it has the field 'step_mss', which a JobResult "  # type: ignore[attr-defined]
                            "does not have")
    wrong_type = _run("writes", {"status": "ok", "step_ms": ["1.0"]}, reads=JobResult)
    assert wrong_type.ending is Ending.UNREADABLE  # type: ignore[attr-defined]
    assert wrong_type.how.endswith("step_ms[0] is str, not float")  # type: ignore[attr-defined]
    # control: the same result, well spelt, is read whole
    spelt = _run("writes", {"status": "ok", "step_ms": [1.0, 2.0]}, reads=JobResult)
    assert spelt.ending is Ending.OK and spelt.document["step_ms"] == [1.0, 2.0]  # type: ignore[attr-defined]
