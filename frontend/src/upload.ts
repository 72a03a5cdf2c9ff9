// Uploads. A small file: assetUploadStart -> POST the presigned form (fields in order, then
// `file`) straight to storage -> assetUploadComplete, which queues the processing job. A file
// above the multipart threshold goes in parts (multipart.ts): its row shows the bytes sent,
// offers Cancel, and Resume after a part failed for good.

import { gql, GraphQLRequestError, PayloadError } from "./api";
import { errorMessage, formatBytes, h, replaceChildren } from "./dom";
import { MultipartUpload, type Outcome, type PartsProgress, type Phase } from "./multipart";
import { UPLOAD_COMPLETE, UPLOAD_START } from "./ops";
import { uploadSettings } from "./settings";
import { postForm } from "./storage";
import type { Collection, Job, UploadTarget, UserError } from "./types";
import { panel, progressBar, showErrors } from "./ui";

const PARALLEL_UPLOADS = 3;
const MAX_ROWS = 30;

interface StartPayload {
  assetUploadStart: { asset: { id: string } | null; upload: UploadTarget | null; errors: UserError[] };
}
interface CompletePayload {
  assetUploadComplete: { job: Job | null; errors: UserError[] };
}

type RowState = "pending" | "uploading" | "paused" | "cancelling" | "cancel-failed" | "cancelled" | "done" | "failed";

const FINISHED: ReadonlySet<string> = new Set<RowState>(["cancelled", "done", "failed"]);

/** Rows of uploads not finished: leaving the page now would lose them, so the browser asks. */
const unfinished = new Set<UploadRow>();
addEventListener("beforeunload", (event) => {
  if (unfinished.size) event.preventDefault();
});

export class UploadPanel {
  readonly el: HTMLElement;
  private readonly collectionSelect = h("select", { name: "collection", "aria-label": "Collection", required: true });
  private readonly fileInput = h("input", { type: "file", name: "files", multiple: true, required: true, "aria-label": "Files" });
  private readonly rows = h("ul", { class: "upload-list", "data-testid": "upload-list" });
  private readonly byJob = new Map<string, UploadRow[]>();

  constructor(
    canWrite: boolean,
    private readonly onJob: (job: Job) => void,
  ) {
    const button = h("button", { type: "submit", class: "primary" }, "Upload");
    const form = h(
      "form",
      { class: "stack", "data-testid": "upload-form" },
      h("label", null, "Collection", this.collectionSelect),
      h("label", null, "Files", this.fileInput),
      button,
    );
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      const files = Array.from(this.fileInput.files ?? []);
      const collectionId = this.collectionSelect.value;
      if (!files.length || !collectionId) return;
      this.fileInput.value = ""; // not form.reset(): that would also reset the collection picked
      this.uploadAll(collectionId, files);
    });
    this.el = panel("Upload", "upload-panel", canWrite ? form : h("p", { class: "muted" }, "You can only view this workspace."), this.rows);
  }

  setCollections(collections: Collection[], selectedId: string | null): void {
    const keep = this.collectionSelect.value || selectedId;
    replaceChildren(
      this.collectionSelect,
      collections.map((c) => h("option", { value: c.id }, c.name)),
    );
    if (keep && collections.some((c) => c.id === keep)) this.collectionSelect.value = keep;
  }

  /** Show how the processing job of an upload is doing. */
  jobUpdated(job: Job): void {
    for (const row of this.byJob.get(job.id) ?? []) row.job(job);
  }

  /** Follow the collection picked in the list, so uploads go where the user is looking. */
  follow(collectionId: string | null): void {
    if (collectionId) this.collectionSelect.value = collectionId;
  }

  private uploadAll(collectionId: string, files: File[]): void {
    const queue = files.map((file) => {
      const inParts = file.size > uploadSettings.multipartThreshold;
      return { file, inParts, row: new UploadRow(file, inParts ? "multipart" : "form") };
    });
    for (const { row } of queue) this.rows.prepend(row.el);
    this.trim();
    const worker = async () => {
      for (let next = queue.shift(); next; next = queue.shift()) {
        if (next.inParts) await this.uploadInParts(collectionId, next.file, next.row);
        else await this.uploadOne(collectionId, next.file, next.row);
      }
    };
    for (let i = 0; i < Math.min(PARALLEL_UPLOADS, files.length); i++) void worker();
  }

  /** Drop the oldest finished rows beyond the limit; unfinished ones stay (Resume, Cancel). */
  private trim(): void {
    const rows = Array.from(this.rows.children) as HTMLElement[];
    for (let i = rows.length - 1; i >= 0 && this.rows.children.length > MAX_ROWS; i--) {
      if (FINISHED.has(rows[i]?.dataset.state ?? "")) rows[i]?.remove();
    }
  }

  private async uploadOne(collectionId: string, file: File, row: UploadRow): Promise<void> {
    try {
      row.status("Starting…", 0);
      const started = await gql<StartPayload>(UPLOAD_START, {
        input: { collectionId, filename: file.name, contentType: file.type || "application/octet-stream", size: file.size },
      });
      const { asset, upload, errors } = started.assetUploadStart;
      if (errors.length || !asset || !upload) throw new PayloadError(errors);

      row.status("Uploading…", 0);
      await postForm(upload, file, (loaded, total) => row.status("Uploading…", loaded / total));

      row.status("Finishing…", 1);
      const completed = await gql<CompletePayload>(UPLOAD_COMPLETE, { input: { assetId: asset.id } });
      const { job, errors: completeErrors } = completed.assetUploadComplete;
      if (completeErrors.length || !job) throw new PayloadError(completeErrors);
      this.finished(row, job);
    } catch (error) {
      row.failed(describe(error));
    }
  }

  private async uploadInParts(collectionId: string, file: File, row: UploadRow): Promise<void> {
    const upload = new MultipartUpload(file, collectionId, {
      phase: (phase) => row.phase(phase),
      progress: (progress) => row.partsProgress(progress),
    });
    row.setActions({
      resume: () => this.settle(row, upload.resume()),
      cancel: async () => {
        row.cancelling();
        try {
          await upload.cancel();
          row.cancelled();
        } catch (error) {
          row.cancelFailed(describe(error));
        }
      },
    });
    // A paused upload lets the queue go on; its Resume button continues it later.
    await this.settle(row, upload.start());
  }

  private async settle(row: UploadRow, outcome: Promise<Outcome>): Promise<void> {
    const result = await outcome;
    if (result.kind === "done") this.finished(row, result.job);
    else if (result.kind === "paused") row.paused(describe(result.error));
    else if (result.kind === "failed") row.failed(describe(result.error));
    // "cancelled": the Cancel button's handler shows how that went.
  }

  private finished(row: UploadRow, job: Job): void {
    row.done(job.id);
    // The same bytes uploaded twice share one job; completing again returns it too.
    this.byJob.set(job.id, [...(this.byJob.get(job.id) ?? []).filter((r) => r.el.isConnected), row]);
    this.onJob(job);
  }
}

/** An error as lines for showErrors(): the API's and storage's with their codes. */
function describe(error: unknown): (UserError | string)[] {
  if (error instanceof PayloadError && error.errors.length) return error.errors;
  if (error instanceof GraphQLRequestError && error.codes.some(Boolean)) {
    return [{ code: error.codes.filter(Boolean).join(", "), message: error.message, path: null }];
  }
  const code = (error as { code?: unknown } | null)?.code; // StorageError, PartError
  if (typeof code === "string" && code) return [{ code, message: errorMessage(error), path: null }];
  return [errorMessage(error) || "The upload failed."];
}

interface RowActions {
  resume(): Promise<void>;
  cancel(): Promise<void>;
}

class UploadRow {
  readonly el: HTMLLIElement;
  private readonly text = h("span", { class: "upload-status", "data-testid": "upload-status" });
  private readonly bar = h("div", { class: "upload-bar" });
  private readonly buttons = h("span", { class: "actions" });
  private readonly errors = h("div", { class: "form-errors", hidden: true, "data-testid": "upload-errors" });
  private actions: RowActions | null = null;
  private fraction = 0;
  private completing = false;

  constructor(file: File, mode: "form" | "multipart") {
    this.el = h(
      "li",
      { class: "upload", "data-testid": "upload-row", "data-state": "pending", "data-mode": mode },
      h("div", { class: "upload-head" }, h("span", { class: "upload-name", title: file.name }, file.name), h("span", { class: "muted" }, formatBytes(file.size))),
      this.bar,
      h("div", { class: "upload-foot" }, this.text, this.buttons),
      this.errors,
    );
    this.setState("pending");
    this.status("Waiting…", 0);
  }

  /** Cancel while sending, Resume and Cancel while paused (multipart uploads only). */
  setActions(actions: RowActions): void {
    this.actions = actions;
    this.renderButtons();
  }

  status(text: string, fraction: number): void {
    if (this.el.dataset.state === "pending") this.setState("uploading");
    this.text.textContent = text;
    this.fraction = fraction;
    replaceChildren(this.bar, progressBar(fraction, "running"));
  }

  phase(phase: Phase): void {
    showErrors(this.errors, []);
    this.setState("uploading");
    this.completing = phase === "completing";
    this.renderButtons();
    if (phase === "starting") this.status("Starting…", 0);
    else if (phase === "checking") this.status("Asking storage which parts it has…", this.fraction);
    else if (phase === "completing") this.status("Joining the parts…", 1);
  }

  partsProgress({ sent, total, partsDone, partCount }: PartsProgress): void {
    this.el.dataset.partCount = String(partCount);
    this.el.dataset.partsDone = String(partsDone);
    if (this.el.dataset.state !== "uploading" || this.completing) return;
    this.status(`Uploading… ${formatBytes(sent)} of ${formatBytes(total)} · ${partsDone}/${partCount} parts`, total ? sent / total : 0);
  }

  paused(errors: (UserError | string)[]): void {
    this.setState("paused");
    const parts = this.el.dataset.partCount ? ` · ${this.el.dataset.partsDone ?? 0}/${this.el.dataset.partCount} parts stored` : "";
    this.text.textContent = `Paused${parts}`;
    replaceChildren(this.bar, progressBar(this.fraction, "paused"));
    showErrors(this.errors, errors);
  }

  cancelling(): void {
    this.setState("cancelling");
    this.text.textContent = "Cancelling…";
  }

  cancelled(): void {
    this.setState("cancelled");
    this.text.textContent = "Cancelled";
    replaceChildren(this.bar, progressBar(this.fraction, "cancelled"));
    showErrors(this.errors, []);
  }

  /** The upload was stopped but the server did not drop it: Cancel can be tried again. */
  cancelFailed(errors: (UserError | string)[]): void {
    this.setState("cancel-failed");
    this.text.textContent = "Could not cancel";
    showErrors(this.errors, errors);
  }

  done(jobId: string): void {
    this.setState("done");
    this.el.dataset.jobId = jobId;
    this.text.textContent = "Uploaded, waiting to be processed";
    replaceChildren(this.bar, progressBar(1, "succeeded"));
  }

  job(job: Job): void {
    if (this.el.dataset.state !== "done") return;
    const text: Record<Job["state"], string> = {
      QUEUED: "Uploaded, waiting to be processed",
      RUNNING: `Processing${job.progress.stage ? ` (${job.progress.stage})` : ""}…`,
      SUCCEEDED: "Uploaded and processed",
      FAILED: `Processing failed${job.error ? `: ${job.error.message}` : ""}`,
      CANCELLED: "Processing cancelled",
    };
    this.text.textContent = text[job.state];
    this.el.dataset.jobState = job.state;
  }

  failed(errors: (UserError | string)[]): void {
    this.setState("failed");
    this.text.textContent = "Failed";
    replaceChildren(this.bar, progressBar(1, "failed"));
    showErrors(this.errors, errors);
  }

  private setState(state: RowState): void {
    this.el.dataset.state = state;
    if (FINISHED.has(state)) unfinished.delete(this);
    else unfinished.add(this);
    this.renderButtons();
  }

  private renderButtons(): void {
    const state = this.el.dataset.state;
    const offered: (keyof RowActions)[] = [];
    if (this.actions && state === "paused") offered.push("resume", "cancel");
    else if (this.actions && state === "cancel-failed") offered.push("cancel");
    else if (this.actions && state === "uploading" && !this.completing) offered.push("cancel");
    replaceChildren(this.buttons, offered.map((action) => this.button(action)));
  }

  private button(action: keyof RowActions): HTMLButtonElement {
    const button = h("button", { type: "button", class: "small", "data-action": action }, action === "resume" ? "Resume" : "Cancel");
    button.addEventListener("click", () => {
      for (const other of this.buttons.querySelectorAll("button")) other.disabled = true;
      void this.actions?.[action]();
    });
    return button;
  }
}
