// Uploads: assetUploadStart -> POST the presigned form (fields in order, then `file`) straight to
// storage -> assetUploadComplete, which queues the processing job.

import { gql } from "./api";
import { errorMessage, formatBytes, h, replaceChildren } from "./dom";
import { UPLOAD_COMPLETE, UPLOAD_START } from "./ops";
import type { Collection, Job, UploadTarget, UserError } from "./types";
import { panel, progressBar, showErrors } from "./ui";

const PARALLEL_UPLOADS = 3;

interface StartPayload {
  assetUploadStart: { asset: { id: string } | null; upload: UploadTarget | null; errors: UserError[] };
}
interface CompletePayload {
  assetUploadComplete: { job: Job | null; errors: UserError[] };
}

class PayloadError extends Error {
  constructor(readonly errors: UserError[]) {
    super(errors.map((e) => e.message).join("; "));
  }
}

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
    const queue = files.map((file) => ({ file, row: new UploadRow(file) }));
    for (const { row } of queue) this.rows.prepend(row.el);
    while (this.rows.children.length > 30) this.rows.lastElementChild?.remove();
    const worker = async () => {
      for (let next = queue.shift(); next; next = queue.shift()) {
        await this.uploadOne(collectionId, next.file, next.row);
      }
    };
    for (let i = 0; i < Math.min(PARALLEL_UPLOADS, files.length); i++) void worker();
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
      await postForm(upload, file, (fraction) => row.status("Uploading…", fraction));

      row.status("Finishing…", 1);
      const completed = await gql<CompletePayload>(UPLOAD_COMPLETE, { input: { assetId: asset.id } });
      const { job, errors: completeErrors } = completed.assetUploadComplete;
      if (completeErrors.length || !job) throw new PayloadError(completeErrors);

      row.done(job.id);
      // The same bytes uploaded twice share one job; completing again returns it too.
      this.byJob.set(job.id, [...(this.byJob.get(job.id) ?? []).filter((r) => r.el.isConnected), row]);
      this.onJob(job);
    } catch (error) {
      row.failed(error instanceof PayloadError && error.errors.length ? error.errors : [errorMessage(error) || "The upload failed."]);
    }
  }
}

class UploadRow {
  readonly el: HTMLLIElement;
  private readonly text = h("span", { class: "upload-status", "data-testid": "upload-status" });
  private readonly bar = h("div", { class: "upload-bar" });
  private readonly errors = h("div", { class: "form-errors", hidden: true });

  constructor(file: File) {
    this.el = h(
      "li",
      { class: "upload", "data-testid": "upload-row", "data-state": "pending" },
      h("div", { class: "upload-head" }, h("span", { class: "upload-name", title: file.name }, file.name), h("span", { class: "muted" }, formatBytes(file.size))),
      this.bar,
      this.text,
      this.errors,
    );
    this.status("Waiting…", 0);
  }

  status(text: string, fraction: number): void {
    this.text.textContent = text;
    replaceChildren(this.bar, progressBar(fraction, "running"));
  }

  done(jobId: string): void {
    this.el.dataset.state = "done";
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
    this.el.dataset.state = "failed";
    this.text.textContent = "Failed";
    replaceChildren(this.bar, progressBar(1, "failed"));
    showErrors(this.errors, errors);
  }
}

/** POST the presigned form. No credentials: the target may be another origin (S3). */
function postForm(target: UploadTarget, file: File, onProgress: (fraction: number) => void): Promise<void> {
  const form = new FormData();
  for (const [key, value] of Object.entries(target.fields)) form.append(key, String(value));
  form.append("file", file);
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", target.url);
    xhr.upload.addEventListener("progress", (e) => {
      if (e.lengthComputable && e.total > 0) onProgress(e.loaded / e.total);
    });
    xhr.addEventListener("load", () => {
      if (xhr.status >= 200 && xhr.status < 300) resolve();
      else reject(new Error(storageError(xhr.status, xhr.responseText)));
    });
    xhr.addEventListener("error", () => reject(new Error("The storage could not be reached (network or CORS).")));
    xhr.addEventListener("abort", () => reject(new Error("The upload was aborted.")));
    xhr.send(form);
  });
}

/** The message in a storage error: JSON from Depot's local storage, XML from S3. */
function storageError(status: number, body: string): string {
  let message = "";
  try {
    message = String((JSON.parse(body) as { message?: unknown }).message ?? "");
  } catch {
    message = /<Message>([^<]*)<\/Message>/.exec(body)?.[1] ?? "";
  }
  return `Storage refused the upload (HTTP ${status})${message ? `: ${message}` : "."}`;
}
