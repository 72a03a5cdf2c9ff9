// Settings the page reads once, at start. The query string may override them, which the
// browser test does (and which lets anyone try the multipart path with small files):
//
//   /?multipartThreshold=1048576    files above 1 MiB go in parts (0: every file)

/** Files larger than this many bytes are uploaded in parts; smaller ones with one POST. */
const MULTIPART_THRESHOLD = 64 * 1024 * 1024;

export interface UploadSettings {
  multipartThreshold: number;
}

function byteCount(params: URLSearchParams, name: string, fallback: number): number {
  const raw = params.get(name)?.trim() ?? "";
  return /^\d+$/.test(raw) && Number.isSafeInteger(Number(raw)) ? Number(raw) : fallback;
}

function read(search: string): UploadSettings {
  const params = new URLSearchParams(search);
  return { multipartThreshold: byteCount(params, "multipartThreshold", MULTIPART_THRESHOLD) };
}

export const uploadSettings: Readonly<UploadSettings> = Object.freeze(read(location.search));
