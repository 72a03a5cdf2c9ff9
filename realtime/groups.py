"""Channel-layer group names. Subscribers join these; publishers send to them."""


def workspace_events(workspace_id: int) -> str:
    return f"depot.ws.{workspace_id}"


def job_updates(job_id: int) -> str:
    return f"depot.job.{job_id}"


def workspace_jobs(workspace_id: int) -> str:
    """Every job change of a workspace, progress included (for job lists and stats)."""
    return f"depot.ws.{workspace_id}.jobs"


def user_credentials(user_id: int) -> str:
    return f"depot.user.{user_id}"


# Message types: consumers' listen queues are keyed by them (strawberry's listen_to_channel).
EVENT_MESSAGE = "depot.event"
# Several events of one workspace, in order, as one message (what a publisher sends at once:
# realtime.publish.coalesced): a receiving process pops it once (realtime.consumer hands each on
# as an EVENT_MESSAGE).
EVENTS_MESSAGE = "depot.events"
JOB_MESSAGE = "depot.job"
CREDENTIALS_MESSAGE = "depot.credentials"
