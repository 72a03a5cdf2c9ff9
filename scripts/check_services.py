"""Check that the services the service suite and "services" mode need are answering.

    .venv/bin/python scripts/check_services.py [--rabbitmq] [--timeout SECONDS]

PostgreSQL comes from DATABASE_URL and Redis from REDIS_URL (defaults: the local servers).
RabbitMQ is only checked with --rabbitmq, since Redis can be the Celery broker too.
Prints one line per service; exits 1 if a required one is missing, with how to start it.
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import psycopg
import redis

DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
RABBITMQ_HOST, RABBITMQ_PORT = "127.0.0.1", 5672

START_POSTGRES = "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start"
START_REDIS = (
    'redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no'
)
START_RABBITMQ = "rabbitmq-server -detached"


@dataclass(frozen=True)
class Service:
    name: str
    target: str  # what we try to reach, shown to the user (no password)
    probe: Callable[[float], str]  # returns what it found, raises if the service is not there
    how_to_start: str
    address: tuple[str, int] | None  # host and port, to tell "not running" from "refused us"
    if_refused: str  # what to look at when it runs but refuses us


def redact(url: str) -> str:
    """The URL without its password, fit to print."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = f"{parts.username or ''}:***@{parts.hostname or ''}"
    if parts.port is not None:
        netloc += f":{parts.port}"
    return urlunsplit(parts._replace(netloc=netloc))


def address_of(url: str, default_port: int) -> tuple[str, int] | None:
    parts = urlsplit(url)
    if not parts.hostname or parts.hostname.startswith("/"):
        return None  # a unix socket: no TCP address to try
    return parts.hostname, parts.port or default_port


def reachable(address: tuple[str, int], timeout: float) -> bool:
    try:
        with socket.create_connection(address, timeout=timeout):
            return True
    except OSError:
        return False


def probe_postgres(url: str, timeout: float) -> str:
    with psycopg.connect(url, connect_timeout=max(1, round(timeout))) as conn:
        row = conn.execute("SHOW server_version").fetchone()
    return f"PostgreSQL {row[0] if row else '?'}"


def probe_redis(url: str, timeout: float) -> str:
    client = redis.Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout)
    try:
        info = client.info("server")
    finally:
        client.close()
    return f"Redis {info.get('redis_version', '?')}"


def probe_rabbitmq(timeout: float) -> str:
    # An open port is not enough (epmd or a stale proxy may hold it): send the AMQP 0-9-1 protocol
    # header and expect a method frame (type 1, Connection.Start) back.
    with socket.create_connection((RABBITMQ_HOST, RABBITMQ_PORT), timeout=timeout) as sock:
        sock.sendall(b"AMQP\x00\x00\x09\x01")
        first = sock.recv(1)
    if first != b"\x01":
        raise ConnectionError(f"port {RABBITMQ_PORT} is open but does not answer AMQP 0-9-1")
    return "AMQP 0-9-1 server"


def services(rabbitmq: bool) -> list[Service]:
    database_url = os.environ.get("DATABASE_URL") or DEFAULT_DATABASE_URL
    redis_url = os.environ.get("REDIS_URL") or DEFAULT_REDIS_URL
    found = [
        Service(
            "PostgreSQL",
            f"DATABASE_URL={redact(database_url)}",
            lambda timeout: probe_postgres(database_url, timeout),
            START_POSTGRES,
            address_of(database_url, 5432),
            "check DATABASE_URL (user, password, database name)",
        ),
        Service(
            "Redis",
            f"REDIS_URL={redact(redis_url)}",
            lambda timeout: probe_redis(redis_url, timeout),
            START_REDIS,
            address_of(redis_url, 6379),
            "check REDIS_URL (password, database number)",
        ),
    ]
    if rabbitmq:
        address = (RABBITMQ_HOST, RABBITMQ_PORT)
        target = f"{RABBITMQ_HOST}:{RABBITMQ_PORT}"
        hint = "something else holds the port; stop it, then start RabbitMQ"
        found.append(Service("RabbitMQ", target, probe_rabbitmq, START_RABBITMQ, address, hint))
    return found


def check(service: Service, timeout: float) -> bool:
    try:
        found = service.probe(timeout)
    except Exception as exc:  # any failure means "not usable"; report it rather than crash
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if service.address is not None and reachable(service.address, timeout):
            # Something listens, so starting it again would not help: the settings are wrong.
            print(f"FAILED   {service.name:<10} {service.target}: answers, but {reason}")
            print(f"         {service.if_refused}")
        else:
            print(f"MISSING  {service.name:<10} {service.target}: {reason}")
            print(f"         start it with: {service.how_to_start}")
        return False
    print(f"ok       {service.name:<10} {service.target}: {found}")
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rabbitmq", action="store_true", help="also require RabbitMQ")
    parser.add_argument("--timeout", type=float, default=3.0, help="seconds per service")
    args = parser.parse_args(argv)
    results = [check(service, args.timeout) for service in services(args.rabbitmq)]
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
