"""``cr.compile``: trace a function once per input signature into a flat program of array
calls, forward and backward, and replay it with no per-op Tensor or graph objects.

How it works. The first call with a new signature (shapes, dtypes, which inputs need
gradients, and the values of non-array arguments) runs the function on Tensors while every op
is recorded, then runs the eager backward pass once with a recorder attached. The forward
program is the recorded ops in topological order; the backward program is the engine's own
sequence of VJP rule calls, in the order it made them, with the same summing back over
broadcast dimensions and the same accumulation order — so a replay gives the same values and
gradients as eager mode, bit for bit. Later calls with that signature replay the two programs
on raw arrays.

The compiled function returns a Tensor made by one node whose inputs are the Tensors it was
given and the parameters it closed over (read afresh on every call, so an optimizer's updates
are seen); ``backward()``, ``cr.grad`` and optimizers work through that node as through any
other. A function whose Python control flow depends on values (``if t > 0``, ``float(t)``),
or that draws random numbers (dropout), cannot be traced: it runs eagerly instead, with a
one-time warning. In forward mode (``cr.jvp``) the function runs eagerly; gradients of
gradients (``create_graph=True``) are not available through a compiled function — call the
function itself for those.

>>> import chainrule as cr, numpy as np
>>> w = cr.tensor([0.5, -1.0], requires_grad=True)
>>> @cr.compile
... def loss(x):
...     return cr.sum(cr.tanh(x * w) ** 2)
>>> x = np.array([1.0, 2.0])
>>> value = loss(x)
>>> value.backward()
>>> t = np.tanh(x * [0.5, -1.0])
>>> bool(np.allclose(w.grad.numpy(), 2 * t * (1 - t**2) * x))
True
"""

from __future__ import annotations

import functools
import operator
import warnings
from collections.abc import Callable
from typing import Any

from . import _state
from .backend import is_array, namespace
from .dag import topological_order
from .graph import _fit_to, run_traced
from .ops._registry import Op, defop
from .tensor import Tensor

__all__ = ["compile", "CompiledFunction"]


class _Program:
    """One traced signature: the forward steps, the backward steps, and where inputs live.

    Every value has a slot in a flat list: the arguments, the leaves the function closed over,
    the constants it used, then each op's result. A step is a pre-bound call (its op's forward
    or one VJP rule, parameters already applied) and the slots it reads."""

    def __init__(self, fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
        traced: list[Any] = []
        for a in args:
            if isinstance(a, Tensor):
                traced.append(Tensor(a.data, requires_grad=a.requires_grad))
            elif is_array(a):
                traced.append(Tensor(a))
            else:
                traced.append(a)
        flags = _state.flags
        previous = flags.tracing
        flags.tracing = True
        try:
            out = fn(*traced)
        finally:
            flags.tracing = previous
        if not isinstance(out, Tensor):
            raise _state.TraceAbort("the function must return one Tensor")
        order = topological_order(out)
        self.slot_of: dict[int, int] = {}
        self.template: list[Any] = []
        self.arg_slots: list[int | None] = []
        for a in traced:
            self.arg_slots.append(self._slot(a) if isinstance(a, Tensor) else None)
        self.closure: list[tuple[int, Tensor]] = []  # leaves the function closed over
        for t in order:
            if t._node is None and id(t) not in self.slot_of:
                self.closure.append((self._slot(t), t))
        self.forward: list[tuple[Any, Any, int]] = []
        for t in order:
            if t._node is None:
                continue
            op, inputs, params = t._node[0], t._node[1], t._node[2]
            refs = self._refs(inputs)
            raw = [a.data if isinstance(a, Tensor) else a for a in inputs]
            call = functools.partial(op.forward, namespace(*raw), **params)
            self.forward.append((call, _getter(refs), self._slot(t)))
        self.out_slot = self.slot_of[id(out)]
        self.backward: list[tuple[Any, int, int, Any]] = []
        if out.requires_grad:
            self._trace_backward(out)
        self.size = len(self.template)
        # the tensors gradients flow to, as eager mode sees them: arguments and closure leaves
        # that require grad and that the backward pass reaches (an unused one gets no .grad)
        reached = {parent for _, _, parent, _ in self.backward}
        self.grad_sources: list[tuple[str, int]] = []
        self.grad_inputs: list[int] = []
        for k, (slot, a) in enumerate(zip(self.arg_slots, traced)):
            if isinstance(a, Tensor) and a.requires_grad and slot in reached:
                self.grad_sources.append(("arg", k))
                self.grad_inputs.append(slot)  # type: ignore[arg-type]
        for j, (slot, t) in enumerate(self.closure):
            if t.requires_grad and slot in reached:
                self.grad_sources.append(("closure", j))
                self.grad_inputs.append(slot)
        # which closed-over tensors required grad when traced: if that changes (a frozen
        # layer), the program no longer fits and is traced again
        self.closure_flags = tuple(t.requires_grad for _, t in self.closure)

    def _slot(self, value: Any) -> int:
        """A new slot for a tensor (filled on each call) or a constant (filled now)."""
        self.template.append(None if isinstance(value, Tensor) else value)
        if isinstance(value, Tensor):
            self.slot_of[id(value)] = len(self.template) - 1
        return len(self.template) - 1

    def _refs(self, inputs: tuple[Any, ...]) -> tuple[int, ...]:
        return tuple(
            self.slot_of[id(a)] if isinstance(a, Tensor) else self._slot(a) for a in inputs
        )

    def _trace_backward(self, out: Tensor) -> None:
        steps: list[tuple[Any, ...]] = []

        def record(t: Tensor, g: Any, op: Any, sent: Any) -> None:
            if op is not None:
                steps.append((t, op, [(i, a) for i, a, _ in sent]))

        key = id(out)
        _state.tracers[key] = record
        try:
            run_traced(out, None if out.size == 1 else _ones(out))
        finally:
            del _state.tracers[key]
        for t, op, sent in steps:
            inputs, params = t._node[1], t._node[2]
            node = self.slot_of[id(t)]
            reads = _getter((node, *self._refs(inputs)))  # (out, *inputs)
            for i, a in sent:
                if op.variadic:
                    call = functools.partial(op.vjps[0], i, **params)
                else:
                    call = functools.partial(op.vjps[i], **params)
                self.backward.append((call, node, self.slot_of[id(a)], reads))

    def run(self, values: list[Any]) -> Any:
        """The forward program on raw arrays; ``values`` holds the inputs' slots."""
        for call, reads, slot in self.forward:
            values[slot] = call(*reads(values))
        return values[self.out_slot]

    def gradients(self, values: list[Any], seed: Any) -> list[Any]:
        """The backward program: the engine's rule calls in the engine's order, with its
        summing back over broadcast dimensions and its order of accumulation."""
        grads: list[Any] = [None] * len(values)
        grads[self.out_slot] = seed
        for call, node, parent, reads in self.backward:
            c = call(grads[node], *reads(values))
            like = values[parent]
            if c.shape != like.shape or c.dtype != like.dtype:
                c = _fit_to(c, _Shape(like), _OP)  # type: ignore[arg-type]
            prev = grads[parent]
            grads[parent] = c if prev is None else prev + c
        return grads


def _getter(slots: tuple[int, ...]) -> Callable[[list[Any]], tuple[Any, ...]]:
    """A fast reader of several slots at once (always returning a tuple)."""
    if not slots:
        return lambda values: ()
    if len(slots) == 1:
        (only,) = slots
        return lambda values: (values[only],)
    return operator.itemgetter(*slots)


class _Shape:
    """Stands in for a Tensor where the engine's helpers only read ``.data``."""

    __slots__ = ("data",)

    def __init__(self, data: Any) -> None:
        self.data = data


def _frozen(value: Any) -> Any:
    """A hashable stand-in for an argument's value (lists become tuples); an argument with
    no such value cannot key a program."""
    if isinstance(value, (list, tuple)):
        return (type(value).__name__, tuple(_frozen(v) for v in value))
    if isinstance(value, dict):
        return ("dict", tuple(sorted((k, _frozen(v)) for k, v in value.items())))
    try:
        hash(value)
    except TypeError:
        raise _state.TraceAbort(f"an argument of type {type(value).__name__}") from None
    return value


def _ones(t: Tensor) -> Any:
    return namespace(t.data).ones_like(t.data)


def _compiled_vjp(i: int, g: Any, out: Any, *inputs: Any, call: Any) -> Any:
    if isinstance(g, Tensor):
        raise NotImplementedError(
            "compile: a compiled function gives first-order gradients only; for "
            "create_graph=True (gradients of gradients) call the function uncompiled"
        )
    if call.grads is None or call.seed is not g:
        call.seed = g
        call.grads = call.program.gradients(call.values, g)
    slot = call.program.grad_inputs[i]
    grad = call.grads[slot]
    return grad if grad is not None else namespace(call.values[slot]).zeros_like(call.values[slot])


_OP: Op = defop(
    "compiled",
    lambda xp, *inputs, call: None,
    vjp=_compiled_vjp,
    jvp=None,
    second_order=False,
    formula="d f(x)/dx: the traced backward program of a cr.compile'd function",
    family="custom",
    description="A cr.compile'd function: its traced forward and backward programs, replayed.",
)


class _Call:
    """One replay: the values of every slot, and the gradients once asked for."""

    __slots__ = ("program", "values", "grads", "seed")

    def __init__(self, program: _Program, values: list[Any]) -> None:
        self.program = program
        self.values = values
        self.grads: list[Any] | None = None
        self.seed: Any = None


class CompiledFunction:
    """What ``cr.compile(f)`` returns: call it like ``f``."""

    def __init__(self, fn: Callable[..., Any]) -> None:
        self.fn = fn
        self.programs: dict[Any, _Program] = {}
        self.eager: set[Any] = set()
        self.warned = False
        # name and docstring of fn, but never its attributes: they would overwrite ours
        functools.update_wrapper(self, fn, updated=())

    def _signature(self, args: tuple[Any, ...]) -> Any:
        key: list[Any] = [_state.local.grad_enabled]
        for a in args:
            if isinstance(a, Tensor):
                key.append(("tensor", a.shape, str(a.dtype), a.requires_grad))
            elif is_array(a):
                key.append(("array", tuple(a.shape), str(a.dtype)))
            else:  # any other argument is part of the program: keyed by its value
                key.append(("static", type(a), _frozen(a)))
        return tuple(key)

    def __call__(self, *args: Any) -> Any:
        if _state.forward_levels or _state.flags.tracing or _state.flags.anomaly:
            return self.fn(*args)  # forward mode, nested traces, anomaly checks: eager
        try:
            key = self._signature(args)
        except _state.TraceAbort as why:
            return self._eager(why, args)
        if key in self.eager:
            return self.fn(*args)
        program = self.programs.get(key)
        if program is not None and program.closure_flags != tuple(
            t.requires_grad for _, t in program.closure
        ):
            program = None  # a parameter was frozen or unfrozen since the trace
        if program is None:
            try:
                program = _Program(self.fn, args)
            except _state.TraceAbort as why:
                self.eager.add(key)
                return self._eager(why, args)
            self.programs[key] = program
        return self._replay(program, args)

    def _eager(self, why: Any, args: tuple[Any, ...]) -> Any:
        if not self.warned:
            self.warned = True
            warnings.warn(
                f"cr.compile({getattr(self.fn, '__name__', 'f')}): cannot trace it ({why}); "
                "running it eagerly instead. Compiled functions must not branch on tensor "
                "values, draw random numbers, or take arguments that cannot be compared.",
                RuntimeWarning,
                stacklevel=3,
            )
        return self.fn(*args)

    def _replay(self, program: _Program, args: tuple[Any, ...]) -> Tensor:
        values = list(program.template)  # constants in place, the rest filled below
        tensors: list[Tensor] = []
        for a, slot in zip(args, program.arg_slots):
            if slot is None:
                continue
            values[slot] = a.data if isinstance(a, Tensor) else a
        for slot, leaf in program.closure:
            values[slot] = leaf.data  # parameters as they are now
        out = Tensor(program.run(values))
        if program.grad_sources and _state.local.grad_enabled:
            for kind, k in program.grad_sources:
                tensors.append(args[k] if kind == "arg" else program.closure[k][1])
            out._rg = True
            params = {"call": _Call(program, values)}
            out._node = (_OP, tuple(tensors), params, _state.next_seq(), None, _state.local.scope)
        return out


def compile(fn: Callable[..., Any]) -> CompiledFunction:  # noqa: A001 (cr.compile, like torch's)
    """Trace ``fn`` once per input signature and replay it as a flat program of array calls
    (see the module docstring). Usable as a decorator."""
    return CompiledFunction(fn)
