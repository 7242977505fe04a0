"""A panel's SQL turned into what Grafana's ClickHouse plugin sends to ClickHouse.

The steps, in the plugin's order, each as its source does it:
1. `$__conditionalAll(cond, $var)` (frontend, grafana/clickhouse-datasource
   src/data/CHDatasource.ts `applyConditionalAll`): from the last occurrence back, the arguments
   are split at commas of bracket depth 1; when the variable's current value is '' or `$__all`
   the macro becomes `1=1`, else the first argument as written.
2. Dashboard variables (Grafana's templateSrv.replace with the plugin's `format`): `$name`,
   `${name}` and `${name:format}`; All stands for every option's value; a variable that does not
   exist is left as written (so `$__timeFilter` survives to step 3). Without a format the plugin
   formats an array as `'a','b'` and a single value as itself; `singlequote` (Grafana's format
   registry) escapes `'` as `\\'` and quotes each value, joined by commas.
3. Backend macros (grafana-plugin-sdk-go data/sqlutil/macros.go `Interpolate`, with the plugin's
   pkg/macros/macros.go): a macro's name matches `\\$__name\\b`; its arguments run from the
   first `(` after the name to the matching `)`, unless a `)` comes first (then it has none);
   arguments are split at every comma and trimmed; every occurrence of the matched text is
   replaced. Expansions:
   - `$__timeFilter(c)` → `c >= toDateTime(FROM_S) AND c <= toDateTime(TO_S)` (Unix seconds)
   - `$__timeInterval(c)` → `toStartOfInterval(toDateTime(c), INTERVAL N second)`
   - `$__interval_s` → `N`, where N = the query's interval in whole seconds, at least 1.
   Only the macros Ferry's dashboards use are here; any other `$__name` left raises.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

ALL = "$__all"


@dataclass(frozen=True)
class Var:
    """A dashboard variable's state: `current` is one value, a list (multi), or ALL; `options`
    are its values (what All stands for)."""

    current: str | list[str]
    options: list[str] = field(default_factory=list)

    def value_string(self) -> str:
        """JavaScript's `current.value.toString()`: an array joined by commas."""
        return ",".join(self.current) if isinstance(self.current, list) else self.current

    def value(self) -> str | list[str]:
        if self.current == ALL or self.current == [ALL]:
            return list(self.options)
        return self.current


class ExpansionError(ValueError):
    pass


def _macro_args(sql: str, at: int) -> list[str]:
    """The plugin's getMacroArgs: `sql[at]` is the macro's `(`."""
    args, depth, last = [], 0, 1
    sub = sql[at:]
    for m in re.finditer(r"[(),]", sub):
        c = m.group()
        depth += {"(": 1, ")": -1}.get(c, 0)
        if c == "," and depth == 1:
            args.append(sub[last : m.start()])
            last = m.end()
        if depth == 0:
            args.append(sub[last : m.start()])
            return args
    return []


_VAR_NAME = re.compile(r"(?<=\$\{)[\w\d]+(?=\})|(?<=\$)[\w\d]+")


def conditional_all(sql: str, variables: dict[str, Var]) -> str:
    macro = "$__conditionalAll("
    at = sql.rfind(macro)
    while at != -1:
        params = _macro_args(sql, at + len(macro) - 1)
        if len(params) != 2:
            return sql
        phrase = params[0]
        name = _VAR_NAME.search(params[1].strip())
        if name:
            var = variables.get(name.group())
            if var is not None and var.value_string() in ("", ALL):
                phrase = "1=1"
        sql = sql.replace(f"{macro}{params[0]},{params[1]})", phrase, 1)
        at = sql.rfind(macro)
    return sql


def _singlequote(value: str | list[str]) -> str:
    values = value if isinstance(value, list) else [value]
    return ",".join("'" + v.replace("'", "\\'") + "'" for v in values)


def _plugin_format(value: str | list[str]) -> str:
    return "'" + "','".join(value) + "'" if isinstance(value, list) else value


_FORMATS: dict[str, Callable[[str | list[str]], str]] = {"singlequote": _singlequote}

# Grafana's variable regex (public/app/features/variables/utils.ts variableRegex)
_VARIABLE = re.compile(r"\$(\w+)|\[\[(\w+?)(?::(\w+))?\]\]|\$\{(\w+)(?:\.([^:^\}]+))?(?::([^\}]+))?\}")


def variables_replaced(sql: str, variables: dict[str, Var]) -> str:
    def one(m: re.Match) -> str:
        name = m.group(1) or m.group(2) or m.group(4)
        fmt = m.group(3) or m.group(6)
        var = variables.get(name)
        if var is None:
            return m.group(0)
        if fmt and fmt not in _FORMATS:
            raise ExpansionError(f"format {fmt!r} of ${{{name}}} is not implemented here")
        return (_FORMATS[fmt] if fmt else _plugin_format)(var.value())

    return _VARIABLE.sub(one, sql)


def _macro_matches(sql: str, name: str) -> list[tuple[str, str | None]]:
    """sqlutil's getMacroMatches: (matched text, its argument string or None)."""
    out = []
    for m in re.finditer(rf"\$__{name}\b", sql):
        rest = sql[m.start() :]
        depth, arg_start, end = 0, 0, 0
        for i, c in enumerate(rest):
            if depth == 0 and end > 0:
                break
            if c == "(":
                depth += 1
                arg_start = arg_start or i + 1
            elif c == ")":
                if depth == 0:
                    end = 0
                    break
                depth -= 1
                end = i + 1
        if end == 0:
            end = m.end() - m.start()
        text = rest[:end]
        out.append((text, rest[arg_start : end - 1] if arg_start else None))
    return out


def backend_macros(sql: str, from_ms: int, to_ms: int, interval_ms: int) -> str:
    seconds = max(interval_ms // 1000, 1)  # int(math.Max(Interval.Seconds(), 1))

    def one_arg(args: list[str], macro: str) -> str:
        if len(args) != 1:
            raise ExpansionError(f"$__{macro}: expected 1 argument, received {len(args)}")
        return args[0]

    macros: dict[str, Callable[[list[str]], str]] = {
        "timeFilter": lambda a: (
            f"{one_arg(a, 'timeFilter')} >= toDateTime({from_ms // 1000}) "
            f"AND {one_arg(a, 'timeFilter')} <= toDateTime({to_ms // 1000})"
        ),
        "timeInterval": lambda a: (
            f"toStartOfInterval(toDateTime({one_arg(a, 'timeInterval')}), INTERVAL {seconds} second)"
        ),
        "interval_s": lambda a: str(seconds),
    }
    for name, expand in macros.items():
        for text, args in _macro_matches(sql, name):
            parts = [a.strip() for a in (args or "").split(",")]  # Go: Split("", ",") is [""]
            sql = sql.replace(text, expand(parts))
    left = re.findall(r"\$__\w+", sql)
    if left:
        raise ExpansionError(f"macros not expanded: {sorted(set(left))}")
    return sql


def expand(sql: str, variables: dict[str, Var], from_ms: int, to_ms: int, interval_ms: int) -> str:
    """What the plugin sends for `sql` under these variables, time range and interval."""
    sql = conditional_all(sql, variables)
    sql = variables_replaced(sql, variables)
    return backend_macros(sql, from_ms, to_ms, interval_ms)
