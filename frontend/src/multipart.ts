// Large files in parts (docs/api.md, "Uploading a large file in parts"):
// assetMultipartUploadStart -> part URLs, asked for in batches -> PUT each part's bytes
// (File.slice, a few at once, each retried with backoff), keeping its ETag ->
// assetMultipartUploadComplete with every part's ETag.
//
// A part that still fails after its retries pauses the upload: resume() asks what storage holds
// (assetMultipartUploadParts) and sends only what is missing. cancel() gives the upload up
// (assetMultipartUploadAbort): storage drops the parts and the asset is deleted.

import { gql, GraphQLRequestError, PayloadError } from "./api";
import { errorMessage } from "./dom";
import { MULTIPART_ABORT, MULTIPART_COMPLETE, MULTIPART_PART_URLS, MULTIPART_PARTS, MULTIPART_START } from "./ops";
import { putPart } from "./storage";
import type { Job, MultipartUploadInfo, UploadedPart, UploadPartTarget, UserError } from "./types";

const PARALLEL_PARTS = 4;
/** Part URLs asked for at once (the API gives at most 1,000 per call). */
const URL_BATCH = 50;
/** A URL that expires sooner than this is asked for again rather than used. */
const URL_MARGIN_MS = 30_000;
/** Tries per part before the upload pauses; waits 1 s, 2 s, 4 s (± a quarter) in between. */
const PART_ATTEMPTS = 4;
const RETRY_BASE_MS = 1_000;
/** Tries of the start call on a network failure (the idempotency key makes a repeat safe). */
const START_ATTEMPTS = 3;

export type Phase = "starting" | "uploading" | "checking" | "completing";

export interface PartsProgress {
  /** Bytes stored (whole parts) plus bytes of the parts in flight. */
  sent: number;
  total: number;
  partsDone: number;
  partCount: number;
}

export type Outcome =
  | { kind: "done"; job: Job }
  /** Stopped by `error`; resume() picks it up, cancel() gives it up. */
  | { kind: "paused"; error: unknown }
  /** Nothing to resume (it never started, or the asset is gone): upload the file again. */
  | { kind: "failed"; error: unknown }
  | { kind: "cancelled" };

export interface Listener {
  phase(phase: Phase): void;
  progress(progress: PartsProgress): void;
}

/** A part that failed every try; `code` is the last failure's code, if it had one. */
export class PartError extends Error {
  readonly code: string;

  constructor(
    readonly partNumber: number,
    partCount: number,
    attempts: number,
    cause: unknown,
  ) {
    super(`Part ${partNumber} of ${partCount} failed (${attempts} ${attempts === 1 ? "try" : "tries"}): ${errorMessage(cause)}`);
    const code = (cause as { code?: unknown } | null)?.code;
    this.code = typeof code === "string" ? code : "";
  }
}

interface StartPayload {
  assetMultipartUploadStart: { asset: { id: string } | null; upload: MultipartUploadInfo | null; errors: UserError[] };
}
interface PartUrlsPayload {
  assetMultipartUploadPartUrls: { parts: UploadPartTarget[] | null; errors: UserError[] };
}
interface PartsPayload {
  assetMultipartUploadParts: {
    upload: MultipartUploadInfo | null;
    parts: UploadedPart[] | null;
    missingPartNumbers: number[] | null;
    errors: UserError[];
  };
}
interface CompletePayload {
  assetMultipartUploadComplete: { job: Job | null; errors: UserError[] };
}
interface AbortPayload {
  assetMultipartUploadAbort: { deletedAssetId: string | null; errors: UserError[] };
}

export class MultipartUpload {
  private assetId: string | null = null;
  private partSize = 0;
  private partCount = 0;
  private urls: PartUrls | null = null;
  /** The ETag of each part storage holds, by number, and the bytes they add up to. */
  private readonly etags = new Map<number, string>();
  private storedBytes = 0;
  /** Bytes sent so far of each part in flight. */
  private readonly sending = new Map<number, number>();
  /** Parts completing refused (another size or ETag than planned): to send again. */
  private readonly resend = new Set<number>();
  private readonly cancelled = new AbortController();
  private running: Promise<Outcome> | null = null;

  constructor(
    private readonly file: File,
    private readonly collectionId: string,
    private readonly listener: Listener,
  ) {}

  start(): Promise<Outcome> {
    return this.run(() => this.begin());
  }

  /** After a pause: ask storage which parts it holds and send the others, then complete. */
  resume(): Promise<Outcome> {
    return this.run(() => this.continueFromStorage());
  }

  /** Stop sending and give the upload up; throws when the server refuses (with its code). */
  async cancel(): Promise<void> {
    this.cancelled.abort(new DOMException("The upload was cancelled.", "AbortError"));
    await this.running; // settles soon: the requests in flight are aborted, waits cut short
    if (!this.assetId) return; // it never started
    const data = await gql<AbortPayload>(MULTIPART_ABORT, { input: { assetId: this.assetId } });
    const { errors } = data.assetMultipartUploadAbort;
    if (errors.length) throw new PayloadError(errors);
  }

  private run(step: () => Promise<Outcome>): Promise<Outcome> {
    if (this.running) return this.running; // already on its way
    const running = step().catch((error: unknown): Outcome => {
      if (this.cancelled.signal.aborted) return { kind: "cancelled" };
      const gone = error instanceof PayloadError && error.errors.some((e) => e.code === "NOT_FOUND");
      return this.assetId && !gone ? { kind: "paused", error } : { kind: "failed", error };
    });
    this.running = running;
    void running.then(() => (this.running = null));
    return running;
  }

  private async begin(): Promise<Outcome> {
    this.listener.phase("starting");
    const input = {
      collectionId: this.collectionId,
      filename: this.file.name,
      contentType: this.file.type || "application/octet-stream",
      size: this.file.size,
      idempotencyKey: newKey(),
    };
    let data: StartPayload | undefined;
    for (let attempt = 1; !data; attempt++) {
      try {
        data = await gql<StartPayload>(MULTIPART_START, { input });
      } catch (error) {
        // No answer (or no JSON): the same key returns the same asset if it was made.
        const noAnswer = error instanceof GraphQLRequestError && error.codes.length === 0;
        if (!noAnswer || attempt >= START_ATTEMPTS) throw error;
        await sleep(backoff(attempt), this.cancelled.signal);
      }
    }
    const { asset, upload, errors } = data.assetMultipartUploadStart;
    if (errors.length || !asset || !upload) throw new PayloadError(errors);
    this.assetId = asset.id;
    this.plan(upload);
    this.urls = new PartUrls(asset.id);
    return this.sendAndComplete(range(1, this.partCount));
  }

  private async continueFromStorage(): Promise<Outcome> {
    const assetId = this.assetId;
    if (!assetId) throw new Error("This upload never started.");
    this.listener.phase("checking");
    const data = await gql<PartsPayload>(MULTIPART_PARTS, { input: { assetId } });
    const { upload, parts, missingPartNumbers, errors } = data.assetMultipartUploadParts;
    if (errors.some((e) => e.code === "INVALID_STATE")) {
      // No upload in progress any more: if our last completion went through (and only its
      // answer was lost), completing again returns its job; otherwise it says why not.
      this.listener.phase("completing");
      return { kind: "done", job: await this.complete() };
    }
    if (errors.length || !upload || !parts || !missingPartNumbers) throw new PayloadError(errors);
    this.plan(upload);
    const missing = new Set(missingPartNumbers);
    for (const part of parts) {
      const n = part.partNumber;
      if (this.resend.has(n) || Number(part.size) !== this.partBytes(n)) missing.add(n);
      else if (!this.etags.has(n)) this.markStored(n, part.etag); // ours, when we have it, is what we sent
    }
    for (const n of this.etags.keys()) if (missing.has(n)) this.dropStored(n);
    this.resend.clear();
    return this.sendAndComplete([...missing].sort((a, b) => a - b));
  }

  private async sendAndComplete(partNumbers: number[]): Promise<Outcome> {
    this.cancelled.signal.throwIfAborted();
    this.listener.phase("uploading");
    this.report();
    await this.sendParts(partNumbers);
    this.listener.phase("completing");
    return { kind: "done", job: await this.complete() };
  }

  /** Send the parts, a few at once; the first part that fails every try stops the others. */
  private async sendParts(partNumbers: number[]): Promise<void> {
    const urls = this.urls;
    if (!urls) throw new Error("This upload never started.");
    const queue = [...partNumbers];
    const failures: unknown[] = [];
    const halted = () => failures.length > 0 || this.cancelled.signal.aborted;
    const worker = async () => {
      for (let n = queue.shift(); n !== undefined && !halted(); n = queue.shift()) {
        try {
          await this.sendPart(urls, n, queue, halted);
        } catch (error) {
          failures.push(error);
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(PARALLEL_PARTS, queue.length) }, worker));
    this.cancelled.signal.throwIfAborted();
    if (failures.length) throw failures[0];
  }

  private async sendPart(urls: PartUrls, n: number, upcoming: readonly number[], halted: () => boolean): Promise<void> {
    const start = (n - 1) * this.partSize;
    const body = this.file.slice(start, start + this.partBytes(n));
    for (let attempt = 1; ; attempt++) {
      try {
        const target = await urls.get(n, upcoming);
        const etag = await putPart(target.url, body, (loaded) => this.inFlight(n, loaded), this.cancelled.signal);
        urls.forget(n);
        this.markStored(n, etag);
        return;
      } catch (error) {
        // The server's refusals (a payload's errors) do not get better by asking again.
        if (this.cancelled.signal.aborted || error instanceof PayloadError) throw error;
        urls.forget(n); // the URL may have expired: the next try asks for a new one
        if (attempt >= PART_ATTEMPTS || halted()) throw new PartError(n, this.partCount, attempt, error);
      } finally {
        this.sending.delete(n);
        this.report();
      }
      await sleep(backoff(attempt), this.cancelled.signal);
      if (halted()) return; // another part failed (or the upload was cancelled): sendParts throws
    }
  }

  private async complete(): Promise<Job> {
    // Every part with its ETag, so that Depot checks storage holds what we sent; should one
    // be unknown, storage's own list is used.
    const parts: { partNumber: number; etag: string }[] = [];
    for (let n = 1; n <= this.partCount; n++) {
      const etag = this.etags.get(n);
      if (etag) parts.push({ partNumber: n, etag });
    }
    const data = await gql<CompletePayload>(MULTIPART_COMPLETE, {
      input: { assetId: this.assetId, parts: parts.length === this.partCount ? parts : null },
    });
    const { job, errors } = data.assetMultipartUploadComplete;
    if (errors.length || !job) {
      // UPLOAD_SIZE_MISMATCH and UPLOAD_PART_MISMATCH name the part (path ["parts", "<n>"]):
      // resuming sends it again; UPLOAD_PARTS_MISSING is resolved by asking storage.
      for (const error of errors) {
        const n = error.path?.[0] === "parts" ? Number(error.path[1]) : NaN;
        if (Number.isInteger(n) && n >= 1 && n <= this.partCount) {
          this.resend.add(n);
          this.dropStored(n);
        }
      }
      this.report();
      throw new PayloadError(errors);
    }
    return job;
  }

  private plan(upload: MultipartUploadInfo): void {
    this.partSize = Number(upload.partSize);
    this.partCount = upload.partCount;
  }

  /** Every part has the part size, but the last, which has what is left. */
  private partBytes(n: number): number {
    return n < this.partCount ? this.partSize : this.file.size - this.partSize * (this.partCount - 1);
  }

  private markStored(n: number, etag: string): void {
    if (!this.etags.has(n)) this.storedBytes += this.partBytes(n);
    this.etags.set(n, etag);
  }

  private dropStored(n: number): void {
    if (this.etags.delete(n)) this.storedBytes -= this.partBytes(n);
  }

  private inFlight(n: number, loaded: number): void {
    this.sending.set(n, loaded);
    this.report();
  }

  private report(): void {
    let sent = this.storedBytes;
    for (const loaded of this.sending.values()) sent += loaded;
    this.listener.progress({
      sent: Math.min(sent, this.file.size),
      total: this.file.size,
      partsDone: this.etags.size,
      partCount: this.partCount,
    });
  }
}

/** Part URLs, asked for in batches just before they are needed, and again once expiring. */
class PartUrls {
  private readonly targets = new Map<number, UploadPartTarget>();
  private pending: Promise<void> | null = null;

  constructor(private readonly assetId: string) {}

  /** The URL of part `n`; when it is not at hand, asks for it and the next of `upcoming`. */
  async get(n: number, upcoming: readonly number[]): Promise<UploadPartTarget> {
    // Another part's batch, on its way, probably holds this one too.
    if (!this.fresh(n) && this.pending) await this.pending.catch(() => undefined);
    if (!this.fresh(n)) {
      const wanted = [n];
      for (const m of upcoming) {
        if (wanted.length >= URL_BATCH) break;
        if (!this.fresh(m)) wanted.push(m);
      }
      const request = this.fetch(wanted);
      this.pending = request;
      try {
        await request;
      } finally {
        if (this.pending === request) this.pending = null;
      }
    }
    const target = this.targets.get(n);
    if (!target) throw new Error(`The server gave no URL for part ${n}.`);
    return target;
  }

  forget(n: number): void {
    this.targets.delete(n);
  }

  private fresh(n: number): boolean {
    const target = this.targets.get(n);
    return !!target && Date.parse(target.expiresAt) - Date.now() > URL_MARGIN_MS;
  }

  private async fetch(partNumbers: number[]): Promise<void> {
    const data = await gql<PartUrlsPayload>(MULTIPART_PART_URLS, { input: { assetId: this.assetId, partNumbers } });
    const { parts, errors } = data.assetMultipartUploadPartUrls;
    if (errors.length || !parts) throw new PayloadError(errors);
    for (const part of parts) this.targets.set(part.partNumber, part);
  }
}

function range(first: number, last: number): number[] {
  return Array.from({ length: Math.max(0, last - first + 1) }, (_, i) => first + i);
}

/** 1 s, 2 s, 4 s, ... with jitter, so that parts failing together do not retry together. */
function backoff(attempt: number): number {
  return RETRY_BASE_MS * 2 ** (attempt - 1) * (0.75 + Math.random() / 2);
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) {
      reject(signal.reason);
      return;
    }
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal.reason);
    };
    const timer = setTimeout(() => {
      signal.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal.addEventListener("abort", onAbort, { once: true });
  });
}

/** A random idempotency key (crypto.randomUUID needs a secure context; this does not). */
function newKey(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return `dashboard-upload-${Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("")}`;
}
