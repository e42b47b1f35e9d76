/**
 * The one error catalogue. Domain code throws these; exactly one middleware
 * (in `http/app.ts`) turns them into `{"errors":[{code,message,detail}]}`.
 * Codes and statuses follow the OCI distribution-spec's error-code table wherever one of its
 * codes fits; distribution's extra codes (RANGE_INVALID, PAGINATION_NUMBER_INVALID,
 * TAG_INVALID, UNAVAILABLE, UNKNOWN) and Berth's own (NOT_FOUND, BAD_REQUEST) only where none
 * does (docs/architecture.md lists why for each).
 */
export class RegistryError extends Error {
  override readonly name = 'RegistryError';
  constructor(
    readonly code: string,
    readonly status: number,
    message: string,
    readonly detail?: unknown,
    /** headers are extra response headers (e.g. `Range` on a 416). */
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
}

const def =
  (code: string, status: number, message: string) =>
  (detail?: unknown, headers?: Record<string, string>, msg?: string): RegistryError =>
    new RegistryError(code, status, msg ?? message, detail, headers);

export const Errors = {
  blobUnknown: def('BLOB_UNKNOWN', 404, 'blob unknown to registry'),
  blobUploadInvalid: def('BLOB_UPLOAD_INVALID', 400, 'blob upload invalid'),
  blobUploadUnknown: def('BLOB_UPLOAD_UNKNOWN', 404, 'blob upload unknown to registry'),
  digestInvalid: def('DIGEST_INVALID', 400, 'provided digest did not match uploaded content'),
  manifestBlobUnknown: def(
    'MANIFEST_BLOB_UNKNOWN',
    400,
    'manifest references a blob unknown to the registry',
  ),
  manifestInvalid: def('MANIFEST_INVALID', 400, 'manifest invalid'),
  manifestTooLarge: def('SIZE_INVALID', 413, 'manifest body exceeds the size limit'),
  manifestUnknown: def('MANIFEST_UNKNOWN', 404, 'manifest unknown to registry'),
  nameInvalid: def('NAME_INVALID', 400, 'invalid repository name'),
  nameUnknown: def('NAME_UNKNOWN', 404, 'repository name not known to registry'),
  sizeInvalid: def('SIZE_INVALID', 400, 'provided length did not match content length'),
  tagInvalid: def('TAG_INVALID', 400, 'manifest tag did not match URI'),
  /** rangeInvalid: a blob GET's `Range` cannot be satisfied (no OCI code fits: distribution's). */
  rangeInvalid: def('RANGE_INVALID', 416, 'invalid content range'),
  /** chunkInvalid: an upload chunk out of order or with a malformed `Content-Range` (OCI spec). */
  chunkInvalid: def('BLOB_UPLOAD_INVALID', 416, 'blob upload chunk out of order'),
  paginationInvalid: def('PAGINATION_NUMBER_INVALID', 400, 'invalid number of results requested'),
  tooManyTags: def('TAG_INVALID', 414, 'too many tags in one request'),
  unsupported: def('UNSUPPORTED', 405, 'the operation is unsupported'),
  unauthorized: def('UNAUTHORIZED', 401, 'authentication required'),
  denied: def('DENIED', 403, 'requested access to the resource is denied'),
  tooManyRequests: def('TOOMANYREQUESTS', 429, 'too many requests'),
  notFound: def('NOT_FOUND', 404, 'no route for this path'),
  headersTooLarge: def('SIZE_INVALID', 431, 'request headers exceed the size limit'),
  methodUnsupported: def('UNSUPPORTED', 405, 'the request method is unsupported'),
  /** badRequest: a malformed HTTP request; neither the OCI nor distribution's table has a code. */
  badRequest: def('BAD_REQUEST', 400, 'malformed HTTP request'),
  requestTimeout: def('BAD_REQUEST', 408, 'the request was not received in time'),
  /** archiveInvalid: an import's body is no readable, safe image archive (Berth's own code). */
  archiveInvalid: def('ARCHIVE_INVALID', 400, 'the archive is not a valid image archive'),
  importTooLarge: def('SIZE_INVALID', 413, 'the import exceeds the size limit'),
  unavailable: def('UNAVAILABLE', 503, 'storage is unavailable, retry later'),
} as const;

export function isRegistryError(err: unknown): err is RegistryError {
  return err instanceof RegistryError;
}

/** errorBody is the OCI error JSON of one error: `{ errors: [{ code, message, detail? }] }`. */
export function errorBody(e: RegistryError): {
  errors: { code: string; message: string; detail?: unknown }[];
} {
  const body: { code: string; message: string; detail?: unknown } = {
    code: e.code,
    message: e.message,
  };
  if (e.detail !== undefined) body.detail = e.detail;
  return { errors: [body] };
}
