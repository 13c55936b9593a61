"""Reading a small expression safely: the restricted parser behind ``chainrule explain``.

EXPR is read with Python's ``ast`` and an allow-list: numbers, the variables given, unary
``+ -``, binary ``+ - * / ** @`` and calls by bare name to the differentiable elementwise, nn
and reduction ops of the table (``tanh``, ``sigmoid``, ``exp``, ``sum``, ...). The whole tree
is checked before anything is built; anything else is refused with :class:`ExplainError`, and
nothing is ever passed to ``eval``. The expression is then built from chainrule's ops, one
named node per distinct sub-expression.
"""

from __future__ import annotations

import ast
import keyword
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..engine.tensor import Tensor
from ..ops import OPS, Op

__all__ = ["ExplainError", "functions", "parse_at", "MAX_ENTRIES"]


class ExplainError(ValueError):
    """EXPR or ``--at`` was refused; the message is one line naming what and why (the
    command line prints it as it is)."""


_BINARY = {
    ast.Add: "add",
    ast.Sub: "subtract",
    ast.Mult: "multiply",
    ast.Div: "divide",
    ast.Pow: "power",
    ast.MatMult: "matmul",
}
_SYMBOL: dict[type, str] = {
    ast.FloorDiv: "//",
    ast.Mod: "%",
    ast.LShift: "<<",
    ast.RShift: ">>",
    ast.BitOr: "|",
    ast.BitAnd: "&",
    ast.BitXor: "^",
    ast.Not: "not",
    ast.Invert: "~",
}
_CONSTRUCT = {
    ast.Attribute: "attribute access",
    ast.Subscript: "subscripts",
    ast.Slice: "slices",
    ast.Lambda: "lambda functions",
    ast.ListComp: "comprehensions",
    ast.SetComp: "comprehensions",
    ast.DictComp: "comprehensions",
    ast.GeneratorExp: "generator expressions",
    ast.Compare: "comparisons",
    ast.BoolOp: "and/or",
    ast.IfExp: "conditional expressions",
    ast.NamedExpr: "assignment expressions (:=)",
    ast.JoinedStr: "f-strings",
    ast.List: "lists",
    ast.Tuple: "tuples",
    ast.Set: "sets",
    ast.Dict: "dicts",
    ast.Starred: "starred arguments",
    ast.Await: "await",
}
_STATEMENT = {
    ast.Import: "import statements",
    ast.ImportFrom: "import statements",
    ast.Assign: "assignments",
    ast.AugAssign: "assignments",
    ast.AnnAssign: "assignments",
    ast.FunctionDef: "function definitions",
    ast.ClassDef: "class definitions",
    ast.Delete: "del statements",
}
_LITERAL = {str: "strings", bytes: "bytes", complex: "complex numbers", bool: "booleans"}
MAX_ENTRIES = 1000  # entries of all the variables together: the report shows every one
_ALLOWED = "numbers, the variables given in --at, + - * / ** @ and chainrule functions"


def functions() -> dict[str, Op]:
    """The functions EXPR may call, read from the op table: the differentiable elementwise,
    nn and reduction ops of one or two array inputs, every input differentiable."""
    return {
        name: op
        for name, op in OPS.items()
        if op.family in ("elementwise", "nn", "reduction")
        and op.nin in (1, 2)
        and op.differentiable
        and all(callable(rule) for rule in op.vjps)
    }


# -- --at ---------------------------------------------------------------------------------------
def parse_at(text: str) -> dict[str, Any]:
    """``"x=3,y=-1.5"`` (or ``"w=[1, 2],b=0.5"`` for arrays) -> {name: float64 value}.

    >>> parse_at("x=3, y=-1.5")
    {'x': 3.0, 'y': -1.5}
    """
    out: dict[str, Any] = {}
    depth, start, pieces = 0, 0, []
    for i, ch in enumerate(text + ","):
        depth += {"[": 1, "]": -1}.get(ch, 0)
        if ch == "," and depth <= 0:
            pieces.append(text[start:i].strip())
            start = i + 1
    for piece in pieces:
        if not piece:
            raise ExplainError(
                f"--at {text!r}: an empty entry; write name=value pairs like x=3,y=2"
            )
        name, eq, raw = (part.strip() for part in piece.partition("="))
        if not eq:
            raise ExplainError(f"--at {piece!r}: give a value, as in {piece}=1.0")
        if not name.isidentifier() or keyword.iskeyword(name):
            raise ExplainError(f"--at {piece!r}: {name!r} is not a variable name (x, w1, b, ...)")
        if name in out:
            raise ExplainError(f"--at: {name} is given twice")
        if not raw:
            raise ExplainError(f"--at {piece!r}: {name} has no value; write {name}=3")
        out[name] = _number(raw, name)
    return out


def _number(raw: str, name: str) -> Any:
    try:
        value = _literal(ast.parse(raw.strip(), mode="eval").body)
        array = np.asarray(value, dtype=np.float64)
    except (SyntaxError, ValueError, TypeError, RecursionError):
        raise ExplainError(
            f"--at {name}={raw}: not a number (or a list like [1, 2] for an array)"
        ) from None
    if not np.all(np.isfinite(array)):
        raise ExplainError(f"--at {name}={raw}: give a finite number")
    return float(array) if array.ndim == 0 else array


def _literal(node: ast.AST) -> Any:
    """A number or a (nested) list of numbers, read without evaluating anything."""
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        return node.value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        inner = _literal(node.operand)
        return -inner if isinstance(node.op, ast.USub) else inner
    if isinstance(node, (ast.List, ast.Tuple)):
        return [_literal(item) for item in node.elts]
    raise ValueError("not a number")


# -- reading EXPR -------------------------------------------------------------------------------
def _parse(expr: str) -> ast.Expression:
    try:
        return ast.parse(expr, mode="eval")
    except (SyntaxError, RecursionError, MemoryError, ValueError) as err:
        try:  # a statement parses as one: name it (parsing runs nothing)
            body = ast.parse(expr, mode="exec").body
        except (SyntaxError, RecursionError, MemoryError, ValueError):
            body = []
        if body and not (len(body) == 1 and isinstance(body[0], ast.Expr)):
            kinds = {_STATEMENT.get(type(s), f"{type(s).__name__} statements") for s in body}
            what = "more than one statement" if len(body) > 1 else kinds.pop()
            raise ExplainError(f"refused {what}: EXPR must be one expression") from None
        if isinstance(err, SyntaxError):
            where = f" at column {err.offset}" if err.offset else ""
            raise ExplainError(f"EXPR {expr!r} is not an expression: {err.msg}{where}") from None
        raise ExplainError("EXPR is nested too deeply; explain is for small expressions") from None


def _refuse(expr: str, node: ast.AST, what: str) -> ExplainError:
    text = ast.get_source_segment(expr, node) or ast.dump(node)
    text = text if len(text) <= 40 else text[:37] + "..."
    return ExplainError(f"refused {what} ({text}): EXPR may use {_ALLOWED}")


def _is_param(node: ast.AST) -> bool:
    """An op parameter: a number (possibly signed), True/False or None."""
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        return isinstance(node.operand, ast.Constant) and type(node.operand.value) in (int, float)
    return isinstance(node, ast.Constant) and type(node.value) in (int, float, bool, type(None))


def _check(expr: str, tree: ast.Expression, names: Mapping[str, Any]) -> None:
    """Walk the whole tree (iteratively) and refuse anything outside the allow-list."""
    known = functions()
    params: set[int] = set()  # ids of nodes that are op parameters (checked at their call)
    for node in ast.walk(tree):
        if id(node) in params or isinstance(
            node, (ast.Expression, ast.expr_context, ast.keyword, ast.Load)
        ):
            continue
        if isinstance(node, ast.Constant):
            if type(node.value) not in (int, float):
                kind = _LITERAL.get(type(node.value), repr(node.value))
                raise _refuse(expr, node, kind)
        elif isinstance(node, ast.Name):
            if node.id not in names:
                name = node.id if len(node.id) <= 40 else node.id[:37] + "..."
                given = ", ".join(names) or "none"
                raise ExplainError(
                    f"{name} is used in EXPR but not given in --at (given: {given}); "
                    f"add it, e.g. --at {name}=1.0"
                )
        elif isinstance(node, ast.UnaryOp):
            if not isinstance(node.op, (ast.USub, ast.UAdd)):
                raise _refuse(expr, node, f"the operator {_SYMBOL.get(type(node.op), '?')}")
        elif isinstance(node, ast.BinOp):
            if type(node.op) not in _BINARY:
                raise _refuse(expr, node, f"the operator {_SYMBOL.get(type(node.op), '?')}")
        elif isinstance(node, ast.Call):
            params.update(_check_call(expr, node, known))
        elif isinstance(node, (ast.operator, ast.unaryop)):
            continue
        else:
            kind = _CONSTRUCT.get(type(node), f"{type(node).__name__} expressions")
            raise _refuse(expr, node, kind)


def _check_call(expr: str, node: ast.Call, known: Mapping[str, Op]) -> set[int]:
    if isinstance(node.func, ast.Attribute):
        raise _refuse(expr, node.func, "attribute access")
    if not isinstance(node.func, ast.Name):
        if type(node.func) in _CONSTRUCT:
            raise _refuse(expr, node.func, _CONSTRUCT[type(node.func)])
        raise _refuse(expr, node, "calls of anything but a chainrule function by its bare name")
    name = node.func.id
    op = known.get(name)
    skip = {id(node.func)}
    if op is None:
        raise ExplainError(
            f"refused a call to unknown function {name!r}: EXPR may call {', '.join(known)}"
        )
    for a in node.args:
        if isinstance(a, ast.Starred):
            raise _refuse(expr, a, "starred arguments")
    params = op.param_names
    takes = f"{name} takes {op.nin} input{'s' * (op.nin > 1)}" + (
        f" and the parameters {', '.join(params)}" if params else ""
    )
    if len(node.args) < op.nin or len(node.args) > op.nin + len(params):
        raise ExplainError(f"{takes}; {ast.unparse(node)} gives {len(node.args)} arguments")
    given = list(params[: len(node.args) - op.nin])
    values = list(node.args[op.nin :])
    for kw in node.keywords:
        if kw.arg is None:
            raise _refuse(expr, kw.value, "** arguments")
        if kw.arg not in params:
            raise ExplainError(f"refused keyword argument {kw.arg}= ({takes})")
        if kw.arg in given:
            raise ExplainError(f"{name}: {kw.arg} is given twice in {ast.unparse(node)}")
        given.append(kw.arg)
        values.append(kw.value)
    for value in values:
        if not _is_param(value):
            raise _refuse(expr, value, f"a parameter of {name} that is not a number")
    return skip | {id(n) for v in values for n in ast.walk(v)}


# -- building the graph from the tree -----------------------------------------------------------
@dataclass
class _Term:
    """A built sub-expression: its value (Tensor or constant), its text, how it was made."""

    value: Any
    text: str
    node: ast.AST
    op: Op | None = None
    inputs: tuple[_Term, ...] = ()
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def atomic(self) -> bool:
        if isinstance(self.node, ast.Constant):
            return bool(float(self.node.value) >= 0)  # type: ignore[arg-type]
        return isinstance(self.node, (ast.Name, ast.Call))


class _Builder:
    """Evaluates a checked tree with chainrule's ops, one value per distinct sub-expression."""

    def __init__(self, variables: Mapping[str, Any]) -> None:
        self.variables = variables
        self.memo: dict[str, _Term] = {}

    def build(self, node: ast.AST) -> _Term:
        text = ast.unparse(node)
        if text not in self.memo:
            self.memo[text] = self._make(node, text)
        return self.memo[text]

    def _make(self, node: ast.AST, text: str) -> _Term:
        if isinstance(node, ast.Constant):
            return _Term(np.float64(node.value), text, node)  # type: ignore[arg-type]
        if isinstance(node, ast.Name):
            return _Term(self.variables[node.id], text, node)
        if isinstance(node, ast.UnaryOp):
            inner = self.build(node.operand)
            if isinstance(node.op, ast.UAdd):
                return _Term(inner.value, text, node, inner.op, inner.inputs, inner.params)
            return self._apply(OPS["negative"], node, text, [inner], {})
        if isinstance(node, ast.BinOp):
            operands = [self.build(node.left), self.build(node.right)]
            return self._apply(OPS[_BINARY[type(node.op)]], node, text, operands, {})
        assert isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
        op = OPS[node.func.id]
        inputs = [self.build(a) for a in node.args[: op.nin]]
        params = {k: _literal_param(v) for k, v in zip(op.param_names, node.args[op.nin :])}
        params.update({str(kw.arg): _literal_param(kw.value) for kw in node.keywords})
        return self._apply(op, node, text, inputs, params)

    def _apply(
        self, op: Op, node: ast.AST, text: str, inputs: list[_Term], params: dict[str, Any]
    ) -> _Term:
        try:
            out = op.public(*(t.value for t in inputs), **params)
        except (ValueError, TypeError, ArithmeticError, IndexError) as err:
            message = " ".join(str(err).split())
            raise ExplainError(f"{text}: {message}") from None
        if isinstance(out, Tensor):
            out.name = text
        return _Term(out, text, node, op, tuple(inputs), params)


def _literal_param(node: ast.AST) -> Any:
    if isinstance(node, ast.UnaryOp):
        inner = _literal_param(node.operand)
        return -inner if isinstance(node.op, ast.USub) else inner
    assert isinstance(node, ast.Constant)
    return node.value


def _build(builder: _Builder, body: ast.AST) -> _Term:
    try:
        with np.errstate(all="ignore"):
            return builder.build(body)
    except RecursionError:
        raise ExplainError("EXPR is nested too deeply; explain is for small expressions") from None
