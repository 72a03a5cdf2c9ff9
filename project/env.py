"""Reading configuration from the environment, with errors that name the variable.

Settings that are wrong must stop the process at start with a message a person can act on,
not with a stack trace on the first request; every parser here raises ConfigError for that.
"""

from __future__ import annotations

import builtins
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import parse_qs, unquote, urlsplit


class ConfigError(Exception):
    """A setting read from the environment is missing or malformed."""

    def __init__(self, variable: str, problem: str) -> None:
        super().__init__(f"{variable}: {problem}")
        self.variable = variable
        self.problem = problem


@dataclass(frozen=True)
class Env:
    environ: Mapping[str, str]

    def str(self, name: builtins.str, default: builtins.str = "") -> builtins.str:
        return self.environ.get(name, default).strip()

    def required(self, name: builtins.str, why: builtins.str) -> builtins.str:
        value = self.str(name)
        if not value:
            raise ConfigError(name, f"must be set ({why})")
        return value

    def bool(self, name: builtins.str, default: builtins.bool) -> builtins.bool:
        raw = self.str(name).lower()
        if not raw:
            return default
        if raw in {"1", "true", "yes", "on"}:
            return True
        if raw in {"0", "false", "no", "off"}:
            return False
        raise ConfigError(name, f"expected true or false, got {raw!r}")

    def int(
        self, name: builtins.str, default: builtins.int, *, minimum: builtins.int = 0
    ) -> builtins.int:
        raw = self.str(name)
        if not raw:
            return default
        try:
            value = int(raw)
        except ValueError:
            raise ConfigError(name, f"expected a whole number, got {raw!r}") from None
        if value < minimum:
            raise ConfigError(name, f"must be at least {minimum}, got {value}")
        return value

    def float(
        self,
        name: builtins.str,
        default: builtins.float,
        minimum: builtins.float = float("-inf"),
    ) -> builtins.float:
        raw = self.str(name)
        if not raw:
            return default
        try:
            value = float(raw)
        except ValueError:
            raise ConfigError(name, f"expected a number, got {raw!r}") from None
        if not value >= minimum:  # also refuses nan
            raise ConfigError(name, f"must be at least {minimum}, got {raw}")
        return value

    def list(
        self, name: builtins.str, default: builtins.list[builtins.str]
    ) -> builtins.list[builtins.str]:
        raw = self.str(name)
        if not raw:
            return default
        return [item.strip() for item in raw.split(",") if item.strip()]


def parse_rate(variable: str, raw: str) -> tuple[int, int]:
    """ "600/60" -> (600, 60): at most 600 in any 60-second window."""
    count, _, seconds = raw.partition("/")
    try:
        parsed = int(count), int(seconds)
    except ValueError:
        raise ConfigError(
            variable, f"expected <count>/<seconds>, like 600/60, got {raw!r}"
        ) from None
    if parsed[0] < 1 or parsed[1] < 1:
        raise ConfigError(variable, f"both numbers must be at least 1, got {raw!r}")
    return parsed


def parse_database_url(variable: str, url: str) -> dict[str, object]:
    """Turn postgres://user:pass@host:port/name?sslmode=... into Django's DATABASES entry."""
    parts = urlsplit(url)
    if parts.scheme not in {"postgres", "postgresql"}:
        raise ConfigError(
            variable, f"only postgres:// or postgresql:// URLs are supported, got {parts.scheme!r}"
        )
    name = unquote(parts.path.lstrip("/"))
    if not name:
        raise ConfigError(variable, "the URL names no database (postgresql://host/NAME)")
    try:
        port = parts.port
    except ValueError:
        raise ConfigError(variable, "the port is not a number") from None
    options: dict[str, object] = {
        key: values[-1] for key, values in parse_qs(parts.query).items() if values
    }
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": name,
        "USER": unquote(parts.username or ""),
        "PASSWORD": unquote(parts.password or ""),
        "HOST": parts.hostname or "",
        "PORT": str(port or ""),
        "OPTIONS": options,
    }


def check_url_scheme(variable: str, url: str, schemes: set[str]) -> str:
    scheme = urlsplit(url).scheme
    if scheme not in schemes:
        allowed = ", ".join(sorted(f"{s}://" for s in schemes))
        raise ConfigError(variable, f"expected a URL starting with {allowed}, got {url!r}")
    return url
