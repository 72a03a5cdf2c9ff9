// The live jobs panel: recent jobs from the query, new ones from the event stream, and each
// unfinished job followed through its own `job(id:)` subscription until a final state.

import type { Client } from "graphql-ws";
import { gql } from "./api";
import { errorMessage, formatTime, h, replaceChildren } from "./dom";
import { JOB_CANCEL, JOB_RETRY, JOB_SUBSCRIPTION, JOBS } from "./ops";
import { FINAL_JOB_STATES, nodes, type Connection, type DepotEvent, type Job, type JobState, type UserError } from "./types";
import { badge, panel, progressBar, showErrors, type Notify } from "./ui";

const MAX_ROWS = 50;
// The server allows 20 subscriptions per connection; the event stream needs one.
const MAX_WATCHED = 15;
const JOB_STATES: ReadonlySet<string> = new Set(["QUEUED", "RUNNING", "SUCCEEDED", "FAILED", "CANCELLED"]);

interface JobPayload {
  job: Job | null;
  errors: UserError[];
}

/** "Job:12" inside a relay global id, as "#12"; the id itself if it is not one. */
function shortId(id: string): string {
  try {
    const [type, pk] = atob(id).split(":");
    if (type && pk) return `#${pk}`;
  } catch {
    // not base64: fall through
  }
  return id;
}

export class JobsPanel {
  readonly el: HTMLElement;
  private readonly list = h("ul", { class: "job-list", "data-testid": "job-list" });
  private readonly rows = new Map<string, JobRow>();
  private readonly watching = new Map<string, () => void>();
  private readonly waiting: string[] = [];
  private disposed = false;

  constructor(
    private readonly client: Client,
    private readonly workspaceId: string,
    private readonly canWrite: boolean,
    private readonly notify: Notify,
    /** Told of every job state seen, e.g. so that the upload list can follow its jobs. */
    private readonly onUpdate: (job: Job) => void = () => {},
  ) {
    this.el = panel("Jobs", "jobs-panel", this.list);
    this.renderEmpty();
  }

  async load(): Promise<void> {
    let jobs: Job[];
    try {
      const data = await gql<{ jobs: Connection<Job> }>(JOBS, { workspaceId: this.workspaceId });
      jobs = nodes(data.jobs);
    } catch (error) {
      this.notify(`Could not load jobs: ${errorMessage(error)}`);
      return;
    }
    // Oldest first, so that each new row lands on top and the newest ends up first.
    for (const job of jobs.reverse()) this.track(job);
  }

  /** Show a job and, while it is unfinished, follow it live. */
  track(job: Job): void {
    this.upsert(job);
    if (!FINAL_JOB_STATES.has(job.state)) this.watch(job.id);
  }

  /** Durable job events: make new jobs appear and keep states right for jobs not watched. */
  onEvent(event: DepotEvent): void {
    const jobId = event.payload.jobId;
    if (typeof jobId !== "string") return;
    const state = event.payload.state;
    const row = this.rows.get(jobId);
    if (typeof state === "string" && JOB_STATES.has(state)) {
      if (!row) {
        const kind = typeof event.payload.kind === "string" ? event.payload.kind : event.topic;
        this.upsert(placeholder(jobId, kind, state as JobState, event.createdAt));
      } else if (!this.watching.has(jobId)) {
        row.setState(state as JobState);
        this.onUpdate(row.job);
      }
      if (!FINAL_JOB_STATES.has(state)) this.watch(jobId);
    } else if (!row || event.type === "job.retried") {
      this.watch(jobId); // its first message fills the row in
    }
  }

  dispose(): void {
    this.disposed = true;
    for (const stop of this.watching.values()) stop();
    this.watching.clear();
    this.waiting.length = 0;
  }

  private upsert(job: Job): void {
    this.onUpdate(job);
    let row = this.rows.get(job.id);
    if (!row) {
      row = new JobRow(job, this.canWrite, (action) => this.act(job.id, action));
      this.rows.set(job.id, row);
      if (this.rows.size === 1) this.list.replaceChildren();
      this.list.prepend(row.el);
      this.trim();
    } else {
      row.update(job);
    }
  }

  private watch(jobId: string): void {
    if (this.disposed || this.watching.has(jobId) || this.waiting.includes(jobId)) return;
    if (this.watching.size >= MAX_WATCHED) {
      this.waiting.push(jobId); // its durable events keep its state right meanwhile
      return;
    }
    let finished = false;
    const finish = () => {
      if (finished) return;
      finished = true;
      this.watching.delete(jobId);
      const next = this.waiting.shift();
      if (next) this.watch(next);
    };
    const stop = this.client.subscribe<{ job: Job }>(
      { query: JOB_SUBSCRIPTION, variables: { id: jobId } },
      {
        next: (result) => {
          if (result.data?.job) this.upsert(result.data.job);
          if (result.errors?.length) this.rows.get(jobId)?.showErrors([errorMessage(result.errors)]);
        },
        error: (error) => {
          this.rows.get(jobId)?.showErrors([`Live updates stopped: ${errorMessage(error)}`]);
          finish();
        },
        complete: finish,
      },
    );
    if (!finished) this.watching.set(jobId, stop);
  }

  private async act(jobId: string, action: "cancel" | "retry"): Promise<void> {
    const row = this.rows.get(jobId);
    try {
      const data = await gql<{ jobCancel?: JobPayload; jobRetry?: JobPayload }>(action === "cancel" ? JOB_CANCEL : JOB_RETRY, { id: jobId });
      const payload = (action === "cancel" ? data.jobCancel : data.jobRetry) as JobPayload;
      if (payload.errors.length) row?.showErrors(payload.errors);
      if (payload.job) this.track(payload.job);
    } catch (error) {
      row?.showErrors([errorMessage(error)]);
    }
  }

  private trim(): void {
    // Rows are kept in insertion order: drop the oldest finished ones beyond the limit.
    for (const row of [...this.rows.values()]) {
      if (this.rows.size <= MAX_ROWS) break;
      if (!FINAL_JOB_STATES.has(row.state) || this.watching.has(row.id)) continue;
      row.el.remove();
      this.rows.delete(row.id);
    }
  }

  private renderEmpty(): void {
    replaceChildren(this.list, h("li", { class: "empty" }, "No jobs yet. Upload a file to start one."));
  }
}

function placeholder(id: string, kind: string, state: JobState, createdAt: string): Job {
  return {
    id, kind, state, createdAt,
    cancelRequested: false, attempts: 0, finishedAt: null, parameters: null, error: null,
    progress: { done: 0, total: null, stage: "" },
  };
}

class JobRow {
  readonly el: HTMLLIElement;
  readonly id: string;
  state: JobState;
  job: Job;
  private readonly body = h("div", { class: "job-body" });
  private readonly errors = h("div", { class: "form-errors", hidden: true });

  constructor(
    job: Job,
    private readonly canWrite: boolean,
    private readonly act: (action: "cancel" | "retry") => Promise<void>,
  ) {
    this.id = job.id;
    this.job = job;
    this.state = job.state;
    this.el = h("li", { class: "job", "data-testid": "job-row", "data-job-id": job.id }, this.body, this.errors);
    this.render();
  }

  update(job: Job): void {
    if (job.state !== this.state && !FINAL_JOB_STATES.has(job.state)) showErrors(this.errors, []);
    this.job = job;
    this.state = job.state;
    this.render();
  }

  setState(state: JobState): void {
    this.update({ ...this.job, state });
  }

  showErrors(errors: (UserError | string)[]): void {
    showErrors(this.errors, errors);
  }

  private render(): void {
    const { job } = this;
    this.el.dataset.state = job.state;
    const done = Number(job.progress.done);
    const total = job.progress.total === null ? null : Number(job.progress.total);
    let fraction: number | null = total ? done / total : null;
    if (job.state === "SUCCEEDED") fraction = 1;
    else if (job.state === "QUEUED") fraction = 0;
    else if (FINAL_JOB_STATES.has(job.state)) fraction = fraction ?? 0;

    const detail = [
      job.progress.stage,
      total ? `${done}/${total}` : done ? String(done) : "",
    ].filter(Boolean).join(" · ");

    const actions: HTMLButtonElement[] = [];
    if (this.canWrite && (job.state === "QUEUED" || job.state === "RUNNING")) {
      actions.push(this.button(job.cancelRequested ? "Cancelling…" : "Cancel", "cancel", job.cancelRequested));
    }
    if (this.canWrite && (job.state === "FAILED" || job.state === "CANCELLED")) {
      actions.push(this.button("Retry", "retry", false));
    }

    replaceChildren(
      this.body,
      h("div", { class: "job-head" }, h("span", { class: "job-kind" }, job.kind), badge(job.state)),
      progressBar(fraction, job.state),
      h(
        "div",
        { class: "job-foot" },
        h("span", { class: "muted" }, [shortId(job.id), formatTime(job.createdAt), detail].filter(Boolean).join(" · ")),
        h("span", { class: "actions" }, actions),
      ),
      job.error ? h("div", { class: "job-error" }, h("code", null, job.error.code), " ", job.error.message) : null,
    );
  }

  private button(label: string, action: "cancel" | "retry", disabled: boolean): HTMLButtonElement {
    const button = h("button", { type: "button", class: "small", disabled, "data-action": action }, label);
    button.addEventListener("click", () => {
      button.disabled = true;
      void this.act(action).finally(() => (button.disabled = false));
    });
    return button;
  }
}
