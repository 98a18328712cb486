"""End-to-end fixtures: real hub processes against the SecantusDB that scripts/test started.

Each test gets its own hub on free ports and its own database, and the hub is always stopped.
"""
import base64
import http.client
import json
import os
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def bin_dir() -> Path:
    d = os.environ.get("ARGUS_BIN_DIR")
    if d:
        return Path(d)
    return ROOT / ".build" / "debug"


def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def store_uri(database: str) -> str:
    base = os.environ.get("MONGODB_URI")
    if not base:
        pytest.fail("MONGODB_URI is not set: run through scripts/test, which starts a store")
    # mongodb://host:port/?opts -> mongodb://host:port/DB?opts
    head, _, query = base.partition("?")
    head = head.rstrip("/")
    return f"{head}/{database}?{query}"


class Hub:
    """A running argus-hub process."""

    def __init__(self, tmp: Path, uri: str | None = None, extra_args=(), env=None, database=None):
        self.api_port = free_port()
        self.device_port = free_port()
        self.database = database or "e2e_" + uuid.uuid4().hex[:12]
        self.uri = uri or store_uri(self.database)
        self.token_file = tmp / f"token-{self.database}"
        self.log_path = tmp / f"hub-{self.database}.log"
        self.spool_dir = tmp / f"spool-{self.database}"
        self.args = [str(bin_dir() / "argus-hub"), "--api-port", str(self.api_port), "--device-port", str(self.device_port),
                     "--mongodb-uri", self.uri, "--token-file", str(self.token_file), "--log-level", "debug",
                     "--spool-dir", str(self.spool_dir), *extra_args]
        self.env = dict(os.environ, **(env or {}))
        self.proc = None
        self._token = None

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.device_port}/v1/stb"

    def start(self, wait_ready=True):
        """Starts (or restarts, on the same ports, database and spool) the hub."""
        self._token = None
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(self.args, stdout=self.log, stderr=subprocess.STDOUT, env=self.env)
        if wait_ready:
            self.wait_ready()
        return self

    def wait_ready(self, timeout=30.0):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"hub exited with {self.proc.returncode}:\n{self.log_text()}")
            # http.client closed in `finally`: a probe that times out must not leave its socket
            # open on the hub (it would count against --api-max-connections until GC).
            conn = http.client.HTTPConnection("127.0.0.1", self.api_port, timeout=1)
            try:
                conn.request("GET", "/healthz")
                if conn.getresponse().status == 200 and self.token_file.exists() and self.device_port_open():
                    return
            except (http.client.HTTPException, ConnectionError, OSError):
                pass
            finally:
                conn.close()
            time.sleep(0.1)
        raise AssertionError(f"hub not ready in {timeout}s:\n{self.log_text()}")

    def device_port_open(self) -> bool:
        try:
            socket.create_connection(("127.0.0.1", self.device_port), timeout=0.5).close()
            return True
        except OSError:
            return False

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-4000:]
        except OSError:
            return ""

    def stop(self, sig=signal.SIGTERM, timeout=15.0) -> int:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"hub did not stop within {timeout}s:\n{self.log_text()}")

    @property
    def token(self) -> str:
        if self._token is None:
            self._token = self.token_file.read_text().strip()
        return self._token

    def call(self, method, path, body=None, token=None, expect=None):
        """Calls the operator API; returns (status, json-or-text, headers)."""
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.api + path, data=data, method=method)
        if token is not False:
            req.add_header("Authorization", f"Bearer {token or self.token}")
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                status, raw, headers = r.status, r.read(), r.headers
        except urllib.error.HTTPError as e:
            status, raw, headers = e.code, e.read(), e.headers
        try:
            payload = json.loads(raw) if raw else None
        except ValueError:
            payload = raw.decode(errors="replace")
        if expect is not None:
            assert status == expect, f"{method} {path} -> {status} {payload}"
        return status, payload, headers

    def register(self, device_id, model="argus-sim-1", tags=None) -> str:
        _, body, _ = self.call("POST", "/api/v1/devices", {"id": device_id, "model": model, "tags": tags or []}, expect=201)
        return body["secret"]

    def device(self, device_id):
        return self.call("GET", f"/api/v1/devices/{device_id}", expect=200)[1]

    def wait_device(self, device_id, predicate, timeout=10.0):
        deadline = time.time() + timeout
        d = None
        while time.time() < deadline:
            d = self.device(device_id)
            if predicate(d):
                return d
            time.sleep(0.1)
        raise AssertionError(f"device {device_id} never matched; last: {d}")

    def spool_bytes(self) -> int:
        return sum(p.stat().st_size for p in self.spool_dir.glob("*")) if self.spool_dir.exists() else 0

    def drop_database(self):
        try:
            import pymongo
            base = os.environ["MONGODB_URI"]
            pymongo.MongoClient(base, serverSelectionTimeoutMS=2000).drop_database(self.database)
        except Exception:
            pass


def wait_for(pred, timeout=60, what="condition"):
    """Polls `pred` until it returns something truthy, and returns that."""
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        last = pred()
        if last:
            return last
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what} (last: {last})")


def basic(device_id: str, secret: str) -> dict:
    return {"Authorization": "Basic " + base64.b64encode(f"{device_id}:{secret}".encode()).decode()}


def hello(boot="boot-1", firmware="1.0.0", model="argus-sim-1", msg_id="h-1"):
    return json.dumps({"type": "hello", "id": msg_id, "seq": 1, "ts": int(time.time() * 1000),
                       "model": model, "firmware": firmware, "bootId": boot})


@pytest.fixture
def tmpdir_path():
    with tempfile.TemporaryDirectory(prefix="argus-e2e-") as d:
        yield Path(d)


@pytest.fixture
def make_hub(tmpdir_path):
    hubs = []

    def factory(**kw):
        h = Hub(tmpdir_path, **kw)
        hubs.append(h)
        return h

    yield factory
    for h in hubs:
        try:
            h.stop(signal.SIGKILL if h.proc and h.proc.poll() is None else signal.SIGTERM)
        except AssertionError:
            pass
        h.drop_database()


@pytest.fixture
def hub(make_hub):
    return make_hub(extra_args=["--heartbeat", "1"]).start()


@pytest.fixture
def private_store(tmpdir_path):
    """A SecantusDB of the test's own, which the test may stop, start or freeze."""
    from helpers import PrivateStore  # helpers imports this module: import it late
    s = PrivateStore(tmpdir_path).start()
    yield s
    try:
        s.stop()
    except subprocess.SubprocessError:
        pass
