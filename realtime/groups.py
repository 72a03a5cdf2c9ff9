"""Channel-layer group names. Subscribers join these; publishers send to them."""


def workspace_events(workspace_id: int) -> str:
    return f"depot.ws.{workspace_id}"


def job_updates(job_id: int) -> str:
    return f"depot.job.{job_id}"


# Message types: consumers' listen queues are keyed by them (strawberry's listen_to_channel).
EVENT_MESSAGE = "depot.event"
JOB_MESSAGE = "depot.job"
