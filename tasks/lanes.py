"""Broker queues: one per job lane, so a worker can serve some lanes and not others."""

from kombu import Queue

from domain.jobs.lanes import Lane


def queues() -> list[Queue]:
    return [Queue(lane.queue) for lane in Lane]
