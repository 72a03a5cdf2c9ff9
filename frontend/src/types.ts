// The parts of schema.graphql (the API contract) that the dashboard reads.

export type JobState = "QUEUED" | "RUNNING" | "SUCCEEDED" | "FAILED" | "CANCELLED";
export type AssetState = "AWAITING_UPLOAD" | "UPLOADED" | "PROCESSING" | "READY" | "FAILED";

export const FINAL_JOB_STATES: ReadonlySet<string> = new Set(["SUCCEEDED", "FAILED", "CANCELLED"]);

export interface UserError {
  code: string;
  message: string;
  path: string[] | null;
}

export interface Workspace {
  id: string;
  name: string;
}

export interface Membership {
  role: string;
  workspace: Workspace;
}

export interface Viewer {
  username: string;
  memberships: Membership[];
}

export interface Connection<T> {
  totalCount: number | null;
  edges: { node: T }[];
}

export interface Collection {
  id: string;
  name: string;
  description: string;
  assets: { totalCount: number | null };
}

export interface Rendition {
  preset: string;
  url: string;
  width: number;
  height: number;
}

export interface Asset {
  id: string;
  title: string;
  state: AssetState;
  contentType: string;
  declaredContentType: string;
  size: number | string; // BigInt scalar
  metadata: Record<string, unknown> | null;
  createdAt: string;
  renditions: Rendition[];
  failure: { code: string; message: string } | null;
}

export interface JobProgress {
  done: number | string;
  total: number | string | null;
  stage: string;
}

export interface Job {
  id: string;
  kind: string;
  state: JobState;
  cancelRequested: boolean;
  attempts: number;
  createdAt: string;
  finishedAt: string | null;
  parameters: Record<string, unknown> | null;
  progress: JobProgress;
  error: { code: string; message: string } | null;
}

export interface DepotEvent {
  sequence: number | string; // BigInt scalar
  type: string;
  topic: string;
  payload: Record<string, unknown>;
  createdAt: string;
}

export interface UploadTarget {
  url: string;
  fields: Record<string, string>;
}

/** A multipart upload: every part has `partSize` bytes but the last, which has what is left. */
export interface MultipartUploadInfo {
  partSize: number | string; // BigInt scalar
  partCount: number;
  expiresAt: string;
}

/** Where to PUT one part (exactly `size` bytes) before `expiresAt`. */
export interface UploadPartTarget {
  partNumber: number;
  size: number | string; // BigInt scalar
  url: string;
  expiresAt: string;
}

/** A part the object store holds. */
export interface UploadedPart {
  partNumber: number;
  size: number | string; // BigInt scalar
  etag: string;
}

export function nodes<T>(connection: Connection<T>): T[] {
  return connection.edges.map((edge) => edge.node);
}
