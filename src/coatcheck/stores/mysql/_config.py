"""``mysql://`` and ``mariadb://`` URLs: the settings both drivers take, and safe errors.

The URL is ``mysql://user:password@host:3306/database?table=coatcheck_sessions&pool_size=10``
(see docs/stores/mysql.md for every option). Nothing here imports a driver.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

from ...errors import ConfigError, StoreUnavailable
from .. import _url
from ._statements import LEASES

READ_COMMITTED = "SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED"
IDLE_LIMIT = 60
"""Seconds idle after which a pooled connection is replaced rather than trusted: a
firewall may have dropped it without telling either side."""


@dataclass(frozen=True)
class Settings:
    """Everything a MySQL store needs from its URL; the password never shows in a repr."""

    host: str
    port: int
    user: str | None
    password: str = field(repr=False)
    database: str
    unix_socket: str | None
    table: str
    create_schema: bool
    """The first write or lock creates a missing table (else: run ``coatcheck init``)."""
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

    def connect_args(self) -> dict[str, Any]:
        """Keyword arguments both drivers' ``connect`` take: autocommit at READ COMMITTED,
        so every statement is its own short transaction and takes no gap locks."""
        args: dict[str, Any] = {
            "host": self.host,
            "port": self.port,
            "user": self.user,
            "password": self.password,
            "database": self.database,
            "charset": "utf8mb4",
            "autocommit": True,
            "init_command": READ_COMMITTED,
            "connect_timeout": self.connect_timeout,
            "read_timeout": self.read_timeout,
        }
        if self.unix_socket:
            args["unix_socket"] = self.unix_socket
        if self.tls is not None:
            args["ssl"] = self.tls
        return args

    def unavailable(self, e: BaseException, doing: str, key: str | None = None) -> StoreUnavailable:
        """The StoreUnavailable for ``e``: no password, user name or storage key in it.

        The server names a user as ``'user'@'host'``; that quoted form is what is scrubbed.
        """
        user = f"'{self.user}'" if self.user else None
        return _url.unavailable(self.where, e, doing, (self.password, user, key))

    def pool_busy(self) -> TimeoutError:
        """The error for a pool whose connections all stayed busy for ``pool_timeout``."""
        return TimeoutError(
            f"all {self.pool_size} pooled connections stayed busy for"
            f" {self.pool_timeout:g}s (raise pool_size?)"
        )


def parse(url: str) -> Settings:
    """Settings from a ``mysql://`` or ``mariadb://`` URL; ConfigError on anything invalid."""
    parsed = _url.parse(url, default_port=3306)
    database = unquote(parsed.path.lstrip("/"))
    if not database or "/" in database:
        raise ConfigError("mysql store URL needs a database: mysql://user@host:3306/dbname")
    host, port = parsed.hosts[0] if parsed.hosts else ("127.0.0.1", 3306)
    opts = parsed.options
    settings = Settings(
        host=host,
        port=port,
        user=parsed.username,
        password=parsed.password or "",
        database=database,
        unix_socket=opts.optional("unix_socket"),
        table=opts.identifier("table", "coatcheck_sessions", max_len=64 - len(LEASES)),
        create_schema=opts.flag("create_schema", "true"),
        pool_size=opts.whole("pool_size", "10"),
        pool_timeout=opts.number("pool_timeout", "10"),
        connect_timeout=opts.number("connect_timeout", "5"),
        read_timeout=opts.number("read_timeout", "30"),
        write_timeout=opts.number("write_timeout", "30"),
        tls=_tls(opts),
    )
    opts.done()
    return settings


def _tls(opts: _url.Options) -> ssl.SSLContext | None:
    """A TLS context when any ``ssl*`` option is given; verifies the server by default."""
    wanted = opts.flag("ssl", "false")
    ca = opts.optional("ssl_ca")
    cert = opts.optional("ssl_cert")
    key = opts.optional("ssl_key")
    verify_identity = opts.flag("ssl_verify_identity", "true")
    if not (wanted or ca or cert):
        return None
    try:
        context = ssl.create_default_context(cafile=ca)
        context.check_hostname = verify_identity
        if cert:
            context.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as e:
        raise ConfigError(f"mysql store TLS options: cannot load a certificate or key ({e})") from e
    return context
