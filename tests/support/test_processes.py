"""Tests for the process and S3 test-support layer.

Run on their own (no database needed, but tests/conftest.py sets Django up):
    .venv/bin/python -m pytest tests/support -q
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis
from botocore.exceptions import ClientError

from .processes import (
    ManagedProcess,
    ProcessExitedError,
    SeaweedS3,
    delete_redis_keys,
    free_port,
    free_ports,
    wait_for,
    wait_for_http,
    wait_for_tcp,
)

PY = sys.executable
PROCESSES_PY = Path(__file__).with_name("processes.py")


# -- helpers -----------------------------------------------------------------------------------


def alive(pid: int) -> bool:
    """True while `pid` runs. A zombie counts as dead: an orphan is re-parented to PID 1, which
    may take its time reaping it, but it no longer runs or holds ports."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    state = stat.rsplit(")", 1)[1].split()[0]
    return state not in ("Z", "X")


def listening_ports(pid: int) -> set[tuple[str, int]]:
    """(ip, port) of every TCP socket `pid` listens on, from /proc (no `ss`/`lsof` needed)."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = fd.readlink()
        except OSError:
            continue
        match = re.fullmatch(r"socket:\[(\d+)\]", str(target))
        if match:
            inodes.add(match.group(1))
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            local, state, inode = fields[1], fields[3], fields[9]
            if state == "0A" and inode in inodes:  # 0A = LISTEN
                address, port = local.split(":")
                found.add((_ip(address), int(port, 16)))
    return found


def _ip(hex_address: str) -> str:
    if len(hex_address) == 8:  # IPv4, little-endian
        return socket.inet_ntoa(bytes.fromhex(hex_address)[::-1])
    return hex_address  # IPv6: only compared against IPv4 loopback, so raw is fine


def pids_in_log(process: ManagedProcess, count: int) -> list[int]:
    wait_for(
        lambda: len(re.findall(r"child (\d+)", process.log_tail(100))) >= count,
        5,
        what=f"{count} children to report their pids",
        process=process,
    )
    return [int(pid) for pid in re.findall(r"child (\d+)", process.log_tail(100))]


# -- ports and waiting -------------------------------------------------------------------------


def test_free_ports_are_distinct_and_bindable() -> None:
    ports = free_ports(20)
    assert len(set(ports)) == 20
    port = free_port()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))


def test_wait_for_timeout_names_what_and_last_error() -> None:
    def never() -> bool:
        raise ConnectionRefusedError("nobody home")

    with pytest.raises(TimeoutError, match=r"the moon.*nobody home"):
        wait_for(never, 0.2, what="the moon", retry_on=(ConnectionRefusedError,))


def test_wait_for_does_not_swallow_unexpected_errors() -> None:
    def broken() -> bool:
        raise KeyError("bug")

    with pytest.raises(KeyError):
        wait_for(broken, 1, retry_on=(OSError,))


def test_wait_for_tcp_and_http_against_a_real_server(tmp_path: Path) -> None:
    port = free_port()
    argv = [PY, "-m", "http.server", str(port), "--bind", "127.0.0.1"]
    with ManagedProcess(argv, log_dir=tmp_path, cwd=tmp_path) as server:
        wait_for_tcp("127.0.0.1", port, 10, process=server)
        assert wait_for_http(f"http://127.0.0.1:{port}/", 10, process=server) == 200
        with pytest.raises(TimeoutError, match=r"HTTP 200 from .*/missing.*HTTP 404"):
            wait_for_http(f"http://127.0.0.1:{port}/missing", 0.3, process=server)
    assert not alive(server.pid)


# -- ManagedProcess ----------------------------------------------------------------------------


def test_process_that_dies_early_reports_its_log_tail(tmp_path: Path) -> None:
    script = "import sys; print('starting'); print('cannot open config: boom'); sys.exit(3)"
    with (
        ManagedProcess([PY, "-c", script], log_dir=tmp_path, name="doomed") as proc,
        pytest.raises(ProcessExitedError) as info,
    ):
        wait_for_http(f"http://127.0.0.1:{free_port()}/", 10, process=proc)
    message = str(info.value)
    assert "doomed" in message
    assert "exited with code 3" in message
    assert "cannot open config: boom" in message
    assert str(proc.log_path) in message


def test_timeout_while_process_runs_includes_its_log_tail(tmp_path: Path) -> None:
    script = "import time; print('still warming up', flush=True); time.sleep(60)"
    with ManagedProcess([PY, "-c", script], log_dir=tmp_path) as proc:
        wait_for(lambda: "warming" in proc.log_tail(), 5, what="first output")
        with pytest.raises(TimeoutError, match=r"(?s)TCP 127\.0\.0\.1:\d+.*still warming up"):
            wait_for_tcp("127.0.0.1", free_port(), 0.3, process=proc)


def test_stop_terminates_process_and_its_children(tmp_path: Path) -> None:
    script = 'sleep 300 & echo "child $!"; sleep 300 & echo "child $!"; wait'
    with ManagedProcess(["sh", "-c", script], log_dir=tmp_path) as proc:
        children = pids_in_log(proc, 2)
        assert all(alive(pid) for pid in children)
        assert proc.stop() == -signal.SIGTERM
    assert not alive(proc.pid)
    assert not any(alive(pid) for pid in children)


def test_stop_escalates_to_sigkill(tmp_path: Path) -> None:
    # An ignored SIGTERM is inherited across exec, so the child ignores it too.
    script = 'trap "" TERM; sleep 300 & echo "child $!"; wait'
    proc = ManagedProcess(["sh", "-c", script], log_dir=tmp_path).start()
    try:
        [child] = pids_in_log(proc, 1)
        assert proc.stop(timeout=0.5) == -signal.SIGKILL
        assert not alive(child)
    finally:
        proc.stop()


def test_stop_kills_children_the_leader_left_behind(tmp_path: Path) -> None:
    with ManagedProcess(["sh", "-c", 'sleep 300 & echo "child $!"'], log_dir=tmp_path) as proc:
        [child] = pids_in_log(proc, 1)
        proc.wait(5)  # the leader is gone, its child is not
        assert alive(child)
    assert not alive(child)


def test_context_manager_stops_on_error_and_stop_is_idempotent(tmp_path: Path) -> None:
    proc = ManagedProcess(["sleep", "300"], log_dir=tmp_path)
    with pytest.raises(RuntimeError, match="test body failed"), proc:
        raise RuntimeError("test body failed")
    assert not proc.running
    assert proc.returncode == -signal.SIGTERM
    assert proc.stop() == -signal.SIGTERM


def test_kill_signals_the_group_and_log_tail_returns_last_lines(tmp_path: Path) -> None:
    script = "for i in $(seq 1 50); do echo line$i; done; echo err >&2; exec sleep 300"
    with ManagedProcess(["sh", "-c", script], log_dir=tmp_path, name="talker") as proc:
        wait_for(lambda: "err" in proc.log_tail(1), 5, what="output")
        assert proc.log_tail(3).splitlines() == ["line49", "line50", "err"]
        # Not SIGINT: a shell starts background jobs with SIGINT ignored, and children inherit it.
        proc.kill(signal.SIGUSR1)
        assert proc.wait(5) == -signal.SIGUSR1
    assert proc.log_path == tmp_path / "talker.log"


def test_logs_of_same_named_processes_do_not_clobber(tmp_path: Path) -> None:
    with (
        ManagedProcess(["echo", "one"], log_dir=tmp_path) as first,
        ManagedProcess(["echo", "two"], log_dir=tmp_path) as second,
    ):
        first.wait(5)
        second.wait(5)
    assert first.log_path != second.log_path
    assert first.log_tail() == "one"
    assert second.log_tail() == "two"


def test_processes_left_running_are_stopped_when_the_interpreter_exits(tmp_path: Path) -> None:
    script = f"""
import importlib.util
spec = importlib.util.spec_from_file_location("processes", {str(PROCESSES_PY)!r})
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
proc = module.ManagedProcess(["sleep", "300"], log_dir={str(tmp_path)!r}).start()
print(proc.pid)
"""  # and exits without stopping it
    result = subprocess.run([PY, "-c", script], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    assert not alive(int(result.stdout))


# -- SeaweedS3 ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def seaweed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedS3]:
    with SeaweedS3().start(tmp_path_factory.mktemp("seaweed")) as s3:
        yield s3


@pytest.fixture(scope="module")
def bucket(seaweed: SeaweedS3) -> str:
    return seaweed.create_bucket("depot-support-test")


def test_seaweed_listens_only_on_the_ports_it_was_given(seaweed: SeaweedS3) -> None:
    assert seaweed.process is not None
    listeners = listening_ports(seaweed.process.pid)
    assert {port for _, port in listeners} == set(seaweed.ports.values())
    assert {ip for ip, _ in listeners} == {"127.0.0.1"}
    assert seaweed.endpoint_url == f"http://127.0.0.1:{seaweed.ports['s3.port']}"


def test_two_instances_run_at_once(seaweed: SeaweedS3, tmp_path: Path) -> None:
    with SeaweedS3().start(tmp_path) as other:
        assert not set(other.ports.values()) & set(seaweed.ports.values())
        other.create_bucket("only-in-other")
        other.client().put_object(Bucket="only-in-other", Key="k", Body=b"other")
        names = {b["Name"] for b in seaweed.client().list_buckets()["Buckets"]}
        assert "only-in-other" not in names
        assert other.client().get_object(Bucket="only-in-other", Key="k")["Body"].read() == b"other"


def test_stop_ends_weed_frees_ports_and_removes_sockets(tmp_path: Path) -> None:
    s3 = SeaweedS3().start(tmp_path)
    assert s3.process is not None
    pid, ports = s3.process.pid, set(s3.ports.values())
    s3.stop()
    assert not alive(pid)
    leftovers = [path for port in ports for path in Path("/tmp").glob(f"seaweedfs-*-{port}.sock")]
    assert leftovers == []
    for port in ports:
        with socket.socket() as sock:
            # SO_REUSEADDR like any server (weed's included): its own connections may leave the
            # port in TIME_WAIT for a minute, which blocks a plain bind but not a new server.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(("127.0.0.1", port))
    s3.stop()  # idempotent


def test_weed_that_fails_to_start_reports_its_log(tmp_path: Path) -> None:
    fake = tmp_path / "weed"
    fake.write_text("#!/bin/sh\necho 'fatal: volume dir is read-only'\nexit 2\n")
    fake.chmod(0o755)
    with pytest.raises(ProcessExitedError, match="volume dir is read-only"):
        SeaweedS3(weed=str(fake)).start(tmp_path / "base")


def test_port_clash_at_startup_is_retried(tmp_path: Path) -> None:
    # Someone grabs a picked port before weed binds it: weed exits, start() picks again.
    class Clashing(SeaweedS3):
        calls = 0

        def _pick_ports(self) -> dict[str, int]:
            ports = super()._pick_ports()
            Clashing.calls += 1
            if Clashing.calls == 1:
                ports["filer.port"] = squatter.getsockname()[1]
            return ports

    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        with Clashing().start(tmp_path) as s3:
            assert Clashing.calls == 2
            assert s3.client().list_buckets()["Buckets"] == []


def test_object_round_trip(seaweed: SeaweedS3, bucket: str) -> None:
    client = seaweed.client()
    client.put_object(Bucket=bucket, Key="ws/a/1", Body=b"hello", ContentType="text/plain")
    head = client.head_object(Bucket=bucket, Key="ws/a/1")
    assert (head["ContentLength"], head["ContentType"]) == (5, "text/plain")
    assert client.get_object(Bucket=bucket, Key="ws/a/1")["Body"].read() == b"hello"

    url = client.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "ws/a/1"})
    assert httpx.get(url).content == b"hello"
    assert httpx.get(url.replace("X-Amz-Signature=", "X-Amz-Signature=0")).status_code == 403

    client.delete_object(Bucket=bucket, Key="ws/a/1")
    with pytest.raises(ClientError) as info:
        client.head_object(Bucket=bucket, Key="ws/a/1")
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404


def test_credentials_are_enforced(seaweed: SeaweedS3, bucket: str) -> None:
    # Without credentials `weed mini` is an open anonymous server that accepts any signature.
    seaweed.client().put_object(Bucket=bucket, Key="private", Body=b"x")
    assert httpx.get(f"{seaweed.endpoint_url}/{bucket}/private").status_code == 403
    impostor = SeaweedS3(secret_key="wrong")
    impostor.ports = seaweed.ports
    with pytest.raises(ClientError, match="SignatureDoesNotMatch"):
        impostor.client().list_buckets()


def test_create_bucket_twice_fails(seaweed: SeaweedS3) -> None:
    seaweed.create_bucket("depot-session-1234")
    with pytest.raises(ClientError, match="BucketAlreadyOwnedByYou"):
        seaweed.create_bucket("depot-session-1234")


# The presigned POST Depot uses for uploads: key, size range and content type pinned.
MAX_SIZE = 10


def presigned_post(
    seaweed: SeaweedS3,
    bucket: str,
    key: str,
    body: bytes,
    *,
    content_type: str = "image/png",
    key_field: str | None = None,
) -> httpx.Response:
    post = seaweed.client().generate_presigned_post(
        bucket,
        key,
        Fields={"Content-Type": "image/png", "success_action_status": "201"},
        Conditions=[
            ["content-length-range", 1, MAX_SIZE],
            {"Content-Type": "image/png"},
            {"success_action_status": "201"},
        ],
        ExpiresIn=60,
    )
    fields = {**post["fields"], "Content-Type": content_type}
    if key_field is not None:
        fields["key"] = key_field
    # Fields first, file last (S3 ignores fields after the file; httpx puts files last).
    return httpx.post(post["url"], data=fields, files={"file": ("upload.png", body, content_type)})


def stored(seaweed: SeaweedS3, bucket: str, key: str) -> bytes | None:
    try:
        return seaweed.client().get_object(Bucket=bucket, Key=key)["Body"].read()
    except ClientError:
        return None


def error_code(response: httpx.Response) -> str | None:
    return ET.fromstring(response.content).findtext("Code")  # noqa: S314 - our own test server


def test_presigned_post_round_trip(seaweed: SeaweedS3, bucket: str) -> None:
    response = presigned_post(seaweed, bucket, "ws/asset/uuid-1", b"\x89PNG....")
    assert response.status_code == 201
    assert ET.fromstring(response.content).findtext("Key") == "ws/asset/uuid-1"  # noqa: S314
    head = seaweed.client().head_object(Bucket=bucket, Key="ws/asset/uuid-1")
    assert (head["ContentLength"], head["ContentType"]) == (8, "image/png")


@pytest.mark.parametrize(
    ("size", "status", "code"),
    [
        (MAX_SIZE, 201, None),
        (1, 201, None),
        (MAX_SIZE + 1, 400, "EntityTooLarge"),
        (100_000, 400, "EntityTooLarge"),
        (0, 400, "EntityTooSmall"),
    ],
)
def test_presigned_post_enforces_content_length_range(
    seaweed: SeaweedS3, bucket: str, size: int, status: int, code: str | None
) -> None:
    key = f"ws/size/{size}"
    response = presigned_post(seaweed, bucket, key, b"x" * size)
    assert response.status_code == status
    if code is None:
        assert stored(seaweed, bucket, key) == b"x" * size
    else:
        assert error_code(response) == code
        assert stored(seaweed, bucket, key) is None


def test_presigned_post_enforces_content_type(seaweed: SeaweedS3, bucket: str) -> None:
    response = presigned_post(seaweed, bucket, "ws/type/1", b"<html>", content_type="text/html")
    assert response.status_code == 403
    assert error_code(response) == "AccessDenied"
    assert "Policy Condition failed" in response.text
    assert stored(seaweed, bucket, "ws/type/1") is None


def test_presigned_post_pins_the_key(seaweed: SeaweedS3, bucket: str) -> None:
    response = presigned_post(seaweed, bucket, "ws/key/1", b"abc", key_field="ws/key/other")
    assert response.status_code == 403
    assert error_code(response) == "AccessDenied"
    assert stored(seaweed, bucket, "ws/key/1") is None
    assert stored(seaweed, bucket, "ws/key/other") is None


# -- Redis keys of a run -------------------------------------------------------------------------


def test_a_runs_redis_keys_go_and_no_other() -> None:
    url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    prefix = f"depot-test-probe-{uuid.uuid4().hex[:8]}"
    client = redis.Redis.from_url(url)
    ours = [f"{prefix}:celery:_kombu.binding.x", f"{prefix}:cache:1:credentials:epoch"]
    others = [f"{prefix}x:look-alike", f"other-{prefix}:kept"]
    try:
        for key in ours + others:
            client.set(key, "1")
        assert delete_redis_keys(url, prefix) == len(ours)
        assert client.exists(*ours) == 0
        assert client.exists(*others) == len(others)
    finally:
        client.delete(*ours, *others)
        client.close()


# -- the suite's runner ------------------------------------------------------------------------

WAITING_TEST = """
import os, pathlib, time

def test_waits():
    markers = pathlib.Path(os.environ["RUNNER_MARKERS"])
    (markers / "started").write_text("")
    try:
        time.sleep(300)
    finally:
        (markers / "torn_down").write_text("")
"""


def _processes_naming(text: str) -> list[int]:
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            command = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if text in command and alive(int(proc.name)):
            found.append(int(proc.name))
    return found


def test_a_run_told_to_stop_stops_pytest_and_what_it_started(tmp_path: Path) -> None:
    """SIGTERM (`timeout`, a CI runner's cancel) ended scripts/run_tests.py at once: its
    SeaweedFS, in a session of its own, ran on, and so did pytest. Now pytest is interrupted as
    by Ctrl-C (its teardown runs), SeaweedFS stops, and the run's scratch directory goes."""
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    (tmp_path / "test_waits.py").write_text(WAITING_TEST)
    runner = Path(__file__).parents[2] / "scripts" / "run_tests.py"
    # As from a shell: not the database of the run this test is in (not created under that name).
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env |= {"TMPDIR": str(scratch), "RUNNER_MARKERS": str(tmp_path)}
    argv = [PY, str(runner), str(tmp_path / "test_waits.py"), "-p", "no:django", "-q"]
    argv += ["-p", "no:cacheprovider"]
    log = (tmp_path / "run.log").open("wb")
    run = subprocess.Popen(
        argv, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    try:
        try:
            wait_for(lambda: (tmp_path / "started").exists(), 120, what="the run's test to start")
        except TimeoutError:
            raise AssertionError((tmp_path / "run.log").read_text()[-3000:]) from None
        assert _processes_naming(str(scratch)), "SeaweedFS should run under the run's scratch"
        os.kill(run.pid, signal.SIGTERM)  # the runner alone, as `timeout` does
        assert run.wait(60) == 128 + signal.SIGTERM
        assert (tmp_path / "torn_down").exists()
        assert _processes_naming(str(scratch)) == []
        assert list(scratch.iterdir()) == []
    finally:
        if run.poll() is None:
            os.killpg(run.pid, signal.SIGKILL)
            run.wait()
        for pid in _processes_naming(str(scratch)):
            os.kill(pid, signal.SIGKILL)
