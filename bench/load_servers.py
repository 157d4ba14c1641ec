"""Processes the load test starts and may kill: the app servers, and stores of its own.

Every store server here runs from a temp dir on a free loopback port, so a fault (SIGKILL,
terminated connections, DEBUG SLEEP) never reaches the shared servers on 6379/5432/3306.
Every wait is bounded; ``stop()`` is safe to call twice.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from bench.load_app import LEASE_ENV, STORE_ENV, WAIT_ENV

ROOT = Path(__file__).resolve().parents[1]
START_WITHIN = 60.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def listening(port: int, timeout: float = 0.2) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_for(check: object, what: str, within: float = START_WITHIN) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if callable(check) and check():
            return
        time.sleep(0.05)
    raise RuntimeError(f"{what} did not come up within {within:g}s")


def _end(proc: subprocess.Popen[bytes] | None, sig: int = signal.SIGTERM) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(sig)
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)


# --- the app under test ----------------------------------------------------------------------


class AppServer:
    """``bench.load_app`` under uvicorn (``asgi``) or waitress (``wsgi``) in a subprocess."""

    def __init__(self, kind: str, store_url: str, lease: float = 5, wait: float = 3) -> None:
        self.kind = kind
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, STORE_ENV: store_url, LEASE_ENV: str(lease), WAIT_ENV: str(wait)}
        command = [sys.executable, "-m", "bench.load_app", kind, str(self.port)]
        # the app's own log (a warning per 503) goes to a file: the report is on stdout
        self.log = tempfile.NamedTemporaryFile(prefix=f"cc-load-{kind}-", suffix=".log")  # noqa: SIM115
        self.proc: subprocess.Popen[bytes] | None = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT
        )
        try:
            wait_for(self._healthy, f"{kind} app server")
        except BaseException:
            self.stop()
            raise

    def tail(self, size: int = 2000) -> str:
        """The end of the server's log."""
        self.log.seek(0)
        return self.log.read().decode(errors="replace")[-size:]

    def _healthy(self) -> bool:
        if self.proc is None or self.proc.poll() is not None:
            raise RuntimeError(f"{self.kind} app server exited before serving:\n{self.tail()}")
        try:
            return httpx.get(self.base + "/health", timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    def kill(self) -> None:
        """SIGKILL: no cleanup of any kind, as when the OOM killer takes a worker."""
        _end(self.proc, signal.SIGKILL)
        self.proc = None
        self.log.close()

    def stop(self) -> None:
        _end(self.proc)
        self.proc = None
        self.log.close()


# --- Redis -------------------------------------------------------------------------------------


class OwnRedis:
    """A redis-server of our own; ``aof`` = appendonly with fsync on every write."""

    def __init__(self, aof: bool, replica_of: int | None = None) -> None:
        self.dir = tempfile.mkdtemp(prefix="cc-load-redis-")
        self.port = free_port()
        self.aof = aof
        self.replica_of = replica_of
        self.proc: subprocess.Popen[bytes] | None = None
        self.start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        args = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1"]
        args += ["--dir", self.dir, "--save", "", "--enable-debug-command", "yes"]
        if self.aof:
            args += ["--appendonly", "yes", "--appendfsync", "always"]
        else:
            args += ["--appendonly", "no"]
        if self.replica_of is not None:
            args += ["--replicaof", "127.0.0.1", str(self.replica_of)]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL)
        wait_for(lambda: listening(self.port), f"redis-server on {self.port}")

    def kill(self) -> None:
        _end(self.proc, signal.SIGKILL)
        self.proc = None

    def stop(self) -> None:
        _end(self.proc)
        self.proc = None
        shutil.rmtree(self.dir, ignore_errors=True)


class OwnSentinel:
    """A master, a replica and one Sentinel (quorum 1, down after 1 s) of our own."""

    SERVICE = "loadmaster"

    def __init__(self) -> None:
        self.master = OwnRedis(aof=False)
        self.replica = OwnRedis(aof=False, replica_of=self.master.port)
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="cc-load-sentinel-")
        conf = Path(self.dir, "sentinel.conf")
        conf.write_text(
            f"port {self.port}\nbind 127.0.0.1\ndir {self.dir}\n"
            f"sentinel monitor {self.SERVICE} 127.0.0.1 {self.master.port} 1\n"
            f"sentinel down-after-milliseconds {self.SERVICE} 1000\n"
            f"sentinel failover-timeout {self.SERVICE} 5000\n"
            f"sentinel parallel-syncs {self.SERVICE} 1\n"
        )
        self.proc: subprocess.Popen[bytes] | None = subprocess.Popen(
            ["redis-server", str(conf), "--sentinel"], stdout=subprocess.DEVNULL
        )
        try:
            wait_for(lambda: listening(self.port), "redis sentinel")
            wait_for(self._replica_synced, "redis replica sync", within=30)
            wait_for(lambda: self.master_port() == self.master.port, "sentinel", within=30)
        except BaseException:
            self.stop()
            raise

    @property
    def url(self) -> str:
        return f"redis+sentinel://127.0.0.1:{self.port}/{self.SERVICE}/0"

    def _replica_synced(self) -> bool:
        import redis

        info = redis.Redis(port=self.replica.port, socket_timeout=1).info("replication")
        return info.get("master_link_status") == "up"

    def master_port(self) -> int | None:
        import redis

        try:
            client = redis.Redis(port=self.port, socket_timeout=1)
            addr = client.execute_command("SENTINEL", "get-master-addr-by-name", self.SERVICE)
        except redis.RedisError:
            return None
        return int(addr[1]) if addr else None

    def stop(self) -> None:
        _end(self.proc)
        self.proc = None
        self.master.stop()
        self.replica.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


# --- PostgreSQL --------------------------------------------------------------------------------


def _pg_bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if found:
        return found[-1]
    path = shutil.which(name)
    if path is None:
        raise RuntimeError(f"PostgreSQL's {name} is not installed")
    return path


def _as_postgres(command: list[str]) -> list[str]:
    """Run as the postgres user when we are root (initdb and postgres refuse root)."""
    if os.geteuid() != 0:
        return command
    return ["setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups", *command]


class OwnPostgres:
    """A PostgreSQL cluster of our own (initdb in a temp dir, trust auth, loopback port)."""

    def __init__(self) -> None:
        self.dir = tempfile.mkdtemp(prefix="cc-load-pg-")
        self.port = free_port()
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres", "postgres")
        data = os.path.join(self.dir, "data")
        initdb = [_pg_bin("initdb"), "-D", data, "-A", "trust", "-U", "postgres", "--no-sync"]
        subprocess.run(_as_postgres(initdb), check=True, capture_output=True, timeout=120)
        command = [_pg_bin("postgres"), "-D", data, "-p", str(self.port), "-k", self.dir]
        command += ["-c", "listen_addresses=127.0.0.1", "-c", "max_connections=60"]
        self.proc: subprocess.Popen[bytes] | None = subprocess.Popen(
            _as_postgres(command), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        try:
            wait_for(self._ready, "own postgres")
        except BaseException:
            self.stop()
            raise

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _ready(self) -> bool:
        import psycopg

        try:
            psycopg.connect(self.url, connect_timeout=1).close()
            return True
        except psycopg.OperationalError:
            return False

    def terminate_backends(self) -> int:
        """pg_terminate_backend() on every coatcheck connection; how many there were."""
        import psycopg

        sql = (
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE application_name = 'coatcheck' AND pid <> pg_backend_pid()"
        )
        with psycopg.connect(self.url, autocommit=True, connect_timeout=5) as conn:
            row = conn.execute(sql).fetchone()
        return int(row[0]) if row else 0

    def stop(self) -> None:
        _end(self.proc, signal.SIGINT)  # fast shutdown
        self.proc = None
        shutil.rmtree(self.dir, ignore_errors=True)


# --- MariaDB -----------------------------------------------------------------------------------


class OwnMariaDB:
    """A MariaDB server of our own (mariadb-install-db + mariadbd in a temp dir)."""

    def __init__(self) -> None:
        self.dir = tempfile.mkdtemp(prefix="cc-load-maria-")
        self.port = free_port()
        data = os.path.join(self.dir, "data")
        install = ["mariadb-install-db", "--no-defaults", f"--datadir={data}", "--user=root"]
        install += ["--auth-root-authentication-method=normal", "--skip-test-db"]
        subprocess.run(install, check=True, capture_output=True, timeout=180)
        command = ["/usr/sbin/mariadbd", "--no-defaults", f"--datadir={data}", "--user=root"]
        command += [f"--socket={self.dir}/sock", f"--port={self.port}"]
        command += ["--bind-address=127.0.0.1", f"--pid-file={self.dir}/pid"]
        command += [f"--log-error={self.dir}/error.log", "--innodb-buffer-pool-size=64M"]
        command += ["--skip-name-resolve", "--max-connections=100"]
        self.proc: subprocess.Popen[bytes] | None = subprocess.Popen(command)
        try:
            wait_for(self._ready, "own mariadbd")
            with self._admin() as conn, conn.cursor() as cur:
                cur.execute("CREATE DATABASE IF NOT EXISTS test")
                cur.execute("CREATE USER IF NOT EXISTS 'root'@'127.0.0.1'")
                cur.execute("GRANT ALL ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION")
        except BaseException:
            self.stop()
            raise

    @property
    def url(self) -> str:
        return f"mysql://root@127.0.0.1:{self.port}/test"

    def _admin(self):  # type: ignore[no-untyped-def]
        import pymysql

        # root@localhost over the socket: --skip-name-resolve makes TCP root@127.0.0.1 a
        # different account, and mariadb-install-db may not create it
        return pymysql.connect(unix_socket=f"{self.dir}/sock", user="root", connect_timeout=2)

    def _ready(self) -> bool:
        import pymysql

        if self.proc is None or self.proc.poll() is not None:
            raise RuntimeError(f"mariadbd exited; see {self.dir}/error.log")
        try:
            self._admin().close()
            return True
        except pymysql.MySQLError:
            return False

    def kill_connections(self) -> int:
        """KILL every client connection but our own; how many there were."""
        import pymysql

        with self._admin() as conn, conn.cursor() as cur:
            cur.execute(
                "SELECT id FROM information_schema.processlist"
                " WHERE id <> CONNECTION_ID() AND command <> 'Daemon' AND user <> 'system user'"
            )
            ids = [row[0] for row in cur.fetchall()]
            for i in ids:
                with contextlib.suppress(pymysql.MySQLError):  # gone meanwhile
                    cur.execute(f"KILL {int(i)}")
        return len(ids)

    def stop(self) -> None:
        _end(self.proc)
        self.proc = None
        shutil.rmtree(self.dir, ignore_errors=True)
