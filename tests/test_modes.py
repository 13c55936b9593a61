"""Every mode is per thread (chainrule/engine/modes.py): grad mode, anomaly detection, forward
mode and compile tracing switched on in one thread leave another thread's ops as they were."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import numpy as np

import chainrule as cr
from chainrule.engine.modes import state


def _in_thread_while(switch: Callable[[], Any], probe: Callable[[], Any]) -> tuple[Any, Any]:
    """Run ``probe`` in a second thread while this thread is inside the context ``switch()``;
    returns (what the probe saw, the state inside the switch here)."""
    inside, done = threading.Event(), threading.Event()
    seen: dict[str, Any] = {}

    def worker() -> None:
        inside.wait()
        seen["probe"] = probe()
        done.set()

    t = threading.Thread(target=worker)
    t.start()
    with switch():
        here = (state.grad_enabled, state.anomaly, bool(state.levels), state.special)
        inside.set()
        assert done.wait(30)
    t.join()
    return seen["probe"], here


def _records() -> tuple[bool, bool, bool, bool]:
    y = cr.tensor(2.0, requires_grad=True) * 3.0
    return (y.requires_grad, state.anomaly, bool(state.levels), state.special)


def test_no_grad_in_one_thread_leaves_another_recording() -> None:
    seen, here = _in_thread_while(cr.no_grad, _records)
    assert here[0] is False and seen == (True, False, False, False)


def test_detect_anomaly_in_one_thread_is_off_in_another() -> None:
    seen, here = _in_thread_while(cr.detect_anomaly, _records)
    assert here[1] is True and here[3] is True and seen == (True, False, False, False)

    def nan_in_other_thread() -> str:
        x = cr.tensor(-1.0, requires_grad=True)
        with np.errstate(invalid="ignore"):  # (NumPy's error state is per thread too)
            return str(float(cr.sqrt(x).data))  # NaN, and no AnomalyError in this thread

    seen, _ = _in_thread_while(cr.detect_anomaly, nan_in_other_thread)
    assert seen == "nan"


def test_a_jvp_in_one_thread_pushes_no_tangents_in_another() -> None:
    x = cr.tensor(1.5)
    results: dict[str, Any] = {}
    inside, done = threading.Event(), threading.Event()

    def f(t: cr.Tensor) -> cr.Tensor:
        inside.set()  # the level is active here, in this thread, while the other thread works
        assert done.wait(30)
        return t * t

    def other() -> None:
        inside.wait()
        results["other"] = _records()
        done.set()

    t = threading.Thread(target=other)
    t.start()
    out, tangent = cr.jvp(f, (x,), (np.array(1.0),))
    t.join()
    assert float(tangent) == 3.0  # d(x^2) = 2x at 1.5
    assert results["other"] == (True, False, False, False)
