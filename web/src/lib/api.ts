// Every call the console makes goes through here, to the same public API the CLI and the
// clients use, with the signed-in key in the Authorization header.
import { forgetKey, storedKey } from "./session";

/** An answer other than 2xx, with the server's own words ({"error", "code"}). */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = "ApiError";
  }

  /** What a person reads next to the thing that failed. */
  get explanation(): string {
    const what = STATUS_WORDS[this.status] ?? `HTTP ${this.status}`;
    return this.message ? `${what}: ${this.message}` : what;
  }
}

const STATUS_WORDS: Record<number, string> = {
  0: "Could not reach the server",
  400: "The request was refused",
  401: "The API key was not accepted",
  403: "Not allowed",
  404: "Not found",
  409: "Conflict",
  413: "Too large",
  429: "Too many requests",
  503: "Not available now",
  504: "Took too long",
};

/** Called when the server stops accepting the key (revoked, expired): the app signs out. */
let onUnauthorized: ((error: ApiError) => void) | null = null;
export function setUnauthorizedHandler(handler: (error: ApiError) => void): void {
  onUnauthorized = handler;
}

export interface Answer<T> {
  body: T;
  headers: Headers;
  /** Milliseconds from sending to the whole answer read, as this browser saw them. */
  elapsedMs: number;
}

export async function call<T>(
  method: string,
  path: string,
  options: { body?: unknown; key?: string; signal?: AbortSignal } = {},
): Promise<Answer<T>> {
  const key = options.key ?? storedKey();
  const headers: Record<string, string> = { Accept: "application/json" };
  if (key) headers.Authorization = `Bearer ${key}`;
  if (options.body !== undefined) headers["Content-Type"] = "application/json";
  const started = performance.now();
  let response: Response;
  try {
    response = await fetch(path, {
      method,
      headers,
      body: options.body === undefined ? undefined : JSON.stringify(options.body),
      signal: options.signal,
      credentials: "omit",
      cache: "no-store",
    });
  } catch (error) {
    if (error instanceof DOMException && error.name === "AbortError") throw error;
    throw new ApiError(0, "network", "the server did not answer; is modelhost running?");
  }
  const text = await response.text();
  const elapsedMs = performance.now() - started;
  let body: unknown = null;
  if (text) {
    try {
      body = JSON.parse(text);
    } catch {
      body = text;
    }
  }
  if (!response.ok) {
    const doc = (body ?? {}) as { error?: unknown; code?: unknown };
    const error = new ApiError(
      response.status,
      typeof doc.code === "string" ? doc.code : "http_error",
      typeof doc.error === "string" ? doc.error : response.statusText,
    );
    if (response.status === 401 && options.key === undefined && onUnauthorized) {
      forgetKey();
      onUnauthorized(error);
    }
    throw error;
  }
  return { body: body as T, headers: response.headers, elapsedMs };
}

export const get = <T>(path: string, signal?: AbortSignal) =>
  call<T>("GET", path, { signal }).then((a) => a.body);
export const post = <T>(path: string, body?: unknown) => call<T>("POST", path, { body }).then((a) => a.body);
export const put = <T>(path: string, body?: unknown) => call<T>("PUT", path, { body }).then((a) => a.body);
export const patch = <T>(path: string, body?: unknown) =>
  call<T>("PATCH", path, { body }).then((a) => a.body);
export const del = <T>(path: string) => call<T>("DELETE", path).then((a) => a.body);

export function describe(error: unknown): string {
  if (error instanceof ApiError) return error.explanation;
  if (error instanceof Error) return error.message;
  return String(error);
}

export const enc = encodeURIComponent;
