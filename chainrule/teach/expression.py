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
import copy
import keyword
from collections.abc import Collection, Mapping
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
    ast.AugAssign: "augmented assignments (+= and the like)",
    ast.AnnAssign: "annotated assignments",
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
@dataclass
class _Program:
    """EXPR read: its statements in order, each ``(name, expression)``; the name is None for
    the last, the sink, unless it is assigned too (``loss = ...``)."""

    text: str
    statements: list[tuple[str | None, ast.expr]]

    @property
    def sink(self) -> ast.expr:
        return self.statements[-1][1]

    @property
    def defined(self) -> dict[str, ast.expr]:
        return {name: value for name, value in self.statements if name is not None}


def _parse(expr: str, variables: Collection[str] = ()) -> _Program:
    """Statements separated by ``;`` or new lines: ``name = expression`` names an intermediate,
    the last statement is the sink. Only the statements' shape is checked here (see _check)."""
    try:
        body = ast.parse(expr, mode="exec").body
    except (SyntaxError, RecursionError, MemoryError, ValueError) as err:
        if isinstance(err, SyntaxError):
            where = f" at column {err.offset}" if err.offset else ""
            raise ExplainError(f"EXPR {expr!r} is not an expression: {err.msg}{where}") from None
        raise ExplainError("EXPR is nested too deeply; explain is for small expressions") from None
    if not body:
        raise ExplainError("EXPR is empty; give an expression such as 'x**4 + x**2'")
    statements: list[tuple[str | None, ast.expr]] = []
    for k, stmt in enumerate(body):
        last = k == len(body) - 1
        if isinstance(stmt, ast.Expr):
            if not last:
                text = _segment(expr, stmt)
                raise ExplainError(
                    f"only the last statement may be a bare expression (the sink); name this "
                    f"one, as in h = {text}, or remove it"
                )
            statements.append((None, stmt.value))
            continue
        if isinstance(stmt, ast.Assign):
            target = stmt.targets[0]
            if len(stmt.targets) > 1 or not isinstance(target, ast.Name):
                text = _segment(expr, stmt)
                raise ExplainError(
                    f"refused the assignment {text}: name one intermediate per statement, with "
                    "a plain name on the left (h = W @ x + b)"
                )
            name = target.id
            if name in variables:
                raise ExplainError(
                    f"{name} is an input variable (given in --at) and cannot be assigned; "
                    f"choose another name for the intermediate"
                )
            if isinstance(stmt.value, (ast.Name, ast.Constant)):
                raise ExplainError(
                    f"{name} = {_segment(expr, stmt.value)}: name an expression of the variables "
                    f"(such as {name} = tanh(x)), not a variable or a number"
                )
            if any(name == n for n, _ in statements):
                raise ExplainError(f"{name} is assigned twice; give each intermediate its own name")
            statements.append((name, stmt.value))
            continue
        kind = _STATEMENT.get(type(stmt), f"{type(stmt).__name__} statements")
        raise ExplainError(
            f"refused {kind}: EXPR is expressions, and assignments name = expression"
        )
    return _Program(expr, statements)


def _segment(expr: str, node: ast.AST) -> str:
    text = ast.get_source_segment(expr, node) or ast.unparse(node)
    return text if len(text) <= 40 else text[:37] + "..."


def _refuse(expr: str, node: ast.AST, what: str) -> ExplainError:
    text = ast.get_source_segment(expr, node) or ast.dump(node)
    text = text if len(text) <= 40 else text[:37] + "..."
    return ExplainError(f"refused {what} ({text}): EXPR may use {_ALLOWED}")


def _is_param(node: ast.AST) -> bool:
    """An op parameter: a number (possibly signed), True/False or None."""
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        return isinstance(node.operand, ast.Constant) and type(node.operand.value) in (int, float)
    return isinstance(node, ast.Constant) and type(node.value) in (int, float, bool, type(None))


def _check_program(program: _Program, variables: Collection[str]) -> None:
    """Check every statement against the allow-list; a statement may use the variables and
    the names assigned before it."""
    known = list(variables)
    later = list(program.defined)
    for name, value in program.statements:
        _check(program.text, ast.Expression(body=value), known, later)
        if name is not None:
            known.append(name)
            later.remove(name)


def _check(
    expr: str, tree: ast.Expression, names: Collection[str], later: Collection[str] = ()
) -> None:
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
            if node.id in later:
                raise ExplainError(
                    f"{node.id} is used before it is assigned; assign it in an earlier statement"
                )
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
    """A built sub-expression: its value (Tensor or constant), its text (its name, once it is
    given one), how it was made, and ``short``: its tree with named parts written by name."""

    value: Any
    text: str
    node: ast.AST
    op: Op | None = None
    inputs: tuple[_Term, ...] = ()
    params: dict[str, Any] = field(default_factory=dict)
    short: ast.expr | None = None
    definition: str = ""  # for a named intermediate: the expression it names

    def rename(self, name: str) -> None:
        """Name this intermediate: every text built from it from now on uses the name."""
        self.definition = self.text
        self.text = name
        self.short = ast.Name(id=name, ctx=ast.Load())
        if isinstance(self.value, Tensor):
            self.value.name = name


class _Builder:
    """Evaluates a checked program with chainrule's ops, one value per distinct sub-expression
    (the same inputs through the same op, however it is written: by name or in full)."""

    def __init__(self, variables: Mapping[str, Any], defined: Mapping[str, ast.expr] = {}) -> None:
        self.variables = variables
        self.defined = defined
        self.memo: dict[Any, _Term] = {}
        self.keys: dict[int, Any] = {}  # id(term) -> its key in memo

    def run(self, program: _Program) -> _Term:
        """Build every statement in order, naming the intermediates; returns the last."""
        term = None
        for name, value in program.statements:
            term = self.build(value)
            if name is not None:
                if term.op is None:
                    raise ExplainError(
                        f"{name} = {ast.unparse(value)}: name an expression of the variables "
                        f"(such as {name} = tanh(x)), not a variable or a number"
                    )
                if term.definition:
                    raise ExplainError(
                        f"{name} and {term.text} name the same expression; keep one of them"
                    )
                term.rename(name)
        assert term is not None
        return term

    def build(self, node: ast.AST) -> _Term:
        if isinstance(node, ast.Name) and node.id in self.defined:
            return self.build(self.defined[node.id])
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.UAdd):
            return self.build(node.operand)
        if isinstance(node, (ast.Constant, ast.Name)):
            key: Any = (type(node).__name__, repr(getattr(node, "value", getattr(node, "id", ""))))
            if key not in self.memo:
                self._remember(key, self._leaf(node))
            return self.memo[key]
        op, inputs, params = self._parts(node)
        key = (op.name, tuple(self.keys[id(t)] for t in inputs), tuple(sorted(params.items())))
        if key not in self.memo:
            short = _shorten(node, [t.short for t in inputs])
            self._remember(key, self._apply(op, node, ast.unparse(short), inputs, params, short))
        return self.memo[key]

    def _remember(self, key: Any, term: _Term) -> None:
        self.memo[key] = term
        self.keys[id(term)] = key

    def _leaf(self, node: ast.AST) -> _Term:
        if isinstance(node, ast.Constant):
            return _Term(np.float64(node.value), ast.unparse(node), node, short=node)  # type: ignore[arg-type]
        assert isinstance(node, ast.Name)
        return _Term(self.variables[node.id], node.id, node, short=node)

    def _parts(self, node: ast.AST) -> tuple[Op, list[_Term], dict[str, Any]]:
        if isinstance(node, ast.UnaryOp):
            return OPS["negative"], [self.build(node.operand)], {}
        if isinstance(node, ast.BinOp):
            operands = [self.build(node.left), self.build(node.right)]
            return OPS[_BINARY[type(node.op)]], operands, {}
        assert isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
        op = OPS[node.func.id]
        inputs = [self.build(a) for a in node.args[: op.nin]]
        params = {k: _literal_param(v) for k, v in zip(op.param_names, node.args[op.nin :])}
        params.update({str(kw.arg): _literal_param(kw.value) for kw in node.keywords})
        return op, inputs, params

    def _apply(
        self,
        op: Op,
        node: ast.AST,
        text: str,
        inputs: list[_Term],
        params: dict[str, Any],
        short: ast.expr,
    ) -> _Term:
        try:
            out = op.public(*(t.value for t in inputs), **params)
        except (ValueError, TypeError, ArithmeticError, IndexError) as err:
            message = " ".join(str(err).split())
            raise ExplainError(f"{text}: {message}") from None
        if isinstance(out, Tensor):
            out.name = text
        return _Term(out, text, node, op, tuple(inputs), params, short)


def _shorten(node: ast.AST, inputs: list[ast.expr | None]) -> ast.expr:
    """A copy of ``node`` with its array inputs replaced by their short trees."""
    short = copy.copy(node)
    if isinstance(short, ast.UnaryOp):
        short.operand = inputs[0]  # type: ignore[assignment]
    elif isinstance(short, ast.BinOp):
        short.left, short.right = inputs  # type: ignore[assignment]
    elif isinstance(short, ast.Call):
        short.args = [*inputs, *short.args[len(inputs) :]]  # type: ignore[list-item]
    assert isinstance(short, ast.expr)
    return short


def _literal_param(node: ast.AST) -> Any:
    if isinstance(node, ast.UnaryOp):
        inner = _literal_param(node.operand)
        return -inner if isinstance(node.op, ast.USub) else inner
    assert isinstance(node, ast.Constant)
    return node.value


def _build(builder: _Builder, program: _Program) -> _Term:
    try:
        with np.errstate(all="ignore"):
            return builder.run(program)
    except RecursionError:
        raise ExplainError("EXPR is nested too deeply; explain is for small expressions") from None
