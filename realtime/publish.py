"""Publishing to the channel layer: a leaf module that domain services may call.

Delivery here is at-most-once (channels-redis drops on a full channel or after its expiry); the
durable path is the Event table, which subscribers read to fill any gap. So a failure to
publish is logged and swallowed: it must never fail, or hold up, the change that was already
committed.

Sends go through one publisher per process, fed by a FIFO queue in commit order, and drained by
a daemon thread: `transaction.on_commit` callbacks only enqueue, so an HTTP response never waits
for Redis, and the thread sends everything queued so far in one go. What goes in one go is
coalesced first (`coalesced`): a group's events become one message, and a job's nudge is sent
once, so the more is queued (a commit of several events, a burst of commits), the fewer messages
each receiving process pops. A Redis outage slows only that thread: commits go on, and past
`MAX_PENDING` queued messages the oldest are dropped (subscribers fill gaps from Postgres).

A job's own thread sends its events itself (`sent_from_this_thread`, used by the job runner):
a worker has nothing else to do with that time, and handing each transition's messages to the
publisher thread made them wait for the GIL while the job's thread went on with the next
statement or Celery's bookkeeping (bench/realtime README, session 10). It drains whatever is
queued first, under the same lock as the thread, so the process's order holds either way; if
Redis failed the last time, it queues instead, and the thread finds out when Redis is back.
"""

from __future__ import annotations

import asyncio
import atexit
import collections
import contextlib
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import redis
from channels.layers import get_channel_layer
from django.db import transaction
from redis.backoff import NoBackoff
from redis.retry import Retry

from realtime import groups

logger = logging.getLogger(__name__)

# Messages waiting for the publisher thread; past this the oldest are dropped (live path only).
MAX_PENDING = 10_000
# How long process exit waits for queued messages to go out.
EXIT_FLUSH_SECONDS = 2.0
# A send to Redis that takes longer than this failed (a job's thread may be the one waiting).
SEND_TIMEOUT_SECONDS = 2.0
# Events in one EVENTS_MESSAGE at most: a receiving process holds a message whole, and hands its
# events to each subscriber in one go.
MAX_EVENTS_PER_MESSAGE = 100

Send = tuple[str, dict[str, Any]]  # (group, message)


def event_message(
    *,
    workspace_id: int,
    sequence: int,
    type: str,
    payload: dict[str, Any],
    created_at: str,
    job_id: int | None = None,
) -> dict[str, Any]:
    return {
        "type": groups.EVENT_MESSAGE,
        "workspace_id": workspace_id,
        "sequence": sequence,
        "event_type": type,
        "payload": payload,
        "created_at": created_at,
        "job_id": job_id,
    }


_this_thread = threading.local()


@contextlib.contextmanager
def sent_from_this_thread() -> Iterator[None]:
    """Inside, this thread's publishes go out before `submit` returns, sent by the thread
    itself, when the layer is Redis and answered the last send; else they are queued."""
    previous = getattr(_this_thread, "sends", False)
    _this_thread.sends = True
    try:
        yield
    finally:
        _this_thread.sends = previous


class Publisher:
    """A FIFO of group sends, drained by one thread, or by a caller inside
    `sent_from_this_thread`; `submit` never waits for the layer otherwise.

    `layer` returns the channel layer to send with.
    """

    def __init__(
        self, layer: Callable[[], Any] = get_channel_layer, max_pending: int = MAX_PENDING
    ) -> None:
        self._layer_factory = layer
        self._max_pending = max_pending
        self._pending: collections.deque[Send] = collections.deque()
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._idle = threading.Condition(self._lock)
        # Held while a batch is taken and sent, by the thread or a caller: batches go out in
        # the order they were taken, so messages in the order they were submitted.
        self._sending = threading.Lock()
        self._busy = 0  # batches taken and not yet sent
        self._thread: threading.Thread | None = None
        self._stopping = False
        self._loop: asyncio.AbstractEventLoop | None = None  # the thread's, for other layers
        self._redis_batch: RedisBatchSend | None = None  # for _sender_layer, if it fits
        self._sender_layer: Any = None
        self._redis_answered = True  # the last Redis send worked (a caller may send itself)
        # Queued messages dropped; messages sent or failed as sent (coalesced: `coalesced`).
        self.dropped = 0
        self.failed = 0
        self.sent = 0

    def submit(self, sends: list[Send]) -> None:
        if not sends:
            return
        if getattr(_this_thread, "sends", False) and self._send_here(sends):
            return
        with self._lock:
            self._pending.extend(sends)
            overflow = len(self._pending) - self._max_pending
            if overflow > 0:
                for _ in range(overflow):
                    self._pending.popleft()
                self.dropped += overflow
                logger.warning(
                    "publisher backlog full; dropped %d live message(s), subscribers will "
                    "catch up from the database",
                    overflow,
                )
            if self._thread is None or not self._thread.is_alive():
                self._start()
            self._wake.notify()

    def _send_here(self, sends: list[Send]) -> bool:
        """Send what is queued, then `sends`, on the caller's thread. False if it should not."""
        layer = self._layer_factory()
        if not self._redis_answered or self._redis_sender(layer) is None:
            return False
        with self._sending:
            with self._lock:
                batch = [*self._pending, *sends]
                self._pending.clear()
                self._busy += 1
            try:
                self._send(layer, batch)
            finally:
                self._sent_one_batch()
        return True

    def _redis_sender(self, layer: Any) -> RedisBatchSend | None:
        """The batch sender for `layer`, or None if it does not fit (decided once per layer)."""
        with self._lock:
            if self._sender_layer is not layer:
                self._redis_batch = RedisBatchSend(layer) if RedisBatchSend.fits(layer) else None
                self._sender_layer = layer
            return self._redis_batch

    def _start(self) -> None:
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="depot-publisher", daemon=True)
        self._thread.start()

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until everything submitted so far was sent (or failed). False on timeout."""
        with self._lock:
            return self._idle.wait_for(lambda: not self._pending and not self._busy, timeout)

    def stop(self, timeout: float = 5.0) -> None:
        self.flush(timeout)
        with self._lock:
            self._stopping = True
            self._wake.notify()
            thread = self._thread
        if thread is not None:
            thread.join(timeout)

    def _wait_for_work(self) -> bool:
        with self._lock:
            while not self._pending and not self._stopping:
                self._wake.wait()
            return bool(self._pending)

    def _take(self) -> list[Send]:
        with self._lock:
            batch = list(self._pending)
            self._pending.clear()
            if batch:
                self._busy += 1
            return batch

    def _sent_one_batch(self) -> None:
        with self._lock:
            self._busy -= 1
            if not self._pending and not self._busy:
                self._idle.notify_all()

    def _run(self) -> None:
        try:
            while self._wait_for_work():
                with self._sending:
                    # Empty if a caller sent it meanwhile.
                    if batch := self._take():
                        try:
                            # Looked up per batch (a dictionary lookup): settings may name
                            # another layer.
                            self._send(self._layer_factory(), batch)
                        finally:
                            self._sent_one_batch()
        except Exception:  # pragma: no cover - the loop itself broke; next submit restarts it
            logger.exception("the publisher thread stopped")
        finally:
            with self._lock:
                self._idle.notify_all()
            if self._loop is not None:
                self._loop.close()
                self._loop = None

    def _send(self, layer: Any, batch: list[Send]) -> None:
        """Send one batch (with `_sending` held); failures are counted and logged."""
        if layer is None:
            return
        batch = coalesced(batch)
        sender = self._redis_sender(layer)
        if sender is not None:
            try:
                sender.send(batch)
            except Exception:
                self._redis_answered = False
                self.failed += len(batch)
                logger.warning(
                    "publish of %d message(s) failed; subscribers will catch up",
                    len(batch),
                    exc_info=True,
                )
            else:
                self._redis_answered = True
                self.sent += len(batch)
            return
        # Any other layer (the in-memory one of embedded mode) is async: only the publisher
        # thread sends to it, on its own event loop.
        if self._loop is None:
            self._loop = asyncio.new_event_loop()
        self._loop.run_until_complete(self._send_by_group(layer, batch))

    async def _send_by_group(self, layer: Any, batch: list[Send]) -> None:
        # Each group's messages in order (a subscriber must see a workspace's events as they
        # committed); different groups at once, so a job event's three groups cost one round
        # of sends, not three.
        by_group: dict[str, list[dict[str, Any]]] = {}
        for group, message in batch:
            by_group.setdefault(group, []).append(message)
        await asyncio.gather(
            *(self._send_group(layer, group, messages) for group, messages in by_group.items())
        )

    async def _send_group(self, layer: Any, group: str, messages: list[dict[str, Any]]) -> None:
        for message in messages:
            try:
                await layer.group_send(group, message)
                self.sent += 1
            except Exception:
                self.failed += 1
                logger.warning(
                    "publish to %s failed; subscribers will catch up", group, exc_info=True
                )


class RedisBatchSend:
    """A whole batch of group sends in one Redis round trip, for channels-redis's
    RedisChannelLayer on one Redis host (Depot's configuration).

    The layer's own group_send takes four round trips per group (expire the group, read its
    members, expire each channel's old messages, the Lua script that adds the message), and a
    job event goes to three groups. Here one script (EVALSHA) does what group_send does for
    every message of the batch, in batch order: expire and read the message's group, then add
    the message to each member's channel with the layer's capacity and expiry. channels-redis
    keeps one sorted set per process for that process's channels and names the channels a
    message is for inside it (`__asgi_channel__`); the script adds that entry to the message
    the layer serialised here (msgpack, behind the layer's random prefix), so the layer's
    receive reads what group_send would have written. Each message gets a strictly increasing
    score, since a sorted set orders equal scores by the bytes. Anything else (other layers,
    several hosts, Sentinel, per-channel capacities, encryption, another serialisation) keeps
    the layer's group_send.

    It talks to Redis with a blocking client of its own (the layer's host options, a short
    timeout, no idle health check): a send is one call that any thread can make, without an
    event loop, and a plain client costs less per call than the asyncio one.
    """

    # KEYS: the group key of each message, in batch order. ARGV: the score below which group
    # members and channel messages are expired (two), the channels' expiry, their capacity, the
    # layer's key prefix and random prefix length; then per message its serialised bytes and
    # its score. Channel keys are derived here from the members, so this needs one Redis (not
    # a cluster), which `fits` checks.
    SCRIPT = """
        local group_expired, channel_expired = ARGV[1], ARGV[2]
        local expiry, capacity = ARGV[3], tonumber(ARGV[4])
        local prefix, random_length = ARGV[5], tonumber(ARGV[6])
        local channel_entry = cmsgpack.pack('__asgi_channel__')
        local members_of = {}
        local over_capacity = 0
        for i = 1, #KEYS do
            local members = members_of[KEYS[i]]
            if members == nil then
                redis.call('ZREMRANGEBYSCORE', KEYS[i], 0, group_expired)
                members = redis.call('ZRANGE', KEYS[i], 0, -1)
                members_of[KEYS[i]] = members
            end
            local message, score = ARGV[5 + 2 * i], ARGV[6 + 2 * i]
            -- One sorted set per process: "specific.<process>!<local>" all go to the
            -- process's key, whose message lists them.
            local keys, channels_of = {}, {}
            for _, member in ipairs(members) do
                local bang = string.find(member, '!', 1, true)
                local key = prefix .. (bang and string.sub(member, 1, bang) or member)
                if channels_of[key] == nil then
                    channels_of[key] = {}
                    table.insert(keys, key)
                end
                table.insert(channels_of[key], member)
            end
            if #keys > 0 then
                local random = string.sub(message, 1, random_length)
                local first = string.byte(message, random_length + 1)
                local count, entries
                if first >= 0x80 and first <= 0x8f then
                    count = first - 0x80
                    entries = string.sub(message, random_length + 2)
                elseif first == 0xde then
                    count = string.byte(message, random_length + 2) * 256
                        + string.byte(message, random_length + 3)
                    entries = string.sub(message, random_length + 4)
                else
                    return redis.error_reply('a message is not a msgpack map of 65535 entries')
                end
                count = count + 1
                local header
                if count <= 15 then
                    header = string.char(0x80 + count)
                else
                    header = string.char(0xde, math.floor(count / 256), count % 256)
                end
                for _, key in ipairs(keys) do
                    redis.call('ZREMRANGEBYSCORE', key, 0, channel_expired)
                    if redis.call('ZCOUNT', key, '-inf', '+inf') < capacity then
                        redis.call('ZADD', key, score, random .. header .. entries
                            .. channel_entry .. cmsgpack.pack(channels_of[key]))
                        redis.call('EXPIRE', key, expiry)
                    else
                        over_capacity = over_capacity + 1
                    end
                end
            end
        end
        return over_capacity
    """

    def __init__(self, layer: Any) -> None:
        self.layer = layer
        self.client = _blocking_client(layer.hosts[0])
        self._script = self.client.register_script(self.SCRIPT)
        self._last_score = 0.0

    @staticmethod
    def fits(layer: Any) -> bool:
        try:
            from channels_redis.core import RedisChannelLayer
            from channels_redis.serializers import MsgPackSerializer

            from realtime.layers import ProcessReaderRedisChannelLayer
        except ImportError:  # pragma: no cover - channels-redis is a dependency
            return False
        return (
            # Depot's layer sends as channels-redis does (it only receives otherwise).
            type(layer) in (RedisChannelLayer, ProcessReaderRedisChannelLayer)
            and layer.ring_size == 1
            and "sentinels" not in layer.hosts[0]
            and not layer.channel_capacity
            and type(layer._serializer) is MsgPackSerializer
            and layer._serializer.crypter is None
        )

    def _score(self) -> float:
        # Strictly increasing in this process (a channel's order is its scores' order).
        self._last_score = max(time.time(), self._last_score + 1e-5)
        return self._last_score

    def send(self, batch: list[Send]) -> None:
        layer = self.layer
        keys: list[bytes] = []
        arguments: list[Any] = []
        for group, message in batch:
            assert layer.require_valid_group_name(group), "Group name not valid"
            keys.append(layer._group_key(group))
            arguments += [layer.serialize(message), repr(self._score())]
        now = int(time.time())
        over = self._script(
            keys=keys,
            args=[
                now - layer.group_expiry,
                now - int(layer.expiry),
                layer.expiry,
                layer.capacity,
                layer.prefix,
                layer._serializer.random_prefix_length,
                *arguments,
            ],
        )
        if over:
            logger.info("%s message(s) over capacity in a publish batch", over)


def _blocking_client(host: dict[str, Any]) -> redis.Redis:
    """A redis-py client for the layer's host. Instead of the layer's idle health check (a PING
    before the first command after 2 s idle, i.e. before most publishes of a quiet server), a
    connection that broke is retried once at once: a send that Redis ran but whose reply was
    lost then arrives twice, and subscribers drop an event they already have by its sequence."""
    options = dict(host)
    address = options.pop("address", None)
    for option in ("health_check_interval", "max_connections", "retry", "retry_on_error"):
        options.pop(option, None)
    options |= {
        "socket_timeout": SEND_TIMEOUT_SECONDS,
        "socket_connect_timeout": SEND_TIMEOUT_SECONDS,
        "retry": Retry(NoBackoff(), 1, supported_errors=(redis.ConnectionError,)),
    }
    if address is not None:
        return redis.Redis.from_url(address, **options)
    return redis.Redis(**options)


_publisher: Publisher | None = None
_publisher_lock = threading.Lock()


def publisher() -> Publisher:
    global _publisher
    if _publisher is None:
        with _publisher_lock:
            if _publisher is None:
                _publisher = Publisher()
    return _publisher


def _forget_publisher_after_fork() -> None:
    # A forked child (a Celery prefork worker) has the parent's Publisher object but not its
    # thread, and its lock may have been held at the fork: it starts its own.
    global _publisher, _publisher_lock
    _publisher = None
    _publisher_lock = threading.Lock()


os.register_at_fork(after_in_child=_forget_publisher_after_fork)


@atexit.register
def _flush_at_exit() -> None:
    if _publisher is not None:
        _publisher.flush(EXIT_FLUSH_SECONDS)


def flush(timeout: float = 5.0) -> bool:
    """Wait until this process's publishes so far went out (tests, commands about to exit)."""
    return _publisher.flush(timeout) if _publisher is not None else True


def coalesced(batch: list[Send]) -> list[Send]:
    """The sends of one batch with each group's events as one message (EVENTS_MESSAGE, in order,
    at most MAX_EVENTS_PER_MESSAGE each; one event stays an EVENT_MESSAGE), where the group's
    first was, and each job nudge once, where it first was; anything else as it came.

    Everything in a batch was committed before it was queued, and a subscriber's order is
    that of one group's messages, which this keeps; how different groups' messages interleave
    within one send reaches no subscriber. A nudge only says "read the job again", so the
    batch's first does what its repeats would."""
    merged: list[tuple[str, dict[str, Any] | list[dict[str, Any]]]] = []
    events_of: dict[str, list[dict[str, Any]]] = {}
    nudged: set[tuple[str, Any]] = set()
    for group, message in batch:
        kind = message.get("type")
        if kind == groups.EVENT_MESSAGE or kind == groups.EVENTS_MESSAGE:
            events = events_of.get(group)
            if events is None:
                events = events_of[group] = []
                merged.append((group, events))
            events.extend(message["events"] if kind == groups.EVENTS_MESSAGE else [message])
        elif kind == groups.JOB_MESSAGE:
            if (group, message["job_id"]) not in nudged:
                nudged.add((group, message["job_id"]))
                merged.append((group, message))
        else:
            merged.append((group, message))
    sends: list[Send] = []
    for group, item in merged:
        if isinstance(item, dict):
            sends.append((group, item))
            continue
        for start in range(0, len(item), MAX_EVENTS_PER_MESSAGE):
            chunk = item[start : start + MAX_EVENTS_PER_MESSAGE]
            batched = {"type": groups.EVENTS_MESSAGE, "events": chunk}
            sends.append((group, chunk[0] if len(chunk) == 1 else batched))
    return sends


def _event_sends(messages: list[dict[str, Any]]) -> list[Send]:
    """A commit's events, each to its workspace's group, and a nudge to each job's groups (the
    batch they are sent in coalesces them: one message per workspace, one nudge per job)."""
    sends: list[Send] = [(groups.workspace_events(m["workspace_id"]), m) for m in messages]
    for message in messages:
        if message.get("job_id") is not None:
            sends += _job_sends(message["job_id"], message["workspace_id"], message["sequence"])
    return sends


def _job_sends(job_id: int, workspace_id: int, sequence: int | None = None) -> list[Send]:
    """A nudge to the job's subscribers and its workspace's job lists. `sequence`: the nudge
    comes with that job event (a subscriber that also hears the event may skip it)."""
    message: dict[str, Any] = {
        "type": groups.JOB_MESSAGE,
        "job_id": job_id,
        "workspace_id": workspace_id,
    }
    if sequence is not None:
        message["sequence"] = sequence
    return [(groups.job_updates(job_id), message), (groups.workspace_jobs(workspace_id), message)]


def publish_events(messages: list[dict[str, Any]]) -> None:
    """Queue the messages of one commit, in order (called from `transaction.on_commit`)."""
    publisher().submit(_event_sends(messages))


def publish_event(message: dict[str, Any]) -> None:
    publish_events([message])


def credentials_changed_after_commit(user_id: int) -> None:
    """Ask the user's open sockets to check their token and memberships again, now."""
    # The id lets the user's sockets in one process share one check per nudge.
    message = {"type": groups.CREDENTIALS_MESSAGE, "id": uuid.uuid4().hex}
    transaction.on_commit(lambda: publisher().submit([(groups.user_credentials(user_id), message)]))


def publish_job_progress(job_id: int, workspace_id: int) -> None:
    """A live-only nudge: subscribers of the job read its current progress."""
    publisher().submit(_job_sends(job_id, workspace_id))
