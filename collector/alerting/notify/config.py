"""The rules file's `[[receivers]]` and `[[routes]]` tables: where notifications go, and which
alerts go where, grouped how.

    [[receivers]]
    name = "ops"
    type = "webhook"                  # webhook | slack | email | alertmanager
    url = "http://127.0.0.1:9000/hook"

    [[routes]]                         # the first route that matches wins; no `match` = catch-all
    match = { severity = "critical" }
    receiver = "ops"
    group_by = ["alertname"]           # ["..."]: every label (each alert its own group)
    group_wait = "30s"
    group_interval = "5m"
    repeat_interval = "4h"

`ReceiverKeys` and `RouteKeys` declare the keys once (parsed by ferry.runtime.tables, listed in
the configuration reference); `RECEIVERS` and `ROUTES` are the sections the rules loader holds
with `tables(...)` fields, building `Receiver` and `Route`; `check_routes` applies the rules that
span both (a route's receiver exists and is not an alertmanager one).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ferry.runtime.config import ConfigError, parse_duration_or_zero, parse_names, setting
from ferry.runtime.tables import Section

TYPES = ("webhook", "slack", "email", "alertmanager")
URL_TYPES = ("webhook", "slack", "alertmanager")
EVERY_LABEL = "..."  # group_by = ["..."]: group by every label, as in Alertmanager
MAX_RETRIES = 20
_NAME = re.compile(r"[A-Za-z0-9_.:\-]{1,100}")
_ADDRESS = re.compile(r"[^@\s]+@[^@\s]+")


@dataclass(frozen=True)
class Receiver:
    """Where notifications go. `at` is the table's position ("rules.toml:12: key 'receivers'
    [[receivers]] #2"), for the messages of checks that come later."""

    name: str
    type: str
    url: str = ""  # webhook, slack: the url POSTed to; alertmanager: the base url
    timeout: float = 10.0
    max_retries: int = 5
    resend_interval: float = 60.0  # alertmanager: firing alerts are sent again this often
    smtp_host: str = ""
    smtp_port: int = 25
    sender: str = ""  # the `from` key
    to: tuple[str, ...] = ()
    username: str = ""
    password_file: str = ""
    starttls: bool = False
    at: str = field(default="", compare=False)

    def password(self) -> str:
        """The SMTP password, read when a message is sent (so a rotated file is picked up)."""
        if not self.password_file:
            return ""
        return Path(self.password_file).read_text().strip()


@dataclass(frozen=True)
class Route:
    """Alerts whose labels equal every `match` pair (none: every alert) go to `receiver`,
    grouped by the values of `group_by` (empty: one group; ("...",): every label)."""

    receiver: str
    match: tuple[tuple[str, str], ...] = ()
    group_by: tuple[str, ...] = ()
    group_wait: float = 30.0
    group_interval: float = 300.0
    repeat_interval: float = 14400.0
    at: str = field(default="", compare=False)

    def matches(self, labels: dict[str, str]) -> bool:
        return all(labels.get(k) == v for k, v in self.match)

    def group_labels(self, labels: dict[str, str]) -> tuple[tuple[str, str], ...]:
        """The labels an alert is grouped by (sorted); a group_by label it lacks is left out."""
        if EVERY_LABEL in self.group_by:
            return tuple(sorted(labels.items()))
        return tuple(sorted((k, labels[k]) for k in self.group_by if k in labels))


def _name(value: Any, what: str) -> str:
    if not isinstance(value, str) or not _NAME.fullmatch(value):
        raise ConfigError(f"{what} {value!r} is required and must match {_NAME.pattern}")
    return value


def _type(value: Any, what: str) -> str:
    if value not in TYPES:
        raise ConfigError(f"{what} is {value!r}, not one of {', '.join(TYPES)}")
    return value


def _url(value: Any, what: str) -> str:
    try:
        parts = urlsplit(value) if isinstance(value, str) else None
        port_ok = parts is not None and (parts.port is None or parts.port > 0)
    except ValueError as exc:
        raise ConfigError(f"{what} {value!r} is not a url: {exc}") from None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname or not port_ok:
        raise ConfigError(f"{what} {value!r} must be an http:// or https:// url with a host")
    return value


def _as_given(value: Any, what: str) -> Any:
    return value  # checked by _receiver, which knows the type and so can say it is required


def _retries(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_RETRIES:
        raise ConfigError(f"{what} {value!r} must be an integer from 0 to {MAX_RETRIES}")
    return value


def _port(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
        raise ConfigError(f"{what} {value!r} must be a port number from 1 to 65535")
    return value


def _addresses(value: Any, what: str) -> tuple[str, ...]:
    names = parse_names([value] if isinstance(value, str) else value, what)
    bad = [n for n in names if not _ADDRESS.fullmatch(n)]
    if bad or not names:
        raise ConfigError(f"{what}: {', '.join(map(repr, bad)) or 'none'} given; expected e-mail addresses")
    return tuple(names)


def _address(value: Any, what: str) -> str:
    if not isinstance(value, str) or not _ADDRESS.fullmatch(value.strip()):
        raise ConfigError(f"{what} {value!r} is not an e-mail address")
    return value.strip()


def _match(value: Any, what: str) -> tuple[tuple[str, str], ...]:
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise ConfigError(f"{what}: expected a table of label = string, e.g. {{ severity = 'critical' }}")
    return tuple(sorted(value.items()))


@dataclass
class ReceiverKeys:
    """The keys of one `[[receivers]]` table."""

    name: str = setting(None, help=f"the receiver's name, as routes give it ({_NAME.pattern})", parse=_name,
                        required=True)  # fmt: skip
    type: str = setting(None, help=", ".join(TYPES), parse=_type, required=True)
    url: str = setting(
        None,
        help="webhook, slack: the url POSTed to (a Slack incoming webhook); alertmanager: its base url, "
        "e.g. http://127.0.0.1:9093",
        parse=_as_given,
        only=URL_TYPES,
    )
    timeout: float = setting(10.0, "duration", "time one attempt may take")
    max_retries: int = setting(
        5, "int", help=f"attempts after a failed one, with backoff (0 to {MAX_RETRIES})", parse=_retries
    )
    resend_interval: float = setting(
        60.0, "duration", "alertmanager: firing alerts are sent again this often", only=("alertmanager",)
    )
    smtp_host: str = setting(None, help="email: the SMTP server's host", parse=_as_given, only=("email",))
    smtp_port: int = setting(25, "port", help="email: its port", parse=_port, only=("email",))
    # `from` is a Python keyword: the field is from_, the key `from` (ferry.runtime.tables.key_of)
    from_: str = setting(None, help="email: the From address", parse=_as_given, only=("email",), key="from")
    to: tuple = setting(
        None, "emails", help="email: the recipients (a list)", parse=_as_given, only=("email",)
    )
    username: str = setting("", help="email: the SMTP user (AUTH) ", only=("email",))
    password_file: str = setting(
        "", help="email: a file holding the SMTP password (read at each send)", only=("email",)
    )
    starttls: bool = setting(False, "bool", "email: STARTTLS before AUTH and the message", only=("email",))


def _receiver(values: dict[str, Any], at: str, earlier: list[Receiver]) -> Receiver:
    kind, name = values["type"], values["name"]
    if any(r.name == name for r in earlier):
        raise ConfigError(f"{at}: key 'name' {name!r} is used by another receiver")
    common = {"name": name, "type": kind, "timeout": values["timeout"], "max_retries": values["max_retries"]}
    if kind in URL_TYPES:
        if values["url"] is None:
            raise ConfigError(f"{at}: key 'url' is required for a {kind} receiver")
        url = _url(values["url"], f"{at}: key 'url'")
        if kind == "alertmanager":
            return Receiver(**common, url=url.rstrip("/"), resend_interval=values["resend_interval"], at=at)
        return Receiver(**common, url=url, at=at)
    for key, name in (("smtp_host", "smtp_host"), ("from", "from_"), ("to", "to")):
        if values[name] is None:
            raise ConfigError(f"{at}: key {key!r} is required for an email receiver")
    if not isinstance(values["smtp_host"], str) or not values["smtp_host"]:
        raise ConfigError(f"{at}: key 'smtp_host' {values['smtp_host']!r} is not a host name")
    password_file = values["password_file"]
    if password_file and not Path(password_file).is_file():
        raise ConfigError(f"{at}: key 'password_file' {password_file!r}: no such file")
    if password_file and not values["username"]:
        raise ConfigError(f"{at}: key 'password_file' is set without 'username'")
    return Receiver(
        **common,
        smtp_host=values["smtp_host"],
        smtp_port=values["smtp_port"],
        sender=_address(values["from_"], f"{at}: key 'from'"),
        to=_addresses(values["to"], f"{at}: key 'to'"),
        username=values["username"],
        password_file=password_file,
        starttls=values["starttls"],
        at=at,
    )


@dataclass
class RouteKeys:
    """The keys of one `[[routes]]` table."""

    receiver: str = setting(None, help="the receiver's name", parse=_name, required=True)
    match: tuple = setting(
        None, "labels", "label = value equalities an alert must all have (none: every alert)", parse=_match
    )
    group_by: list = setting(
        [], "names", 'labels whose values make a group ([]: one group, ["..."]: every label)'
    )
    group_wait: float = setting(
        30.0,
        "duration_or_zero",
        "a new group's first notification waits this long, gathering its alerts (0s: at once)",
        parse=parse_duration_or_zero,
    )
    group_interval: float = setting(300.0, "duration", "a group's changes are sent at most this often")
    repeat_interval: float = setting(
        14400.0, "duration", "an unchanged firing group is sent again this often"
    )


def _route(values: dict[str, Any], at: str, earlier: list[Route]) -> Route:
    group_by = tuple(values["group_by"])
    if EVERY_LABEL in group_by and len(group_by) > 1:
        raise ConfigError(f"{at}: key 'group_by' {list(group_by)!r}: \"...\" stands alone (every label)")
    return Route(
        receiver=values["receiver"],
        match=values["match"] or (),
        group_by=group_by,
        group_wait=values["group_wait"],
        group_interval=values["group_interval"],
        repeat_interval=values["repeat_interval"],
        at=at,
    )


RECEIVERS = Section("receivers", ReceiverKeys, _receiver, kind="type", noun="receiver")
ROUTES = Section("routes", RouteKeys, _route)


def check_routes(receivers: list[Receiver], routes: list[Route]) -> None:
    """Every route names a receiver that exists and is not an alertmanager one (an Alertmanager
    gets every alert and groups them itself). Raises ConfigError naming the route's table."""
    by_name = {r.name: r for r in receivers}
    for route in routes:
        receiver = by_name.get(route.receiver)
        if receiver is None:
            known = ", ".join(sorted(by_name)) or "none"
            raise ConfigError(
                f"{route.at}: key 'receiver' {route.receiver!r} is no receiver's name (known: {known})"
            )
        if receiver.type == "alertmanager":
            raise ConfigError(
                f"{route.at}: key 'receiver' {route.receiver!r} is an alertmanager receiver: it gets every "
                "alert without a route (the Alertmanager routes and groups them itself)"
            )
