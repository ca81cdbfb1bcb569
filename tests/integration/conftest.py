"""Integration test harness: a real redis-server and the real jobwire binary on free ports.

Every wait polls a condition with a deadline (never a bare sleep standing in for a condition).
Each test gets its own temp dir, redis-server and daemon, so tests are independent and can run
side by side. The daemon's stderr goes to a file, shown when a test fails; at teardown the daemon
is stopped with SIGTERM and must exit 0 with no sanitizer report.

Environment: JOBWIRE_BIN (default build/jobwire), REDIS_SERVER (default redis-server).
"""

import asyncio
import base64
import functools
import http.client
import json
import os
import re
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import deque

import pytest
import redis
import websockets

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
WAIT = 10.0  # upper bound of every single wait
SANITIZER_MARKS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:",
                   "WARNING: ThreadSanitizer", "SUMMARY: UndefinedBehaviorSanitizer")
# Variables the daemon reads; scrubbed so the caller's environment cannot change a test.
SCRUB_ENV = ("REDIS_URL", "REDIS_HOST", "REDIS_PORT", "REDIS_USERNAME", "REDIS_PASSWORD")


def jobwire_bin():
    path = os.environ.get("JOBWIRE_BIN", os.path.join(REPO, "build", "jobwire"))
    return os.path.abspath(path)


def daemon_env():
    env = {k: v for k, v in os.environ.items()
           if k not in SCRUB_ENV and not k.startswith("JOBWIRE_")}
    env.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=1")
    env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1:halt_on_error=1")
    return env


_used_ports = set()
_open_clients = []  # WsClients of the running async test, closed when it ends


def free_port():
    """A port the kernel reports free on 127.0.0.1, never handed out twice in this process."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in _used_ports:
            _used_ports.add(port)
            return port
    raise RuntimeError("no free port")


def wait_for(cond, timeout=WAIT, interval=0.02, what="condition"):
    """Polls cond() until it returns a truthy value, which is returned; fails after timeout."""
    deadline = time.monotonic() + timeout
    last_exc = None
    while True:
        try:
            value = cond()
            if value:
                return value
        except Exception as exc:  # noqa: BLE001 - kept for the failure message
            last_exc = exc
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:.1f}s waiting for {what}"
                                 + (f" (last error: {last_exc!r})" if last_exc else ""))
        time.sleep(interval)


def tail(path, lines=60):
    try:
        with open(path, "r", errors="replace") as f:
            return "".join(f.readlines()[-lines:])
    except OSError:
        return "(no log)"


# ---------------------------------------------------------------------------------------------
# redis-server


def terminate(proc):
    """SIGTERM, then SIGKILL if the process is still there after WAIT; None or exited is fine."""
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=WAIT)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=WAIT)


class RedisServer:
    def __init__(self, workdir, port=None, password=None):
        self.dir = os.path.join(str(workdir), "redis")
        os.makedirs(self.dir, exist_ok=True)
        self.port = port or free_port()
        self.password = password
        self.proc = None
        self.log = os.path.join(self.dir, "redis.log")

    def start(self):
        exe = os.environ.get("REDIS_SERVER", "redis-server")
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [exe, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                 "--appendonly", "no", "--dir", self.dir, "--daemonize", "no"]
                + (["--requirepass", self.password] if self.password else []),
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
        wait_for(self.ping, what=f"redis-server PING on port {self.port}")
        return self

    def ping(self):
        if self.proc.poll() is not None:
            raise AssertionError(f"redis-server exited {self.proc.returncode}:\n{tail(self.log)}")
        return self.client().ping()

    def client(self):
        return redis.Redis(host="127.0.0.1", port=self.port, password=self.password,
                           socket_timeout=5, socket_connect_timeout=5)

    def kill9(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=WAIT)

    def stop(self):
        terminate(self.proc)


# ---------------------------------------------------------------------------------------------
# HTTP and /metrics


def http_get(port, path, timeout=5):
    """(status, body bytes, headers); 4xx/5xx are returned, not raised."""
    url = f"http://127.0.0.1:{port}{path}"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read(), r.headers
    except urllib.error.HTTPError as e:
        return e.code, e.read(), e.headers


_METRIC_LINE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{.*\})?\s+(\S+)(\s+-?\d+)?\s*$")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse_metrics(text):
    """{(name, frozenset(labels.items())): value} from Prometheus text format."""
    out = {}
    for line in text.splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        m = _METRIC_LINE.match(line)
        assert m, f"malformed /metrics line: {line!r}"
        labels = frozenset(_LABEL.findall(m.group(2) or ""))
        out[(m.group(1), labels)] = float(m.group(3))
    return out


# ---------------------------------------------------------------------------------------------
# WebSocket client


class WsClient:
    """One protocol client. Events that arrive while waiting for a reply are kept in order."""

    def __init__(self, ws, welcome, name, diag=None):
        self.ws = ws
        self.diag = diag  # returns extra text for timeout messages
        self.welcome = welcome
        self.name = name
        self.events = deque()
        self.snapshots = deque()
        self.statuses = deque()  # {"type":"status","live":...} notices, in order
        self.last_seq = 0
        self._ids = 0

    async def recv_json(self, timeout=WAIT):
        try:
            raw = await asyncio.wait_for(self.ws.recv(), timeout)
        except asyncio.TimeoutError:
            extra = ""
            if self.diag is not None:
                try:
                    extra = "\n" + self.diag()
                except Exception as exc:  # noqa: BLE001
                    extra = f"\n(diagnostics failed: {exc!r})"
            raise AssertionError(f"{self.name}: nothing received within {timeout:.1f}s"
                                 f"{extra}") from None
        assert isinstance(raw, str), f"{self.name}: server sent a binary frame: {raw!r}"
        msg = json.loads(raw)
        assert isinstance(msg, dict) and isinstance(msg.get("type"), str), \
            f"{self.name}: server message without type: {raw}"
        if msg["type"] in ("event", "snapshot"):
            seq = msg.get("seq")
            assert seq == self.last_seq + 1, \
                f"{self.name}: {msg['type']} seq {seq!r} after {self.last_seq}: {msg}"
            self.last_seq = seq
        return msg

    async def send(self, obj):
        await self.ws.send(obj if isinstance(obj, (str, bytes)) else json.dumps(obj))

    def next_id(self):
        self._ids += 1
        return f"r{self._ids}"

    # Where messages of these types are set aside while waiting for something else.
    _KEPT = {"event": "events", "snapshot": "snapshots", "status": "statuses"}

    async def _next_kept(self, keep, timeout):
        """The next message whose type is not in `keep`; messages of the kept types that come
        first are set aside (in events, snapshots, statuses) for expect_*()."""
        deadline = time.monotonic() + timeout
        while True:
            msg = await self.recv_json(max(0.01, deadline - time.monotonic()))
            if msg["type"] not in keep:
                return msg
            getattr(self, self._KEPT[msg["type"]]).append(msg)

    async def reply(self, rid=None, timeout=WAIT):
        """The next message that is not an event, snapshot or status; with rid, it must answer
        that request id."""
        msg = await self._next_kept(("event", "snapshot", "status"), timeout)
        if rid is not None:
            assert msg.get("id") == str(rid), \
                f"{self.name}: expected the reply to request {rid!r}, got {msg}"
        return msg

    async def request(self, msg, timeout=WAIT):
        msg = dict(msg)
        msg.setdefault("id", self.next_id())
        await self.send(msg)
        return await self.reply(msg["id"], timeout)

    async def subscribe(self, jobs=None, scope=None, kinds=None, expect="ack"):
        msg = {"type": "subscribe"}
        if jobs is not None:
            msg["jobs"] = jobs
        if scope is not None:
            msg["scope"] = scope
        if kinds is not None:
            msg["kinds"] = kinds
        r = await self.request(msg)
        assert r["type"] == expect, f"{self.name}: subscribe {msg} answered {r}"
        return r

    async def unsubscribe(self, jobs=None, scope=None):
        msg = {"type": "unsubscribe"}
        if jobs is not None:
            msg["jobs"] = jobs
        if scope is not None:
            msg["scope"] = scope
        r = await self.request(msg)
        assert r["type"] == "ack", f"{self.name}: unsubscribe {msg} answered {r}"
        return r

    async def ping(self):
        r = await self.request({"type": "ping"})
        assert r["type"] == "pong", f"{self.name}: ping answered {r}"
        return r

    async def expect_event(self, timeout=WAIT):
        """The next event; snapshots and statuses on the way are kept."""
        if self.events:
            return self.events.popleft()
        msg = await self._next_kept(("snapshot", "status"), timeout)
        assert msg["type"] == "event", f"{self.name}: expected an event, got {msg}"
        return msg

    async def expect_snapshot(self, timeout=WAIT):
        """The next snapshot; no event may come before it."""
        if self.snapshots:
            return self.snapshots.popleft()
        assert not self.events, f"{self.name}: event {self.events[0]} before the snapshot"
        msg = await self._next_kept(("status",), timeout)
        assert msg["type"] == "snapshot", f"{self.name}: expected a snapshot, got {msg}"
        return msg

    async def expect_status(self, live, timeout=WAIT):
        """The next pause/resume notice, which must say `live`."""
        deadline = time.monotonic() + timeout
        while not self.statuses:
            msg = await self._next_kept(("event", "snapshot"),
                                        max(0.01, deadline - time.monotonic()))
            (self.statuses if msg["type"] == "status" else self.events).append(msg)
        msg = self.statuses.popleft()
        assert msg["live"] is live, f"{self.name}: expected live={live}, got {msg}"
        return msg

    async def expect_no_event(self, duration):
        """Nothing at all arrives for `duration` seconds. Prefer expect_marker_first()."""
        assert not self.events, f"{self.name}: unexpected event {self.events[0]}"
        try:
            raw = await asyncio.wait_for(self.ws.recv(), duration)
        except asyncio.TimeoutError:
            return
        msg = json.loads(raw)
        raise AssertionError(f"{self.name}: expected nothing, got {msg}")

    async def expect_marker_first(self, publish_marker, marker_job, timeout=WAIT):
        """Publishes an event this client may see (marker_job) and asserts that it is the next
        event: anything published before it that the client must not see would arrive first."""
        publish_marker()
        ev = await self.expect_event(timeout)
        assert ev["jobId"] == marker_job, \
            f"{self.name}: received {ev} where only the marker event for {marker_job} was allowed"
        return ev

    async def expect_closed(self, timeout=WAIT):
        """Reads until the server closes; returns the close code."""
        deadline = time.monotonic() + timeout
        try:
            while True:
                await asyncio.wait_for(self.ws.recv(), max(0.01, deadline - time.monotonic()))
        except websockets.exceptions.ConnectionClosed:
            pass
        except asyncio.TimeoutError:
            raise AssertionError(f"{self.name}: connection still open after {timeout}s")
        await asyncio.wait_for(self.ws.wait_closed(), WAIT)
        return self.ws.close_code

    async def close(self):
        await self.ws.close()


def ws_url(port, user=None, admin=False, query=None):
    params = []
    if user is not None:
        params.append("user=" + urllib.request.quote(user, safe=""))
    if admin:
        params.append("admin=1")
    if query:
        params.append(query)
    return f"ws://127.0.0.1:{port}/ws" + ("?" + "&".join(params) if params else "")


async def ws_connect(url, **kw):
    return await asyncio.wait_for(
        websockets.connect(url, open_timeout=WAIT, ping_interval=None, close_timeout=2,
                           max_size=None, **kw), WAIT)


# ---------------------------------------------------------------------------------------------
# jobwire


def handshake_status(port, path):
    """The HTTP status a WebSocket upgrade request gets (http.client also reads HTTP/1.0)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=WAIT)
    try:
        conn.request("GET", path, headers={
            "Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "13",
            "Sec-WebSocket-Key": base64.b64encode(os.urandom(16)).decode()})
        return conn.getresponse().status
    finally:
        conn.close()


async def expect_refused(url, statuses):
    path = url.split(str(urllib.parse.urlsplit(url).port), 1)[1]
    status = handshake_status(urllib.parse.urlsplit(url).port, path)
    assert status in statuses, f"{url}: handshake answered HTTP {status}, expected {statuses}"
    # And a real WebSocket client does not get a connection either.
    with pytest.raises((websockets.exceptions.InvalidStatusCode,
                        websockets.exceptions.InvalidMessage)):
        ws = await ws_connect(url)
        await ws.close()


def write_config(path, settings):
    with open(path, "w") as f:
        f.write("# written by tests/integration/conftest.py\n")
        for k, v in settings.items():
            if isinstance(v, bool):
                v = "yes" if v else "no"
            f.write(f"{k} {v}\n")
    return path


class Jobwire:
    def __init__(self, workdir, redis_server, overrides=None):
        self.dir = str(workdir)
        self.redis = redis_server
        self.port = free_port()
        self.bin = jobwire_bin()
        self.log = os.path.join(self.dir, "jobwire.log")
        self.proc = None
        self.settings = {
            "listen_address": "127.0.0.1",
            "listen_port": self.port,
            "redis_host": "127.0.0.1",
            "redis_port": redis_server.port,
            "dev_auth": True,
            "web_root": os.path.join(REPO, "web"),
            "log_level": "debug",
        }
        self.settings.update(overrides or {})
        self.config = write_config(os.path.join(self.dir, "jobwire.conf"), self.settings)
        self._pub = None
        self.extra_env = {}

    def configure(self, **settings):
        """Adds settings and rewrites the config file; for a daemon not started yet
        (jwnostart), when a setting is only known at test time (a key file, a secret)."""
        self.settings.update(settings)
        write_config(self.config, self.settings)

    def start(self, wait_ready=True):
        assert os.access(self.bin, os.X_OK), f"no jobwire binary at {self.bin} (set JOBWIRE_BIN)"
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen([self.bin, "--config", self.config],
                                         stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=subprocess.STDOUT,
                                         env=dict(daemon_env(), **self.extra_env))
        self.wait_status("/healthz", 200)
        if wait_ready:
            self.wait_status("/readyz", 200)
        return self

    def check_alive(self):
        if self.proc.poll() is not None:
            raise AssertionError(f"jobwire exited with {self.proc.returncode}:\n{tail(self.log)}")

    def get(self, path):
        """GET on the port that serves health and metrics (admin_port when it is set)."""
        return http_get(self.settings.get("admin_port") or self.port, path)

    def wait_status(self, path, status, timeout=WAIT):
        def cond():
            self.check_alive()
            return self.get(path)[0] == status
        try:
            wait_for(cond, timeout, what=f"GET {path} == {status}")
        except AssertionError as e:
            raise AssertionError(f"{e}\n--- jobwire log ---\n{tail(self.log)}") from None

    def metrics(self):
        status, body, _ = self.get("/metrics")
        assert status == 200, f"/metrics answered {status}"
        return parse_metrics(body.decode())

    def metric(self, name, **labels):
        """The value of one series; 0 when the series is absent."""
        return self.metrics().get((name, frozenset(labels.items())), 0.0)

    def wait_metric(self, name, pred, what=None, **labels):
        return wait_for(lambda: pred(self.metric(name, **labels)),
                        what=what or f"{name}{labels} condition")

    def reset_publisher(self):
        """Drops the publishing connection (after a Redis restart)."""
        if self._pub is not None:
            self._pub.close()
            self._pub = None

    def publish(self, channel, payload):
        if self._pub is None:
            self._pub = self.redis.client()
        if isinstance(payload, (dict, list, int, float)):
            payload = json.dumps(payload)
        return self._pub.publish(channel, payload)

    async def client(self, user="alice", admin=False, name=None):
        ws = await ws_connect(ws_url(self.port, user, admin))
        c = WsClient(ws, None, name or user, diag=self.diagnostics)
        _open_clients.append(c)
        c.welcome = await c.recv_json()
        assert c.welcome.get("type") == "welcome", f"first message is not welcome: {c.welcome}"
        return c

    def diagnostics(self):
        """Event counters from /metrics, for timeout messages."""
        lines = []
        for (name, labels), v in sorted(self.metrics().items(), key=str):
            if name.startswith(("jobwire_events", "jobwire_deliver", "jobwire_inbox",
                                "jobwire_upstream", "jobwire_connections")):
                lab = ",".join(f'{k}="{x}"' for k, x in sorted(labels))
                lines.append(f"  {name}{{{lab}}} {v:g}")
        return "metrics now:\n" + "\n".join(lines)

    def read_log(self):
        with open(self.log, "r", errors="replace") as f:
            return f.read()

    def stop(self, sig=signal.SIGTERM):
        """Stops the daemon and asserts a clean exit; returns the exit code."""
        if self._pub is not None:
            self._pub.close()
            self._pub = None
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=WAIT)
            except subprocess.TimeoutExpired:
                self.proc.send_signal(signal.SIGKILL)
                self.proc.wait(timeout=WAIT)
                raise AssertionError(f"jobwire did not exit within {WAIT}s of signal {sig}:\n"
                                     f"{tail(self.log)}")
        rc = self.proc.returncode
        log = self.read_log()
        found = [m for m in SANITIZER_MARKS if m in log]
        assert not found, f"sanitizer report in jobwire log ({found}):\n{tail(self.log, 120)}"
        assert rc == 0, f"jobwire exited with {rc}, expected 0:\n{tail(self.log)}"
        return rc


# ---------------------------------------------------------------------------------------------
# fixtures


def pytest_configure(config):
    config.addinivalue_line("markers", "jwconfig(**settings): extra jobwire config for a test")
    config.addinivalue_line("markers", "jwnostart: create the jobwire fixture without starting it")


@pytest.hookimpl(tryfirst=True, hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)


@pytest.fixture
def redis_server(tmp_path):
    server = RedisServer(tmp_path).start()
    yield server
    server.stop()


@pytest.fixture
def jw(request, tmp_path, redis_server):
    marker = request.node.get_closest_marker("jwconfig")
    daemon = Jobwire(tmp_path, redis_server, marker.kwargs if marker else None)
    if request.node.get_closest_marker("jwnostart") is None:
        daemon.start()
    yield daemon
    try:
        daemon.stop()
    finally:
        rep = getattr(request.node, "rep_call", None)
        if rep is not None and rep.failed and os.path.exists(daemon.log):
            print(f"--- jobwire log ({daemon.log}) ---\n{tail(daemon.log, 80)}")


def async_test(fn):
    """Runs an async test body with asyncio.run and an overall bound; fixtures still inject."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        async def bounded():
            try:
                return await asyncio.wait_for(fn(*args, **kwargs), 60)
            finally:
                clients = list(_open_clients)
                _open_clients.clear()
                for c in clients:  # a clean close handshake, so nothing waits on a timeout
                    try:
                        await asyncio.wait_for(c.ws.close(), 5)
                    except Exception:  # noqa: BLE001 - the test's own result matters
                        pass
        return asyncio.run(bounded())
    return wrapper
