"""``mysql://`` and ``mariadb://`` URLs: parsing, driver arguments and safe error messages.

The URL is ``mysql://user:password@host:3306/database?table=coatcheck_sessions&pool_size=10``.
Nothing here ever puts the user, the password or a storage key into a message.
"""

from __future__ import annotations

import re
import ssl
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlsplit

from ..errors import ConfigError, StoreUnavailable
from . import url_options

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
_INIT = "SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED"

_DEFAULTS = {
    "pool_size": "10",
    "pool_timeout": "10",
    "connect_timeout": "5",
    "read_timeout": "30",
    "write_timeout": "30",
}


@dataclass(frozen=True)
class Settings:
    """Everything a MySQL store needs from its URL."""

    host: str
    port: int
    user: str | None
    password: str = field(repr=False)
    database: str
    unix_socket: str | None
    table: str
    pool_size: int
    pool_timeout: float
    connect_timeout: float
    read_timeout: float
    write_timeout: float
    tls: ssl.SSLContext | None = field(default=None, repr=False)

    @property
    def where(self) -> str:
        """Where the store is, for messages: host, port and database, never credentials."""
        place = self.unix_socket or f"{self.host}:{self.port}"
        return f"mysql store at {place}/{self.database}"

    def pymysql_args(self) -> dict[str, Any]:
        """Keyword arguments for ``pymysql.connect`` (autocommit, READ COMMITTED, one round
        trip per statement batch)."""
        from pymysql.constants import CLIENT  # type: ignore[import-untyped]

        return {
            **self._common(),
            # MULTI_STATEMENTS: read-and-lock is one round trip (UPDATE; SELECT). FOUND_ROWS is
            # deliberately off, so affected rows tell an insert (1) from an update (2).
            "client_flag": CLIENT.MULTI_STATEMENTS,
            "database": self.database,
            "read_timeout": self.read_timeout,
            "write_timeout": self.write_timeout,
        }

    def aiomysql_args(self) -> dict[str, Any]:
        """Keyword arguments for ``aiomysql.create_pool`` (it always sets MULTI_STATEMENTS)."""
        return {**self._common(), "db": self.database, "minsize": 0, "maxsize": self.pool_size}

    def _common(self) -> dict[str, Any]:
        args: dict[str, Any] = {
            "host": self.host,
            "port": self.port,
            "user": self.user,
            "password": self.password,
            "charset": "utf8mb4",
            "autocommit": True,
            "init_command": _INIT,
            "connect_timeout": self.connect_timeout,
        }
        if self.unix_socket:
            args["unix_socket"] = self.unix_socket
        if self.tls is not None:
            args["ssl"] = self.tls
        return args


def parse(url: str) -> Settings:
    """Settings from a ``mysql://`` or ``mariadb://`` URL; ConfigError on anything invalid."""
    parts = urlsplit(url)
    options = {**_DEFAULTS, **url_options(parts.query)}
    database = unquote(parts.path.lstrip("/"))
    if not database or "/" in database:
        raise ConfigError("mysql store URL needs a database: mysql://user@host:3306/dbname")
    table = options.pop("table", "coatcheck_sessions")
    if not _IDENT.fullmatch(table):
        raise ConfigError("mysql store option table must be a plain SQL identifier")
    try:
        port = parts.port or 3306
    except ValueError as e:
        raise ConfigError("mysql store URL has an invalid port") from e
    settings = Settings(
        host=parts.hostname or "127.0.0.1",
        port=port,
        user=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password or ""),
        database=database,
        unix_socket=options.pop("unix_socket", None),
        table=table,
        pool_size=int(_number(options, "pool_size", integer=True)),
        pool_timeout=_number(options, "pool_timeout"),
        connect_timeout=_number(options, "connect_timeout"),
        read_timeout=_number(options, "read_timeout"),
        write_timeout=_number(options, "write_timeout"),
        tls=_tls(options),
    )
    if options:
        raise ConfigError(f"unknown mysql store option(s): {', '.join(sorted(options))}")
    return settings


def _number(options: dict[str, str], name: str, *, integer: bool = False) -> float:
    raw = options.pop(name)
    try:
        value = int(raw) if integer else float(raw)
    except ValueError:
        value = 0
    if not value > 0:
        kind = "a whole number" if integer else "a number of seconds"
        raise ConfigError(f"mysql store option {name} must be {kind} greater than 0")
    return value


def _tls(options: dict[str, str]) -> ssl.SSLContext | None:
    """A TLS context when any ``ssl*`` option is given; verifies the server by default."""
    wanted = options.pop("ssl", "")
    ca = options.pop("ssl_ca", None)
    cert = options.pop("ssl_cert", None)
    key = options.pop("ssl_key", None)
    verify_identity = options.pop("ssl_verify_identity", "1")
    if not (wanted.lower() in ("1", "true", "yes", "on") or ca or cert):
        return None
    try:
        context = ssl.create_default_context(cafile=ca)
        context.check_hostname = verify_identity.lower() not in ("0", "false", "no", "off")
        if cert:
            context.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as e:
        raise ConfigError(f"mysql store TLS options: cannot load a certificate or key ({e})") from e
    return context


_USER_AT = re.compile(r"'[^']*'@'[^']*'")
_HEX_KEY = re.compile(r"[0-9A-Fa-f]{64}")
_DENIED = {1044, 1045, 1698, 1227}


def unavailable(error: BaseException, where: str) -> StoreUnavailable:
    """StoreUnavailable for a driver or socket error, with no user name, password or key."""
    args: tuple[Any, ...] = getattr(error, "args", ())
    code = args[0] if len(args) >= 2 and isinstance(args[0], int) else None
    if code in _DENIED:
        text = "access denied; check the user and password in the store URL"
    elif isinstance(error, TimeoutError):
        text = "timed out"
    else:
        text = str(args[1]) if code is not None else str(error) or type(error).__name__
        text = _HEX_KEY.sub("<key>", _USER_AT.sub("<user>", text))
    suffix = f" (error {code})" if code is not None else ""
    return StoreUnavailable(f"{where}: {text}{suffix}")
