"""The metric and label names a PromQL expression reads, by a small lexer.

No PromQL parser is on the package registries this project uses (a search of PyPI's
list for "promql" finds clients and query builders only), so this lexes the language
far enough to tell the names apart: string literals, durations in ``[...]``, numbers,
label matchers in ``{...}``, the label lists of ``by``/``without``/``on``/``ignoring``/
``group_left``/``group_right``, function calls, keywords and Grafana's ``$variables``
(Grafana's ``label_values(...)`` template queries are split by the caller).
An identifier that is none of those is a metric name. A call of an unknown function
fails: a typo in a function would otherwise be read as a metric or be missed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

# Prometheus 2.42 .. 3.5 functions and aggregations (promql/parser/functions.go, lex.go).
AGGREGATIONS = frozenset(
    [
        "sum",
        "avg",
        "min",
        "max",
        "count",
        "group",
        "stddev",
        "stdvar",
        "topk",
        "bottomk",
        "quantile",
        "count_values",
        "limitk",
        "limit_ratio",
    ]
)
# An aggregation is called like a function too.
FUNCTIONS = AGGREGATIONS | frozenset(
    [
        "abs",
        "absent",
        "absent_over_time",
        "acos",
        "acosh",
        "asin",
        "asinh",
        "atan",
        "atanh",
        "avg_over_time",
        "ceil",
        "changes",
        "clamp",
        "clamp_max",
        "clamp_min",
        "cos",
        "cosh",
        "count_over_time",
        "days_in_month",
        "day_of_month",
        "day_of_week",
        "day_of_year",
        "deg",
        "delta",
        "deriv",
        "exp",
        "floor",
        "histogram_avg",
        "histogram_count",
        "histogram_fraction",
        "histogram_quantile",
        "histogram_stddev",
        "histogram_stdvar",
        "histogram_sum",
        "holt_winters",
        "double_exponential_smoothing",
        "hour",
        "idelta",
        "increase",
        "irate",
        "label_join",
        "label_replace",
        "last_over_time",
        "ln",
        "log10",
        "log2",
        "mad_over_time",
        "max_over_time",
        "min_over_time",
        "minute",
        "month",
        "pi",
        "predict_linear",
        "present_over_time",
        "quantile_over_time",
        "rad",
        "rate",
        "resets",
        "round",
        "scalar",
        "sgn",
        "sin",
        "sinh",
        "sort",
        "sort_by_label",
        "sort_by_label_desc",
        "sort_desc",
        "sqrt",
        "stddev_over_time",
        "stdvar_over_time",
        "sum_over_time",
        "tan",
        "tanh",
        "time",
        "timestamp",
        "vector",
        "year",
    ]
)
KEYWORDS = frozenset({"and", "or", "unless", "bool", "offset", "atan2", "inf", "nan"})
LABEL_LIST_KEYWORDS = frozenset({"by", "without", "on", "ignoring", "group_left", "group_right"})

_TOKEN = re.compile(
    r"""
    (?P<space>\s+|\#[^\n]*)
  | (?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`)
  | (?P<range>\[[^\]]*\])
  | (?P<var>\$\{[^}]*\}|\$[A-Za-z_][A-Za-z0-9_]*)
  | (?P<number>0[xX][0-9a-fA-F]+|(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?(?:[smhdwy]|ms)*)
  | (?P<ident>[A-Za-z_:][A-Za-z0-9_:]*)
  | (?P<matcher_op>=~|!~|!=|==|=)
  | (?P<punct>[(){},@]|<=|>=|[-+*/%^<>])
    """,
    re.VERBOSE,
)


class PromQLSyntaxError(ValueError):
    """The expression holds something this lexer does not know."""


@dataclass
class Names:
    """What one expression reads."""

    metrics: set[str] = field(default_factory=set)
    labels: set[str] = field(default_factory=set)
    functions: set[str] = field(default_factory=set)


def _tokens(expr: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    pos = 0
    while pos < len(expr):
        m = _TOKEN.match(expr, pos)
        if m is None:
            raise PromQLSyntaxError(f"unexpected {expr[pos : pos + 20]!r} in {expr!r}")
        pos = m.end()
        kind = m.lastgroup or ""
        if kind != "space":
            out.append((kind, m.group()))
    return out


def names(expr: str) -> Names:
    """Metric, label and function names in ``expr``."""
    found = Names()
    toks = _tokens(expr)
    i = 0
    depth_brace = 0
    while i < len(toks):
        kind, text = toks[i]
        nxt = toks[i + 1] if i + 1 < len(toks) else ("", "")
        if kind == "punct" and text == "{":
            depth_brace += 1
        elif kind == "punct" and text == "}":
            depth_brace -= 1
        elif kind == "ident" and depth_brace:
            if nxt[0] != "matcher_op":
                raise PromQLSyntaxError(f"label {text!r} without a matcher in {expr!r}")
            found.labels.add(text)
        elif kind == "ident" and text.lower() in LABEL_LIST_KEYWORDS and nxt == ("punct", "("):
            i += 2
            while i < len(toks) and toks[i] != ("punct", ")"):
                if toks[i][0] == "ident":
                    found.labels.add(toks[i][1])
                i += 1
        elif kind == "ident" and text in AGGREGATIONS and nxt[1].lower() in {"by", "without"}:
            found.functions.add(text)  # `sum by (l) (x)`: the clause comes first
        elif kind == "ident" and nxt == ("punct", "("):
            if text not in FUNCTIONS:
                raise PromQLSyntaxError(f"unknown function {text!r} in {expr!r}")
            found.functions.add(text)
        elif kind == "ident" and text.lower() in KEYWORDS | LABEL_LIST_KEYWORDS:
            pass
        elif kind == "ident":
            found.metrics.add(text)
        i += 1
    if depth_brace:
        raise PromQLSyntaxError(f"unbalanced braces in {expr!r}")
    return found
