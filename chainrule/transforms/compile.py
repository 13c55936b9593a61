"""``cr.compile``: trace a function once per input signature into a flat program of array
calls, forward and backward, and replay it with no per-op Tensor or graph objects.

How it works. The first call with a new signature (shapes, dtypes, which inputs need
gradients, and the values of non-array arguments) runs the function on Tensors while every op
is recorded, then runs the eager backward pass once with a recorder attached. The forward
program is the recorded ops in topological order; the backward program is the engine's own
sequence of VJP rule calls, in the order it made them, with the same summing back over
broadcast dimensions and the same accumulation order — so a replay gives the same values and
gradients as eager mode, bit for bit. Both programs are written out as Python source (one
generated function each, over local variables, every op's forward or VJP rule called directly
with its parameters in the call) and compiled by Python once; where a gradient needs summing
back over broadcast dimensions or a cast is decided at trace time, since the signature fixes
every shape and dtype; each node's gradient is deleted once its rules have run, so the
gradients of a long backward program do not pile up until its end (the forward values it
reads stay until it returns). Later calls with that signature run the two functions on raw
arrays.
``program.forward.source`` and ``program.backward.source`` show the code.

Why rules are replayed rather than traced as ops: a few rules compute part of their result
from raw array values (the one-hot target of cross-entropy, the max that logsumexp subtracts);
traced as ops, those values would be frozen into the program from the first call. Calling the
rule itself recomputes them from the values of each call.

The compiled function returns a Tensor made by one node whose inputs are the Tensors it was
given and the parameters it closed over (read afresh on every call, so an optimizer's updates
are seen); a function returning a container of Tensors of one dtype (a loss and its parts)
gets their leaves raveled into that one result by the program and taken apart again as
views, each with its gradient. ``backward()``, ``cr.grad`` and optimizers work through that
node as through any other. A function whose Python control flow depends on values
(``if t > 0``, ``float(t)``), or that draws random numbers (dropout), cannot be traced: it
runs eagerly instead, with a one-time warning. In forward mode (``cr.jvp``) the function
runs eagerly; gradients of gradients (``create_graph=True``) are not available through a
compiled function — call the function itself for those.

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
import math
import operator
import warnings
from collections.abc import Callable
from typing import Any

from ..backends import is_array, namespace
from ..engine.backward import (
    run_traced,
    topological_order,
    unbroadcast_axes,
    unwatch,
    watch,
    xp_sum,
)
from ..engine.declare import defop
from ..engine.modes import TraceAbort, next_seq, state, tracing
from ..engine.op import NO_PARAMS, Op
from ..engine.registry import OPS, SAVED
from ..engine.tensor import MANY, Tensor, wrap
from . import tree

__all__ = ["compile", "CompiledFunction"]

_NONE: dict[str, str] = {}  # no keyword arguments (never mutated)


class _Program:
    """One traced signature, turned into two generated Python functions.

    ``forward(*inputs)`` takes the arrays of the Tensor arguments and of the leaves the
    function closed over, and returns the result and the values the backward pass reads.
    ``backward(seed, saved)`` returns the gradients of the inputs that receive one. Each is
    straight-line code over local variables: one call per op's forward or per VJP rule (with
    its parameters written in), the summing back over broadcast dimensions only where the
    trace showed a shape or dtype to fix, and ``g = g + c`` in the engine's order of
    accumulation. No Tensors, no dictionaries, no per-step checks: the signature fixed every
    shape and dtype."""

    def __init__(self, fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
        traced: list[Any] = []
        for a in args:
            if isinstance(a, Tensor):
                traced.append(Tensor(a._data, requires_grad=a.requires_grad))
            elif is_array(a):
                traced.append(Tensor(a))
            else:
                traced.append(a)
        with tracing():
            out = fn(*traced)
            # a container of Tensors (a loss and its parts, a dict of outputs) is returned as
            # one flat Tensor, its leaves raveled end to end, and taken apart after each replay
            self.results: tuple[Any, list[tuple[int, ...]]] | None = None
            if not isinstance(out, Tensor):
                out = self._packed(out)
        self.names: dict[int, str] = {}  # id(tensor) -> its variable in the generated code
        self.env: dict[str, Any] = {}  # the generated code's globals: ops, rules, constants
        self.consts: dict[int, str] = {}
        order = topological_order(out)
        inputs: list[str] = []
        self.arg_positions = [k for k, a in enumerate(traced) if isinstance(a, Tensor)]
        for k in self.arg_positions:
            inputs.append(self._name(traced[k]))
        self.closure: list[Tensor] = [  # leaves the function closed over (parameters, ...)
            t for t in order if t._node is None and id(t) not in self.names
        ]
        for t in self.closure:
            inputs.append(self._name(t))
        body: list[str] = []
        saving: dict[int, tuple[int, str]] = {}  # id -> (line, the call through op.save)
        for t in order:
            if t._node is None:
                continue
            op, args_, params = t._node[0], t._node[1], t._node[2]
            raw = [a._data if isinstance(a, Tensor) else a for a in args_]
            xp = self._const(namespace(*raw))
            refs = [xp, *self._refs(args_)]
            if op.save is not None:
                saving[id(t)] = (len(body), self._call(self._const(op.save), refs, params))
            call = self._call(self._const(op.forward), refs, params)
            body.append(f"{self._name(t)} = {call}")
        # the tensors gradients flow to, as eager mode sees them: arguments and closure leaves
        # that require grad and that the backward pass reaches (an unused one gets no .grad)
        self.grad_sources: list[tuple[str, int]] = []
        backward_lines: list[str] = []
        saved: list[str] = []
        if out.requires_grad:
            backward_lines, saved, reached = self._trace_backward(out)
            # a node whose rules read what its op's save() returns (its ``...s`` variable, in
            # the values kept for the backward program) is computed through save()
            for k, (line, call) in saving.items():
                name = self.names[k]
                if name + "s" in saved:
                    body[line] = f"{name}, {name}s = {call}"
            for k in self.arg_positions:
                if traced[k].requires_grad and id(traced[k]) in reached:
                    self.grad_sources.append(("arg", k))
            for j, t in enumerate(self.closure):
                if t.requires_grad and id(t) in reached:
                    self.grad_sources.append(("closure", j))
        # which closed-over tensors required grad when traced: if that changes (a frozen
        # layer), the program no longer fits and is traced again
        self.closure_flags = [t.requires_grad for t in self.closure]
        self.grad_args = [k for kind, k in self.grad_sources if kind == "arg"]
        self.grad_closure = tuple(self.closure[k] for kind, k in self.grad_sources if kind != "arg")
        keep = ", ".join(saved) + ("," if len(saved) == 1 else "")
        self.forward = self._define(
            "forward", inputs, [*body, f"return {self.names[id(out)]}, ({keep})"]
        )
        sources = [traced[k] if kind == "arg" else self.closure[k] for kind, k in self.grad_sources]
        grads = ", ".join(f"g{self.names[id(t)]}" for t in sources)
        unpack = [f"({keep}) = saved"] if saved else []
        self.backward = self._define(
            "backward",
            [f"g{self.names[id(out)]}", "saved"],
            [*unpack, *backward_lines, f"return ({grads}{',' if len(sources) == 1 else ''})"],
        )

    def _packed(self, out: Any) -> Tensor:
        leaves, structure = tree.flatten(out)
        if structure.kind is None or not leaves or not all(isinstance(v, Tensor) for v in leaves):
            raise TraceAbort("the function must return a Tensor or a container of Tensors")
        if len({v.dtype for v in leaves}) > 1:
            raise TraceAbort("the Tensors it returns have different dtypes")
        self.results = (structure, [tuple(v.shape) for v in leaves])
        return OPS["concatenate"](*[OPS["reshape"](v, shape=(-1,)) for v in leaves], axis=0)

    def unpack(self, out: Tensor) -> Any:
        """The replayed result in the structure the function returned."""
        if self.results is None:
            return out
        structure, shapes = self.results
        leaves, start = [], 0
        for shape in shapes:
            size = math.prod(shape)
            piece = OPS["getitem"](out, index=(slice(start, start + size),))
            leaves.append(OPS["reshape"](piece, shape=shape))
            start += size
        return tree.unflatten(structure, leaves)

    # -- naming ---------------------------------------------------------------------------
    def _name(self, t: Tensor) -> str:
        name = self.names.get(id(t))
        if name is None:
            name = self.names[id(t)] = f"v{len(self.names)}"
        return name

    def _const(self, value: Any) -> str:
        """A global of the generated code holding ``value`` (an op, a rule, a constant)."""
        name = self.consts.get(id(value))
        if name is None:
            name = self.consts[id(value)] = f"k{len(self.consts)}"
            self.env[name] = value
        return name

    def _refs(self, args: tuple[Any, ...]) -> list[str]:
        return [self.names[id(a)] if isinstance(a, Tensor) else self._const(a) for a in args]

    def _call(
        self, fn: str, args: list[str], params: dict[str, Any], names: dict[str, str] = _NONE
    ) -> str:
        """The call as code: ``params`` are constants; ``names``, variables of the program."""
        keywords = [f"{key}={self._const(value)}" for key, value in params.items()]
        keywords += [f"{key}={name}" for key, name in names.items()]
        return f"{fn}({', '.join(args + keywords)})"

    def _define(self, name: str, params: list[str], lines: list[str]) -> Callable[..., Any]:
        source = f"def {name}({', '.join(params)}):\n" + "".join(f"    {x}\n" for x in lines)
        namespace_: dict[str, Any] = dict(self.env)
        exec(compile_source(source, f"<cr.compile {name}>", "exec"), namespace_)  # noqa: S102
        fn: Callable[..., Any] = namespace_[name]
        fn.source = source  # type: ignore[attr-defined]
        return fn

    # -- the backward program ---------------------------------------------------------------
    def _trace_backward(self, out: Tensor) -> tuple[list[str], list[str], set[int]]:
        """Run the eager backward pass once with a recorder; write its rule calls as code.
        Returns the lines, the forward values they read, and the ids of the tensors reached."""
        steps: list[tuple[Any, ...]] = []

        def record(t: Tensor, g: Any, op: Any, sent: Any) -> None:
            if op is not None:
                steps.append((t, g, op, [(i, a) for i, a, _ in sent]))

        watch(out, record)
        try:
            run_traced(out, None if out.size == 1 else _ones(out))
        finally:
            unwatch(id(out), record)

        def grad(a: Tensor) -> str:
            return f"g{self.names[id(a)]}"

        lines: list[str] = []
        saved: dict[str, None] = {}  # ordered set
        has_grad: set[int] = {id(out)}
        for t, g, op, sent in steps:
            args_, params = t._node[1], t._node[2]
            node = self.names[id(t)]
            refs = self._refs(args_)
            raw = [a._data if isinstance(a, Tensor) else a for a in args_]
            kept = {SAVED: node + "s"} if op.save is not None else {}  # see declare.kernel
            for name in (node, *refs, *kept.values()):
                if name.startswith("v"):
                    saved[name] = None
            for i, a in sent:
                # the program runs on arrays: the rules of a plain pass, fast kernels included
                rule = op.fast_vjps[0] if op.variadic else op.fast_vjps[i]
                lead = [str(i)] if op.variadic else []
                call_args = [*lead, grad(t), node, *refs]
                lines.append(f"c = {self._call(self._const(rule), call_args, params, kept)}")
                # the rule's raw result on the traced values says whether the engine had to
                # sum it back over broadcast dimensions or cast it (same shapes every replay)
                c = rule(*([i] if op.variadic else []), g, t._data, *raw, **params)
                lines.extend(self._fit(c, a._data, op))
                target = grad(a)
                lines.append(
                    f"{target} = c" if id(a) not in has_grad else f"{target} = {target} + c"
                )
                has_grad.add(id(a))
            # this node's gradient is used up: let it go now, as the engine does, rather than
            # at the end of the program
            lines.append(f"del g{node}")
        return lines, list(saved), has_grad

    def _fit(self, c: Any, like: Any, op: Any) -> list[str]:
        """Code doing what the engine's ``_fit_to`` does to ``c``, decided now."""
        lines = []
        if tuple(c.shape) != tuple(like.shape):
            shape = tuple(like.shape)
            axes = unbroadcast_axes(tuple(c.shape), shape, op)
            xp = self._const(namespace(c))
            if axes:  # the sum the engine's plain pass makes
                lines.append(f"c = {self._const(xp_sum)}({xp}, c, {self._const(axes)})")
            if len(axes) != len(c.shape) - len(shape):  # not only leading axes: reshape too
                lines.append(f"c = {xp}.reshape(c, {self._const(shape)})")
        if c.dtype != like.dtype:
            lines.append(f"c = {self._const(OPS['astype'])}(c, dtype={self._const(like.dtype)})")
        return lines


compile_source = compile  # the builtin, before this module's compile() shadows it


def _frozen(value: Any) -> Any:
    """An argument's value, to key a program by (containers arrive flattened, see
    ``_call_with_containers``); an argument that cannot be hashed cannot key one."""
    try:
        hash(value)
    except TypeError:
        raise TraceAbort(f"an argument of type {type(value).__name__}") from None
    return value


def _ones(t: Tensor) -> Any:
    return namespace(t._data).ones_like(t._data)


def _compiled_vjp(i: int, g: Any, out: Any, call: Any, *inputs: Any) -> Any:
    # input 0 is the replay (a _Call, not a Tensor: it gets no gradient); 1... the tensors
    if isinstance(g, Tensor):
        raise NotImplementedError(
            "compile: a compiled function gives first-order gradients only; for "
            "create_graph=True (gradients of gradients) call the function uncompiled"
        )
    if call.grads is None or call.seed is not g:
        call.seed = g
        call.grads = call.program.backward(g, call.values)
    return call.grads[i - 1]


_OP: Op = defop(
    "compiled",
    lambda xp, call, *inputs: None,
    "A cr.compile'd function: its traced forward and backward programs, replayed.",
    family="custom",
    second_order=False,
    dinputs=(_compiled_vjp, "d f(x)/dx: the traced backward program of a cr.compile'd function"),
)


_RG = operator.attrgetter("_rg")  # (map with these: no Python frame per tensor)
_DATA = operator.attrgetter("_data")


def _data(a: Any) -> Any:
    return a._data if isinstance(a, Tensor) else a


class _Call:
    """One replay: the forward values the backward program reads, and the gradients once
    asked for."""

    __slots__ = ("program", "values", "grads", "seed")

    def __init__(self, program: _Program, values: list[Any]) -> None:
        self.program = program
        self.values = values
        self.grads: list[Any] | None = None
        self.seed: Any = None

    def __repr__(self) -> str:
        return "<the compiled program's saved values>"


class CompiledFunction:
    """What ``cr.compile(f)`` returns: call it like ``f``."""

    def __init__(self, fn: Callable[..., Any]) -> None:
        self.fn = fn
        self.programs: dict[Any, _Program] = {}
        self.eager: set[Any] = set()
        self.warned = False
        # per structure of container arguments: the function of their leaves, compiled
        self.by_structure: dict[Any, CompiledFunction] = {}
        # name and docstring of fn, but never its attributes: they would overwrite ours
        functools.update_wrapper(self, fn, updated=())

    def _signature(self, args: tuple[Any, ...]) -> Any:
        key: list[Any] = [state.grad_enabled]
        for a in args:
            if isinstance(a, Tensor):
                # the dtype's type first: dtypes of two array namespaces never get compared
                dtype = a._data.dtype
                key.append(("tensor", a._data.shape, type(dtype), dtype, a._rg))
            elif is_array(a):
                key.append(("array", tuple(a.shape), type(a.dtype), a.dtype))
            else:  # any other argument is part of the program: keyed by its value
                key.append(("static", type(a), _frozen(a)))
        return tuple(key)

    def __call__(self, *args: Any) -> Any:
        if state.special or state.vmap_levels:
            return self.fn(*args)  # forward mode, nested traces, anomaly checks, vmap: eager
        if any(_is_container(a) for a in args):
            return self._call_with_containers(args)
        try:
            key = self._signature(args)
        except TraceAbort as why:
            return self._eager(why, args)
        program = self.programs.get(key)
        if program is not None and program.closure_flags != list(map(_RG, program.closure)):
            program = None  # a parameter was frozen or unfrozen since the trace
        if program is None:
            if key in self.eager:
                return self.fn(*args)
            try:
                program = _Program(self.fn, args)
            except TraceAbort as why:
                self.eager.add(key)
                return self._eager(why, args)
            self.programs[key] = program
        return self._replay(program, args)

    def _call_with_containers(self, args: tuple[Any, ...]) -> Any:
        """Arguments that are containers (a dict of parameters): the function of their leaves
        is compiled, once per structure, and called with the leaves."""
        leaves, spec = tree.flatten(list(args))
        inner = self.by_structure.get(spec)
        if inner is None:
            fn = self.fn

            def of_leaves(*values: Any) -> Any:
                return fn(*tree.unflatten(spec, values))

            inner = self.by_structure[spec] = CompiledFunction(of_leaves)
        result = inner(*leaves)
        self.warned = self.warned or inner.warned
        return result

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

    def _replay(self, program: _Program, args: tuple[Any, ...]) -> Any:
        inputs = [_data(args[k]) for k in program.arg_positions]
        inputs += map(_DATA, program.closure)  # the parameters as they are now
        value, saved = program.forward(*inputs)
        out = wrap(value)
        if program.grad_sources and state.grad_enabled:
            # the node, in the result's slots (see chainrule.engine.tensor): its inputs are the
            # arguments and parameters that need gradients
            out._rg = True
            out._op = _OP
            out._a = (_Call(program, saved), *[args[k] for k in program.grad_args])
            out._a += program.grad_closure
            out._b = MANY
            out._params = NO_PARAMS
            out._seq = next_seq()
            out._scope = state.scope
        return program.unpack(out)


def _is_container(value: Any) -> bool:
    return tree.structure(value).kind is not None and value is not None


def compile(fn: Callable[..., Any]) -> CompiledFunction:  # noqa: A001 (cr.compile, like torch's)
    """Trace ``fn`` once per input signature and replay it as a flat program of array calls
    (see the module docstring). Usable as a decorator."""
    return CompiledFunction(fn)
