"""Who may reach the Local service: the unix socket's mode and group, and the loopback rule.

The values of `local_socket_mode`, `local_socket_group` and `local_listen` are checked here when
the configuration is read (ferry.agent.local.config declares the keys), and applied to the
socket file by ferry.agent.local.server once it is bound.
"""

from __future__ import annotations

import grp
import os
import re
from typing import Any

from ferry.runtime.config import ConfigError, is_loopback

_OCTAL = re.compile(r"^(?:0o|0)?([0-7]{1,4})$")
MAX_MODE = 0o777


def parse_socket_mode(value: Any, what: str) -> str:
    """An octal file mode ("0660", "660", "0o660"; in TOML also the integer 0o660) as "0660"."""
    if isinstance(value, bool):
        raise ConfigError(f"{what}: {value!r} is not a file mode")
    if isinstance(value, int):
        mode = value
    else:
        match = _OCTAL.match(str(value).strip())
        if not match:
            raise ConfigError(f"{what}: {value!r} is not an octal file mode such as '0660'")
        mode = int(match.group(1), 8)
    if not 0 <= mode <= MAX_MODE:
        shown = f"{value} (octal {mode:o})" if isinstance(value, int) else repr(value)
        raise ConfigError(
            f"{what}: mode {shown} is outside 0000..0777 (write it as a string, '0660', or as 0o660)"
        )
    return f"{mode:04o}"


def socket_mode(text: str) -> int:
    """The mode bits of a value parse_socket_mode returned."""
    return int(text, 8)


def parse_socket_group(value: Any, what: str) -> str:
    """A group name or a numeric gid ('' keeps the agent's own group); a name must exist here."""
    if not isinstance(value, (str, int)) or isinstance(value, bool):
        raise ConfigError(f"{what}: {value!r} is not a group name or gid")
    text = str(value).strip()
    if text:
        socket_gid(text, what)
    return text


def socket_gid(group: str, what: str = "local_socket_group") -> int:
    """The gid of a group name or numeric gid; ConfigError naming a group this host lacks."""
    if group.isdigit():
        return int(group)
    try:
        return grp.getgrnam(group).gr_gid
    except KeyError:
        raise ConfigError(f"{what}: group {group!r} does not exist on this host") from None


def apply_to_socket(path: str, mode: str, group: str) -> None:
    """Give the bound socket file its group (first, so it is never open to the wrong group)
    and mode. OSError names the path (e.g. a group the agent's user is not a member of)."""
    try:
        if group:
            os.chown(path, -1, socket_gid(group))
        os.chmod(path, socket_mode(mode))
    except OSError as exc:
        raise OSError(
            f"cannot set group {group or '(unchanged)'} and mode {mode} on {path}: {exc.strerror} "
            "(local_socket_group, local_socket_mode)"
        ) from None


def check_listen(
    listen: str, insecure: bool, key: str = "local_listen", use: str = "127.0.0.1, [::1] or the unix socket"
) -> None:
    """A non-loopback listener for apps (`key`) needs `insecure`: anyone who reaches it can send
    as this host. `use`: what to listen on instead."""
    if listen and not insecure and not is_loopback(listen):
        raise ConfigError(
            f"{key} {listen!r} is not a loopback address: any host that reaches it could send "
            f"records as this agent (use {use}; set insecure = true, --insecure, to allow it)"
        )
