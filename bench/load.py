"""Load test with a shadow model, and faults: ``python -m bench.load``.

N clients (threads, httpx) x M requests against a real server on loopback (uvicorn or
waitress serving :mod:`bench.load_app`). Each client starts a session of its own holding its
name, then sends ``/inc``; some clients fire AJAX-style bursts of K concurrent ``/inc`` on
their one session. Each client keeps a model of what its session must hold:

* every 200 answer carries the client's own name (else: a cross-session leak);
* the ``n`` of the 200 answers are distinct and above every ``n`` acknowledged before (else:
  an increment lost), and no higher than the acknowledged ones plus the requests whose
  outcome is unknown (a 503 "store unavailable" or a transport error may have been written
  before its answer was lost; else: an increment duplicated);
* at the end ``/get`` holds at least every acknowledged increment (else: acknowledged writes
  lost). A session the store forgot (it answers without the client's name) counts as
  reset, and all its acknowledged writes as lost.

Faults run during the load, each against a store server this run started itself (see
:mod:`bench.load_servers`): Redis SIGKILLed and restarted with and without AOF, Redis slowed
by ``DEBUG SLEEP`` beyond the store's socket timeout, PostgreSQL backends terminated,
MariaDB connections killed, an app worker SIGKILLed while it holds a session's lock, and a
Sentinel failover. Recovery is the time from the end of a fault to the first 200 of a
request sent after it.

    python -m bench.load                       # every store, both servers, every fault
    python -m bench.load --store sqlite redis --server asgi --clients 8 --requests 50
    python -m bench.load --store redis://127.0.0.1:6379/0 --faults none
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx

from bench.load_servers import AppServer, OwnMariaDB, OwnPostgres, OwnRedis, OwnSentinel

REQUEST_TIMEOUT = {"connect": 5.0, "read": 30.0, "write": 5.0, "pool": 30.0}
RUN_LIMIT = 180.0  # no run goes on longer, whatever happens to the store
RECOVERY_LIMIT = 60.0  # a fault not recovered from by then is reported as not recovered
THINK = 0.01  # pause between a client's steps
LEASE = 5.0  # the app's lock_lease: the worker-kill fault recovers after about this
LOCK_WAIT = 3.0  # the app's lock_wait
REDIS_SOCKET_TIMEOUT = 2.0  # the redis store's default socket_timeout
TYPED = (200, 409, 503)

# store name -> the faults that apply to it (every managed store server is our own)
FAULTS = {
    "sqlite": ("worker-kill",),
    "redis": ("redis-kill", "redis-slow", "worker-kill"),
    "redis-noaof": ("redis-kill",),
    "postgresql": ("pg-terminate", "worker-kill"),
    "mysql": ("mysql-kill", "worker-kill"),
    "sentinel": ("failover",),
}
# stores that may lose acknowledged writes by design under their fault
MAY_LOSE = {"redis-noaof": "no persistence", "sentinel": "asynchronous replication"}


# --- what happened ----------------------------------------------------------------------------


@dataclass
class Outcome:
    start: float
    end: float
    status: int
    kind: str  # "200", "503 busy", "503 store", "409", "500", "transport: ReadTimeout", ...


@dataclass
class Fault:
    name: str
    start: float
    end: float
    note: str = ""
    recovered: float | None = None  # seconds from end to the first 200 sent after it


@dataclass
class Tally:
    """Everything the clients of one run saw; shared by their threads."""

    outcomes: list[Outcome] = field(default_factory=list)
    acknowledged: int = 0
    lost_acknowledged: int = 0
    lost_increments: int = 0
    duplicated: int = 0
    leaks: int = 0
    resets: int = 0
    gave_up: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, **counts: int) -> None:
        with self.lock:
            for name, n in counts.items():
                setattr(self, name, getattr(self, name) + n)

    def record(self, outcome: Outcome) -> None:
        with self.lock:
            self.outcomes.append(outcome)

    def first_success_after(self, t: float) -> float | None:
        with self.lock:
            ends = [o.end for o in self.outcomes if o.status == 200 and o.start >= t]
        return min(ends) if ends else None


# --- a client and its model -------------------------------------------------------------------


class Client:
    """One browser: a session of its own, and what that session must hold."""

    def __init__(self, base: str, tally: Tally, name: str, burst: int = 0) -> None:
        self.base = base
        self.tally = tally
        self.name = name
        self.burst = burst
        self.http = httpx.HTTPTransport()  # no cookie jar: the cookie is ours to send
        self.pool = ThreadPoolExecutor(burst) if burst else None
        self.cookie: str | None = None
        self.floor = 0  # the n every acknowledged increment adds up to
        self.slack = 0  # increments that may have been written though never acknowledged

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown()
        self.http.close()

    # -- HTTP --

    def send(self, path: str, base: str | None = None, record: bool = True) -> tuple[int, Any]:
        headers = {"Cookie": self.cookie} if self.cookie else {}
        request = httpx.Request(
            "GET", (base or self.base) + path, headers=headers,
            extensions={"timeout": REQUEST_TIMEOUT},
        )  # fmt: skip
        start = time.monotonic()
        try:
            response = self.http.handle_request(request)
            body = response.read()
            response.close()
        except httpx.HTTPError as e:
            if record:
                self.tally.record(
                    Outcome(start, time.monotonic(), 0, f"transport: {type(e).__name__}")
                )
            return 0, None
        end = time.monotonic()
        status = response.status_code
        kind = str(status)
        if status == 503:
            kind = "503 busy" if b"busy" in body else "503 store"
        if record:
            self.tally.record(Outcome(start, end, status, kind))
        for header in response.headers.get_list("set-cookie"):
            if header.startswith("session="):
                self.cookie = header.split(";", 1)[0]
        is_json = response.headers.get("content-type", "").startswith("application/json")
        return status, httpx.Response(status, content=body).json() if is_json else body

    # -- the model --

    def start_session(self, within: float = RECOVERY_LIMIT) -> bool:
        self.cookie, self.floor, self.slack = None, 0, 0
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            status, body = self.send(f"/start?who={self.name}")
            if status == 200:
                if body.get("who") != self.name:
                    self.tally.add(leaks=1)
                return True
            self.cookie = None
            time.sleep(0.1)
        self.tally.add(gave_up=1)
        return False

    def step(self) -> bool:
        """One /inc, or one burst; False when the session was reset (start another)."""
        if self.pool is not None:
            answers = list(self.pool.map(lambda _: self.send("/inc"), range(self.burst)))
        else:
            answers = [self.send("/inc")]
        return self.settle(answers)

    def settle(self, answers: list[tuple[int, Any]]) -> bool:
        unknown = sum(1 for status, body in answers if _outcome_unknown(status, body))
        ours: list[int] = []
        reset = False
        for status, body in answers:
            if status != 200:
                continue
            if body.get("who") is None:
                reset = True
            elif body["who"] != self.name:
                self.tally.add(leaks=1)
            else:
                ours.append(int(body["n"]))
        if reset:
            self.tally.add(resets=1, lost_acknowledged=self.floor)
            return False
        fresh = [n for n in ours if n > self.floor]
        lost = (len(ours) - len(fresh)) + (len(fresh) - len(set(fresh)))
        if fresh:
            surfaced = max(fresh) - self.floor - len(set(fresh))  # unacknowledged ones written
            over = surfaced - self.slack - unknown
            self.tally.add(duplicated=max(0, over))
            self.slack = max(0, self.slack + unknown - max(0, surfaced))
            self.floor = max(fresh)
        else:
            self.slack += unknown
        self.tally.add(acknowledged=len(ours), lost_increments=lost)
        return True

    def final_check(self) -> None:
        deadline = time.monotonic() + RECOVERY_LIMIT
        while time.monotonic() < deadline:
            status, body = self.send("/get")
            if status == 200:
                break
            time.sleep(0.2)
        else:
            self.tally.add(gave_up=1)
            return
        if body.get("who") is None:
            self.tally.add(resets=1, lost_acknowledged=self.floor)
        elif body["who"] != self.name:
            self.tally.add(leaks=1)
        else:
            n = int(body.get("n", 0))
            self.tally.add(lost_acknowledged=max(0, self.floor - n))
            self.tally.add(duplicated=max(0, n - self.floor - self.slack))

    def run(self, steps: int, keep_going: threading.Event, deadline: float) -> None:
        if not self.start_session():
            return
        done = 0
        while (done < steps or keep_going.is_set()) and time.monotonic() < deadline:
            if not self.step() and not self.start_session():
                return
            done += self.burst or 1
            time.sleep(THINK)
        self.final_check()


def _outcome_unknown(status: int, body: Any) -> bool:
    """Whether a failed /inc may still have been written: a lost answer, a store failure.

    409 and 503 "busy" (LockTimeout) promise that nothing was written.
    """
    if status == 0:
        return True
    return status >= 500 and not (isinstance(body, bytes) and b"busy" in body)


# --- faults -----------------------------------------------------------------------------------


@dataclass
class Target:
    """What a run's faults may act on."""

    store: str
    server: str
    url: str
    own: Any = None  # the OwnRedis / OwnPostgres / ... this run may hurt
    base: str = ""  # the app server's URL, once a run started it


def redis_kill(target: Target, tally: Tally) -> Fault:
    start = time.monotonic()
    target.own.kill()
    time.sleep(2.0)
    target.own.start()
    return Fault("redis-kill", start, time.monotonic(), "SIGKILL, down 2 s, restarted")


def redis_slow(target: Target, tally: Tally) -> Fault:
    import redis

    seconds = REDIS_SOCKET_TIMEOUT * 2
    client = redis.Redis(port=target.own.port, socket_timeout=seconds + 10)
    start = time.monotonic()
    client.execute_command("DEBUG", "SLEEP", seconds)
    client.close()
    note = f"DEBUG SLEEP {seconds:g} (socket_timeout {REDIS_SOCKET_TIMEOUT:g})"
    return Fault("redis-slow", start, time.monotonic(), note)


def pg_terminate(target: Target, tally: Tally) -> Fault:
    start = time.monotonic()
    n = target.own.terminate_backends()
    return Fault("pg-terminate", start, time.monotonic(), f"{n} backends terminated")


def mysql_kill(target: Target, tally: Tally) -> Fault:
    start = time.monotonic()
    n = target.own.kill_connections()
    return Fault("mysql-kill", start, time.monotonic(), f"{n} connections killed")


def failover(target: Target, tally: Tally) -> Fault:
    sentinel: OwnSentinel = target.own
    start = time.monotonic()
    sentinel.master.kill()
    deadline = start + RECOVERY_LIMIT
    while sentinel.master_port() != sentinel.replica.port and time.monotonic() < deadline:
        time.sleep(0.05)
    promoted = sentinel.master_port() == sentinel.replica.port
    end = time.monotonic()
    note = f"replica promoted after {end - start:.1f} s" if promoted else "never promoted"
    return Fault("failover", start, end, note)


def worker_kill(target: Target, tally: Tally) -> Fault:
    """A second app server takes a session's lock in /hold and is SIGKILLed there.

    Recovery is that session's own: its first 200 after the kill, expected after the lease.
    Acknowledged increments from before must all be there; the held request's change not.
    """
    victim = AppServer(target.server, target.url, lease=LEASE, wait=LOCK_WAIT)
    client = Client(target.base, tally, f"held-{uuid.uuid4().hex[:8]}")
    try:
        if not client.start_session():
            return Fault("worker-kill", time.monotonic(), time.monotonic(), "no session")
        for _ in range(3):
            client.step()
        cookie = client.cookie
        hold = threading.Thread(
            target=lambda: client.send("/hold?secs=120", base=victim.base, record=False),
            daemon=True,
        )
        hold.start()
        time.sleep(1.0)  # /hold takes the lock in milliseconds; give it ample time
        start = time.monotonic()
        victim.kill()
        end = time.monotonic()
        hold.join(10)
        client.cookie = cookie
        deadline = end + LEASE + RECOVERY_LIMIT
        first: float | None = None
        while time.monotonic() < deadline:
            status, body = client.send("/inc")
            client.settle([(status, body)])
            if status == 200:
                first = time.monotonic()
                break
            time.sleep(0.1)
        client.final_check()
        _, stored = client.send("/get")
        held = isinstance(stored, dict) and stored.get("held")
        note = f"lease {LEASE:g} s; held request's change {'SAVED' if held else 'not saved'}"
        fault = Fault("worker-kill", start, end, note)
        fault.recovered = None if first is None else first - end
        return fault
    finally:
        victim.stop()
        client.close()


INJECT: dict[str, Callable[[Target, Tally], Fault]] = {
    "redis-kill": redis_kill,
    "redis-slow": redis_slow,
    "pg-terminate": pg_terminate,
    "mysql-kill": mysql_kill,
    "failover": failover,
    "worker-kill": worker_kill,
}


def run_faults(names: list[str], target: Target, tally: Tally, faults: list[Fault]) -> None:
    time.sleep(1.0)  # the load is under way
    for name in names:
        fault = INJECT[name](target, tally)
        if fault.recovered is None and name != "worker-kill":
            deadline = fault.end + RECOVERY_LIMIT
            while time.monotonic() < deadline:
                first = tally.first_success_after(fault.end)
                if first is not None:
                    fault.recovered = first - fault.end
                    break
                time.sleep(0.05)
        faults.append(fault)
        time.sleep(1.0)  # steady load between faults


# --- one run ----------------------------------------------------------------------------------


@dataclass
class Result:
    store: str
    server: str
    clients: int
    requests: int
    tally: Tally
    faults: list[Fault]
    seconds: float
    finished: float  # time.monotonic() when the run ended

    @property
    def kinds(self) -> Counter[str]:
        return Counter(o.kind for o in self.tally.outcomes)

    @property
    def untyped(self) -> int:
        return sum(1 for o in self.tally.outcomes if o.status not in TYPED)

    def latency(self, q: float) -> float:
        times = sorted(o.end - o.start for o in self.tally.outcomes)
        if not times:
            return 0.0
        return times[min(len(times) - 1, int(q * len(times)))]

    def errors_during(self, fault: Fault) -> tuple[Counter[str], float, float]:
        """The non-200 answers from the fault's start until the next fault (or the run's end):
        their kinds, the slowest of them (s), and how long after the fault's end the last
        one came (s; 0 when none came after it)."""
        later = [f.start for f in self.faults if f.start > fault.start]
        until = min(later, default=self.finished)
        bad = [o for o in self.tally.outcomes if fault.start <= o.end <= until and o.status != 200]
        slowest = max((o.end - o.start for o in bad), default=0.0)
        last = max((o.end - fault.end for o in bad), default=0.0)
        return Counter(o.kind for o in bad), slowest, max(0.0, last)


def run(
    target: Target,
    *,
    clients: int,
    requests: int,
    burst: int,
    burst_clients: int,
    faults: list[str],
) -> Result:
    """One load run against a server of kind ``target.server`` on ``target.url``."""
    tally = Tally()
    server = AppServer(target.server, target.url, lease=LEASE, wait=LOCK_WAIT)
    target.base = server.base
    tag = uuid.uuid4().hex[:6]
    crowd = [
        Client(server.base, tally, f"c{i}-{tag}", burst if i < burst_clients else 0)
        for i in range(clients)
    ]
    keep_going = threading.Event()
    done: list[Fault] = []
    began = time.monotonic()
    deadline = began + RUN_LIMIT
    try:
        threads = [
            threading.Thread(target=c.run, args=(requests, keep_going, deadline)) for c in crowd
        ]
        if faults:
            keep_going.set()
        for t in threads:
            t.start()
        if faults:
            try:
                run_faults(faults, target, tally, done)
            finally:
                keep_going.clear()
        for t in threads:
            t.join(RUN_LIMIT + RECOVERY_LIMIT)
    finally:
        keep_going.clear()
        server.stop()
        for c in crowd:
            c.close()
    ended = time.monotonic()
    return Result(target.store, target.server, clients, requests, tally, done, ended - began, ended)


# --- stores -----------------------------------------------------------------------------------


@contextmanager
def store_target(store: str, server: str) -> Iterator[Target]:
    """A Target on ``store``: a managed name (a server of our own) or a store URL."""
    if "://" in store:
        yield Target(store.split(":", 1)[0], server, store)
        return
    if store == "sqlite":
        with tempfile.TemporaryDirectory() as tmp:
            yield Target(store, server, f"sqlite:///{tmp}/sessions.db")
        return
    own: Any
    if store in ("redis", "redis-noaof"):
        own = OwnRedis(aof=store == "redis")
    elif store == "postgresql":
        own = OwnPostgres()
    elif store == "mysql":
        own = OwnMariaDB()
    elif store == "sentinel":
        own = OwnSentinel()
    else:
        raise SystemExit(f"unknown store {store!r}: a URL or one of {', '.join(FAULTS)}")
    try:
        yield Target(store, server, own.url, own)
    finally:
        own.stop()


# --- the report -------------------------------------------------------------------------------


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f}"


def _kinds(counts: Counter[str]) -> str:
    return ", ".join(f"{k}: {n}" for k, n in sorted(counts.items())) or "none"


def report(results: list[Result]) -> str:
    lines = [
        "| store | server | requests | acked | acked lost | incr lost | incr dup | leaks "
        "| resets | 503 busy | 503 store | 409 | 500 | transport | p50 ms | p99 ms | max ms |",
        "|" + "---|" * 17,
    ]
    for r in results:
        k, t = r.kinds, r.tally
        transport = sum(n for kind, n in k.items() if kind.startswith("transport"))
        other = sum(n for kind, n in k.items() if kind[:3] not in ("200", "503", "409", "500"))
        cells = [
            r.store, r.server, len(t.outcomes), t.acknowledged, t.lost_acknowledged,
            t.lost_increments, t.duplicated, t.leaks, t.resets, k["503 busy"], k["503 store"],
            k["409"], k["500"] + other - transport, transport,
            _ms(r.latency(0.5)), _ms(r.latency(0.99)), _ms(r.latency(1.0)),
        ]  # fmt: skip
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    if not any(r.faults for r in results):
        return "\n".join(lines)
    lines += [
        "",
        "| store | server | fault | what | errors (fault start to next fault) "
        "| slowest error ms | recovery s | last error s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        for f in r.faults:
            errors, slowest, last = r.errors_during(f)
            rec = "not recovered" if f.recovered is None else f"{f.recovered:.2f}"
            cells = [r.store, r.server, f.name, f.note, _kinds(errors), _ms(slowest), rec]
            cells.append(f"{last:.2f}")
            lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    return "\n".join(lines)


def problems(r: Result) -> list[str]:
    """What must never happen: a leak, an untyped answer, acknowledged data lost where the
    store keeps its data, an increment lost or duplicated, a fault never recovered from."""
    out = []
    t = r.tally
    where = f"{r.store}/{r.server}"
    if t.leaks:
        out.append(f"{where}: {t.leaks} cross-session leaks")
    if r.untyped:
        out.append(f"{where}: {r.untyped} answers not 200/409/503")
    if r.store not in MAY_LOSE and (t.lost_acknowledged or t.resets):
        out.append(f"{where}: {t.lost_acknowledged} acknowledged writes lost, {t.resets} resets")
    if r.store not in MAY_LOSE and (t.lost_increments or t.duplicated):
        out.append(f"{where}: {t.lost_increments} increments lost, {t.duplicated} duplicated")
    if t.gave_up:
        out.append(f"{where}: {t.gave_up} clients gave up waiting for the store")
    out += [f"{where}: {f.name} not recovered" for f in r.faults if f.recovered is None]
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.load", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--store",
        nargs="+",
        default=list(FAULTS),
        help=f"store URLs, or servers of our own: {', '.join(FAULTS)}",
    )
    parser.add_argument("--server", nargs="+", default=["asgi", "wsgi"], choices=["asgi", "wsgi"])
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--requests", type=int, default=100, help="per client, at least")
    parser.add_argument("--burst", type=int, default=4, help="concurrent requests per burst")
    parser.add_argument("--burst-clients", type=int, default=None, help="default: clients // 4")
    parser.add_argument(
        "--faults",
        nargs="+",
        default=None,
        help=f"default: every one that applies; 'none', or of {', '.join(INJECT)}",
    )
    args = parser.parse_args(argv)  # fmt: skip
    burst_clients = args.burst_clients if args.burst_clients is not None else args.clients // 4
    results: list[Result] = []
    for store in args.store:
        applicable = list(FAULTS.get(store, ()))
        if args.faults is not None:
            applicable = [f for f in applicable if f in args.faults]
        for server in args.server:
            with store_target(store, server) as target:
                print(f"{store} / {server}: faults {applicable or 'none'}", file=sys.stderr)
                result = run(
                    target,
                    clients=args.clients,
                    requests=args.requests,
                    burst=args.burst,
                    burst_clients=burst_clients,
                    faults=applicable,
                )
                print(f"  {result.seconds:.1f} s", file=sys.stderr)
                results.append(result)
    print(report(results))
    found = [p for r in results for p in problems(r)]
    for p in found:
        print(f"PROBLEM: {p}", file=sys.stderr)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())


__all__ = ["Result", "Target", "main", "problems", "report", "run", "store_target"]
