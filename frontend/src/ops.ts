// Every GraphQL document the dashboard sends (see schema.graphql).

const USER_ERROR = "errors { code message path }";

export const JOB_FIELDS = `
  id kind state cancelRequested attempts createdAt finishedAt parameters
  progress { done total stage }
  error { code message }
`;

export const ASSET_FIELDS = `
  id title state contentType declaredContentType size metadata createdAt
  renditions { preset url width height }
  failure { code message }
`;

export const VIEWER = `
  query Viewer {
    viewer { username memberships { role workspace { id name } } }
  }
`;

export const COLLECTIONS = `
  query Collections($workspaceId: ID!) {
    collections(workspaceId: $workspaceId, first: 100) {
      totalCount
      edges { node { id name description assets { totalCount } } }
    }
  }
`;

export const COLLECTION_CREATE = `
  mutation CollectionCreate($input: CollectionCreateInput!) {
    collectionCreate(input: $input) { collection { id name } ${USER_ERROR} }
  }
`;

export const ASSETS = `
  query Assets($collectionId: ID!) {
    assets(collectionId: $collectionId, first: 50) {
      totalCount
      edges { node { ${ASSET_FIELDS} } }
    }
  }
`;

export const UPLOAD_START = `
  mutation AssetUploadStart($input: AssetUploadStartInput!) {
    assetUploadStart(input: $input) {
      asset { id }
      upload { url fields expiresAt }
      ${USER_ERROR}
    }
  }
`;

export const UPLOAD_COMPLETE = `
  mutation AssetUploadComplete($input: AssetUploadCompleteInput!) {
    assetUploadComplete(input: $input) { job { ${JOB_FIELDS} } ${USER_ERROR} }
  }
`;

// Large files, in parts (see docs/api.md, "Uploading a large file in parts").
const MULTIPART_UPLOAD = "upload { partSize partCount expiresAt }";

export const MULTIPART_START = `
  mutation AssetMultipartUploadStart($input: AssetMultipartUploadStartInput!) {
    assetMultipartUploadStart(input: $input) { asset { id } ${MULTIPART_UPLOAD} ${USER_ERROR} }
  }
`;

export const MULTIPART_PART_URLS = `
  mutation AssetMultipartUploadPartUrls($input: AssetMultipartUploadPartUrlsInput!) {
    assetMultipartUploadPartUrls(input: $input) { parts { partNumber size url expiresAt } ${USER_ERROR} }
  }
`;

export const MULTIPART_PARTS = `
  mutation AssetMultipartUploadParts($input: AssetMultipartUploadPartsInput!) {
    assetMultipartUploadParts(input: $input) {
      ${MULTIPART_UPLOAD}
      parts { partNumber size etag }
      missingPartNumbers
      ${USER_ERROR}
    }
  }
`;

export const MULTIPART_COMPLETE = `
  mutation AssetMultipartUploadComplete($input: AssetMultipartUploadCompleteInput!) {
    assetMultipartUploadComplete(input: $input) { job { ${JOB_FIELDS} } ${USER_ERROR} }
  }
`;

export const MULTIPART_ABORT = `
  mutation AssetMultipartUploadAbort($input: AssetMultipartUploadAbortInput!) {
    assetMultipartUploadAbort(input: $input) { deletedAssetId ${USER_ERROR} }
  }
`;

export const JOBS = `
  query Jobs($workspaceId: ID!) {
    jobs(workspaceId: $workspaceId, first: 20) { edges { node { ${JOB_FIELDS} } } }
  }
`;

export const JOB_CANCEL = `
  mutation JobCancel($id: ID!) { jobCancel(id: $id) { job { ${JOB_FIELDS} } ${USER_ERROR} } }
`;

export const JOB_RETRY = `
  mutation JobRetry($id: ID!) { jobRetry(id: $id) { job { ${JOB_FIELDS} } ${USER_ERROR} } }
`;

export const JOB_SUBSCRIPTION = `
  subscription Job($id: ID!) { job(id: $id) { ${JOB_FIELDS} } }
`;

export const EVENTS_SUBSCRIPTION = `
  subscription Events($workspaceId: ID!, $after: Int) {
    events(workspaceId: $workspaceId, after: $after) { sequence type topic payload createdAt }
  }
`;
