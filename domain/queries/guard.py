"""The static check of generated SQL: the first line of defence, the database role the last.

Accepted: one SELECT statement, set operations and read-only CTEs included, over the
allow-listed `query_api` views, calling only allow-listed functions. Refused: anything
sqlglot cannot parse into a known tree (it wraps that in `exp.Command`), INTO, locking
clauses, DML or DDL anywhere, other relations (catalogs included), table functions,
parameters, qualified function names. What runs is the SQL regenerated from the checked
tree without comments, so a comment or quoting trick the parser reads differently from
PostgreSQL cannot smuggle anything in (and the extended protocol refuses a second
statement anyway).

sqlglot (MIT) rather than pglast (the real PostgreSQL parser, but GPL-3): the project is not
GPL, and a parse that differs from PostgreSQL's can only make us refuse or regenerate, never
run unchecked text.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError, TokenError

from domain.queries.errors import QueryRefused

SCHEMA = "query_api"
RELATIONS = frozenset({"customers", "runs"})
MAX_SQL_LENGTH = 8000

# Functions by sqlglot's class (its canonical tree for known functions).
_FUNCTIONS: tuple[type[exp.Expression], ...] = (
    exp.Count, exp.Sum, exp.Avg, exp.Min, exp.Max, exp.Stddev, exp.Variance,
    exp.ArrayAgg, exp.GroupConcat, exp.LogicalAnd, exp.LogicalOr, exp.PercentileCont,
    exp.PercentileDisc,
    exp.Coalesce, exp.Nullif, exp.Greatest, exp.Least, exp.Case, exp.If, exp.Cast,
    exp.TryCast,
    exp.Lower, exp.Upper, exp.Length, exp.Substring, exp.Trim, exp.Concat, exp.Left,
    exp.Right, exp.StrPosition, exp.Initcap,
    exp.Abs, exp.Round, exp.Floor, exp.Ceil, exp.Sqrt, exp.Ln, exp.Pow,
    exp.Extract, exp.TimestampTrunc, exp.DateTrunc, exp.CurrentDate, exp.CurrentTimestamp,
    exp.TimeToStr, exp.DateAdd, exp.DateSub, exp.DateDiff,
    exp.RowNumber, exp.Rank, exp.DenseRank, exp.Lag, exp.Lead, exp.FirstValue,
    exp.LastValue, exp.NthValue, exp.Ntile, exp.PercentRank, exp.CumeDist, exp.Corr,
    # operators sqlglot models as functions
    exp.And, exp.Or, exp.Xor, exp.Collate, exp.ArrayContains, exp.ArrayContainedBy,
    exp.ArrayOverlaps, exp.RegexpLike, exp.RegexpILike,
)
# Functions sqlglot leaves anonymous, by name.
_ANONYMOUS = frozenset({"age", "date_part", "now", "justify_days", "make_date",
                        "to_date", "width_bucket", "mode"})
# Refused by name whatever the tree (set_config, pg_notify, pg_sleep, dblink, query_to_xml,
# advisory locks, files, large objects): a class above must never be one of these.
_NEVER_PREFIXES = ("pg_", "lo_", "dblink", "query_to", "xml", "set_config", "current_setting",
                   "txid", "nextval", "setval", "currval")
_FORBIDDEN_NODES: tuple[type[exp.Expression], ...] = (
    exp.Insert, exp.Update, exp.Delete, exp.Merge, exp.Create, exp.Drop, exp.Alter,
    exp.Command, exp.Into, exp.Lock, exp.Placeholder, exp.Parameter, exp.Set,
    exp.Copy, exp.Use, exp.Transaction, exp.Commit, exp.Rollback, exp.Pragma,
)


@dataclass(frozen=True)
class Checked:
    """SQL the check accepted: `sql` is what runs (regenerated from the checked tree)."""

    sql: str
    relations: tuple[str, ...]


def _refuse(reason: str) -> QueryRefused:
    return QueryRefused(f"the generated SQL was refused: {reason}")


def _function_name(node: exp.Func) -> str:
    return node.name.lower() if isinstance(node, exp.Anonymous) else node.sql_name().lower()


def _check_function(node: exp.Func) -> None:
    name = _function_name(node)
    if name.startswith(_NEVER_PREFIXES):
        raise _refuse(f"function {name} is not allowed")
    if isinstance(node, exp.Anonymous):
        if name not in _ANONYMOUS:
            raise _refuse(f"function {name} is not allowed")
        if isinstance(node.parent, exp.Dot):
            raise _refuse("qualified function names are not allowed")
    elif not isinstance(node, _FUNCTIONS):
        raise _refuse(f"function {name} is not allowed")


def _folded(identifier: exp.Expression | None) -> str:
    """An identifier as PostgreSQL resolves it: quoted ones keep their case."""
    if not isinstance(identifier, exp.Identifier):
        return ""
    return identifier.name if identifier.quoted else identifier.name.lower()


def _check_tables(tree: exp.Query) -> list[str]:
    ctes = {_folded(cte.args.get("alias") and cte.args["alias"].this)
            for cte in tree.find_all(exp.CTE)}
    named: list[str] = []
    for table in tree.find_all(exp.Table):
        if not isinstance(table.this, exp.Identifier):
            raise _refuse("table functions are not allowed")  # FROM generate_series(...)
        name, schema = _folded(table.this), _folded(table.args.get("db"))
        if table.catalog:
            raise _refuse(f"relation {table.sql()} is not allowed")
        if not schema and name in ctes:
            continue
        if schema != SCHEMA or name not in RELATIONS:
            allowed = ", ".join(f"{SCHEMA}.{r}" for r in sorted(RELATIONS))
            raise _refuse(f"relation {table.sql()} is not allowed (only {allowed})")
        named.append(f"{SCHEMA}.{name}")
    return named


def _locks(tree: exp.Query) -> bool:
    return any(select.args.get("locks") for select in tree.find_all(exp.Select))


def check(sql: str) -> Checked:
    """The SQL to run if `sql` is one allowed SELECT; QueryRefused with the reason if not."""
    text = sql.strip().rstrip(";").strip()
    if not text:
        raise _refuse("it is empty")
    if len(text) > MAX_SQL_LENGTH:
        raise _refuse(f"it is longer than {MAX_SQL_LENGTH} characters")
    try:
        trees = [t for t in sqlglot.parse(text, read="postgres") if t is not None]
    except (ParseError, TokenError) as error:
        raise _refuse("it does not parse") from error
    if len(trees) != 1:
        raise _refuse("exactly one statement is allowed")
    tree = trees[0]
    if not isinstance(tree, exp.Query):
        raise _refuse("only a SELECT is allowed")
    for node in tree.walk():
        if isinstance(node, _FORBIDDEN_NODES):
            raise _refuse(f"{node.key.upper()} is not allowed")
        if isinstance(node, exp.Func):
            _check_function(node)
    if _locks(tree):
        raise _refuse("locking clauses are not allowed")
    relations = _check_tables(tree)
    if not relations:
        raise _refuse(f"it must read at least one of the {SCHEMA} views")
    try:
        regenerated = tree.sql(dialect="postgres", comments=False)
    except Exception as error:  # sqlglot cannot render what it parsed: refuse, never guess
        raise _refuse("it cannot be normalised") from error
    return Checked(sql=regenerated, relations=tuple(dict.fromkeys(relations)))
