"""The read-only check for analyst SQL (``tripwire sql`` and the dashboard's console), decided by
ClickHouse's own parser rather than by the text.

1. ``formatQuerySingleLine`` parses the text, which travels as a *query parameter* (never spliced
   into SQL): exactly one statement, comments and any whitespace resolved by the engine's lexer.
   Its output, the canonical statement, is what is both checked and run, so the check and the
   execution see the same text (chdb runs ``a; b`` as two statements: splitting on ``;`` here
   would be a second parser that can disagree with the engine's).
2. ``EXPLAIN AST`` of the canonical statement gives the engine's syntax tree (parsed, not run),
   which is rebuilt from its indentation and checked for consistency: one root, every node's
   ``(children N)`` equals its children. Names are printed raw, so a name with a line break can
   add fake lines, but they can only add nodes under the node that carries the name, never move a
   real node; every rule below refuses on the presence of a node, so fakes cannot hide one.
3. The rules: the root is a SELECT (``WITH``, ``UNION``, ``INTERSECT``, ``EXCEPT`` included), an
   ``EXPLAIN`` of one, ``SHOW TABLES``/``DATABASES``, ``DESCRIBE``, ``EXISTS`` or ``SHOW CREATE``;
   no ``INTO OUTFILE`` (a Literal child of the query: any form, ``APPEND``, ``TRUNCATE``,
   ``COMPRESSION``, ``AND STDOUT``), no ``FORMAT`` on a SELECT (the client picks the output format:
   ``--format``, the console's CSV download), no ``SETTINGS`` anywhere (the limits are the
   caller's); a table function only from :data:`TABLE_FUNCTIONS`, and no function anywhere that
   shares a name with another of the engine's table functions (``file('/etc/passwd')`` is also a
   plain function that reads the file).

The engine's own ``readonly`` setting and the row/time limits of the read-only store stay the
second wall (``open_store(..., readonly=True)``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from tripwire.sinks.exceptions import ReadOnlyQueryError, StoreError
from tripwire.sinks.store import Store

MAX_SQL_CHARS = 20_000

#: Table functions an analyst query may use: generators of rows from their arguments alone.
TABLE_FUNCTIONS = frozenset(
    {"numbers", "numbers_mt", "zeros", "zeros_mt", "values", "generate_series", "generateseries", "view", "format"}
)
#: Plain functions refused wherever they appear (they read outside the database).
DENIED_FUNCTIONS = frozenset({"file", "catboostevaluate"})

_SELECTS = {"SelectWithUnionQuery", "SelectIntersectExceptQuery"}
_ROOTS = _SELECTS | {"Explain", "ShowTables", "DescribeQuery", "ExistsTableQuery", "ShowCreateTableQuery"}
ALLOWED = "SELECT, WITH, EXPLAIN SELECT, SHOW TABLES, DESCRIBE, EXISTS, SHOW CREATE TABLE"
_LINE = re.compile(r"^(?P<indent> *)(?P<body>\S.*?)(?: \(children (?P<n>\d+)\))?$")
_CANONICAL = "SELECT formatQuerySingleLine({q:String}), (SELECT groupArray(name) FROM system.table_functions)"


@dataclass(slots=True)
class _Node:
    kind: str
    text: str
    declared: int
    children: list[_Node] = field(default_factory=list)

    @property
    def name(self) -> str:
        """The function/table name on the node's line, without its alias."""
        return self.text.split(" (alias ", 1)[0].strip()


def _refuse(message: str) -> ReadOnlyQueryError:
    return ReadOnlyQueryError(f"readonly check: {message}")


def parse_ast(lines: list[str]) -> _Node:
    """The tree of an ``EXPLAIN AST`` dump; ReadOnlyQueryError unless it is exactly one consistent tree."""
    stack: list[_Node] = []
    root: _Node | None = None
    for line in lines:
        m = _LINE.match(line)
        depth = len(m.group("indent")) if m else -1
        if m is None or depth > len(stack) or (depth == 0 and root is not None):
            raise _refuse("the statement's syntax tree is not one the check understands")
        kind, _, text = m.group("body").partition(" ")
        node = _Node(kind, text, int(m.group("n") or 0))
        del stack[depth:]
        if stack:
            stack[-1].children.append(node)
        else:
            root = node
        stack.append(node)
    if root is None:
        raise _refuse("enter a query")
    _check_counts(root)
    return root


def _check_counts(node: _Node) -> None:
    todo = [node]
    while todo:
        n = todo.pop()
        if len(n.children) != n.declared:
            raise _refuse("the statement's syntax tree is not one the check understands")
        todo.extend(n.children)


def _check_output(node: _Node, *, format_ok: bool) -> None:
    """A query's own children: no INTO OUTFILE, no SETTINGS, and FORMAT only where ``format_ok``."""
    for c in node.children:
        if c.kind == "Literal":
            raise _refuse("INTO OUTFILE is not allowed (results go to the client only)")
        if c.kind == "Set":
            raise _refuse("SETTINGS are not allowed (the limits are the read-only path's)")
        if c.kind == "Identifier" and not format_ok:
            raise _refuse("FORMAT is not allowed (the client picks the format: --format, or Download CSV)")


def _check_tree(root: _Node, table_functions: frozenset[str], keyword: str) -> None:
    if root.kind not in _ROOTS:
        raise _refuse(f"{keyword} is not allowed (use {ALLOWED})")
    if root.kind == "Explain":
        _check_output(root, format_ok=False)
        if [c.kind for c in root.children] != ["SelectWithUnionQuery"]:
            raise _refuse(f"EXPLAIN is allowed for a SELECT only, without options (use {ALLOWED})")
    elif root.kind in _SELECTS:
        _check_output(root, format_ok=False)
    else:  # SHOW TABLES FROM db, DESCRIBE t, EXISTS t, SHOW CREATE t: identifiers name the object
        _check_output(root, format_ok=True)
    todo: list[tuple[_Node, _Node | None]] = [(root, None)]
    while todo:
        node, parent = todo.pop()
        if node.kind == "Set":
            raise _refuse("SETTINGS are not allowed (the limits are the read-only path's)")
        if node.kind in _SELECTS and node is not root:
            _check_output(node, format_ok=False)
        if node.kind == "Function":
            name = node.name.lower()
            if parent is not None and parent.kind == "TableExpression":
                if name not in TABLE_FUNCTIONS:
                    raise _refuse(f"the table function {node.name} is not allowed "
                                  f"(allowed: {', '.join(sorted(TABLE_FUNCTIONS))})")
            elif name in DENIED_FUNCTIONS or (name in table_functions and name not in TABLE_FUNCTIONS):
                raise _refuse(f"the function {node.name} is not allowed (it reads outside the database)")
        todo.extend((c, node) for c in node.children)


def check_readonly_sql(store: Store, sql: str) -> str:
    """The one read-only statement in ``sql``, as ClickHouse formats it (run that text), else
    :class:`ReadOnlyQueryError` saying what is not allowed. ``store`` is the store the statement
    will run on (chdb or a server: the same SQL); nothing of ``sql`` is executed here."""
    if len(sql) > MAX_SQL_CHARS:
        raise _refuse(f"the query is longer than {MAX_SQL_CHARS} characters")
    if not sql.strip().strip(";").strip():
        raise _refuse("enter a query")
    try:
        row = store.query(_CANONICAL, {"q": sql}).rows[0]
    except StoreError as e:
        text = str(e)
        if "Multi-statements are not allowed" in text:
            raise _refuse("one statement at a time") from e
        if "Empty query" in text:
            raise _refuse("enter a query") from e
        text = text.split(": In scope SELECT formatQuerySingleLine(", 1)[0]
        raise ReadOnlyQueryError(f"syntax error: {text}", code=e.code, name=e.name) from e
    canonical, names = str(row[0]).strip(), frozenset(str(n).lower() for n in row[1])
    try:
        lines = store.explain_ast(canonical)
    except StoreError as e:
        raise ReadOnlyQueryError(f"readonly check: the statement was refused: {e}", code=e.code, name=e.name) from e
    keyword = canonical.split(None, 1)[0].upper() if canonical else "?"
    _check_tree(parse_ast(lines), names, keyword)
    return canonical
