// Talking to storage straight from the browser: the presigned POST form of a small upload and
// the presigned PUT of one part of a large one. No credentials: the target may be another
// origin (S3), or Depot's own signed URLs in embedded mode.

import type { UploadTarget } from "./types";

/** No upload progress for this long: the connection is taken for dead and the request aborted. */
const STALL_MS = 60_000;

/** Bytes of the request body sent so far, of `total`. */
export type Progress = (loaded: number, total: number) => void;

/** Storage refused a request, or could not be reached (`status` 0). */
export class StorageError extends Error {
  constructor(
    message: string,
    readonly status = 0,
    readonly code = "",
  ) {
    super(message);
  }
}

/** POST the presigned form: its fields in order, then the file as `file`. */
export function postForm(target: UploadTarget, file: File, onProgress: Progress): Promise<void> {
  const form = new FormData();
  for (const [key, value] of Object.entries(target.fields)) form.append(key, String(value));
  form.append("file", file);
  return send("POST", target.url, form, onProgress).then(() => undefined);
}

/**
 * PUT one part's bytes to its presigned URL; resolves with the ETag of the answer, which
 * completing the upload needs (S3 must expose it to the page: CORS `ExposeHeaders: ETag`).
 */
export async function putPart(url: string, body: Blob, onProgress: Progress, signal?: AbortSignal): Promise<string> {
  const xhr = await send("PUT", url, body, onProgress, signal);
  const etag = xhr.getResponseHeader("ETag");
  if (!etag) {
    throw new StorageError("Storage stored the part but its ETag header is not readable (S3's CORS rules must expose ETag).", xhr.status);
  }
  return etag;
}

/** One request with upload progress (bytes sent), aborted by `signal` or when it stalls. */
function send(
  method: "POST" | "PUT",
  url: string,
  body: XMLHttpRequestBodyInit,
  onProgress: Progress,
  signal?: AbortSignal,
): Promise<XMLHttpRequest> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(abortReason(signal));
      return;
    }
    const xhr = new XMLHttpRequest();
    let stalled = false;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const watch = () => {
      clearTimeout(timer);
      timer = setTimeout(() => {
        stalled = true;
        xhr.abort();
      }, STALL_MS);
    };
    const onAbort = () => xhr.abort();
    const settle = (error: Error | null) => {
      clearTimeout(timer);
      signal?.removeEventListener("abort", onAbort);
      if (error) reject(error);
      else resolve(xhr);
    };
    xhr.open(method, url);
    xhr.upload.addEventListener("progress", (e) => {
      watch();
      if (e.lengthComputable && e.total > 0) onProgress(e.loaded, e.total);
    });
    xhr.addEventListener("load", () => {
      settle(xhr.status >= 200 && xhr.status < 300 ? null : storageError(xhr.status, xhr.responseText));
    });
    xhr.addEventListener("error", () => settle(new StorageError("The storage could not be reached (network or CORS).")));
    xhr.addEventListener("abort", () => {
      if (stalled) settle(new StorageError(`No progress for ${STALL_MS / 1000} s: the connection was dropped.`));
      else settle(signal?.aborted ? abortReason(signal) : new StorageError("The upload was aborted."));
    });
    signal?.addEventListener("abort", onAbort);
    watch();
    xhr.send(body);
  });
}

function abortReason(signal: AbortSignal): Error {
  return signal.reason instanceof Error ? signal.reason : new DOMException("The upload was cancelled.", "AbortError");
}

/** The code and message of a storage error: JSON from Depot's local storage, XML from S3. */
function storageError(status: number, body: string): StorageError {
  let code = "";
  let message = "";
  try {
    const parsed = JSON.parse(body) as { code?: unknown; message?: unknown };
    code = String(parsed.code ?? "");
    message = String(parsed.message ?? "");
  } catch {
    code = /<Code>([^<]*)<\/Code>/.exec(body)?.[1] ?? "";
    message = /<Message>([^<]*)<\/Message>/.exec(body)?.[1] ?? "";
  }
  return new StorageError(`Storage refused the upload (HTTP ${status})${message ? `: ${message}` : "."}`, status, code);
}
