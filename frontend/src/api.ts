// Talking to Depot: GraphQL over HTTP with the session cookie and CSRF header, and the
// graphql-transport-ws client for subscriptions (the same session authenticates it).

import { createClient, type Client } from "graphql-ws";
import { errorMessage } from "./dom";
import type { UserError } from "./types";

export class GraphQLRequestError extends Error {
  constructor(
    message: string,
    readonly codes: string[] = [],
  ) {
    super(message);
  }
}

/** A mutation answered with `errors` (an expected failure, each with its code). */
export class PayloadError extends Error {
  constructor(readonly errors: UserError[]) {
    super(errors.length ? errors.map((e) => `${e.message} (${e.code})`).join("; ") : "The server answered without a result.");
  }
}

interface GraphQLResponse<T> {
  data?: T | null;
  errors?: { message: string; extensions?: { code?: string } }[];
}

export function cookie(name: string): string {
  for (const part of document.cookie.split(";")) {
    const [key, ...rest] = part.trim().split("=");
    if (key === name) return decodeURIComponent(rest.join("="));
  }
  return "";
}

export async function gql<T>(query: string, variables: Record<string, unknown> = {}): Promise<T> {
  let response: Response;
  try {
    response = await fetch("/graphql/", {
      method: "POST",
      credentials: "same-origin",
      headers: {
        "Content-Type": "application/json",
        Accept: "application/json",
        "X-CSRFToken": cookie("csrftoken"),
      },
      body: JSON.stringify({ query, variables }),
    });
  } catch (error) {
    throw new GraphQLRequestError(`Cannot reach the server: ${errorMessage(error)}`);
  }
  let body: GraphQLResponse<T>;
  try {
    body = (await response.json()) as GraphQLResponse<T>;
  } catch {
    throw new GraphQLRequestError(`The server answered HTTP ${response.status} without JSON.`);
  }
  if (body.errors?.length) {
    throw new GraphQLRequestError(
      body.errors.map((e) => e.message).join("; "),
      body.errors.map((e) => e.extensions?.code ?? ""),
    );
  }
  if (!response.ok || !body.data) {
    throw new GraphQLRequestError(`The server answered HTTP ${response.status}.`);
  }
  return body.data;
}

export type SocketStatus = "connecting" | "connected" | "reconnecting" | "signed-out";

/** Close code the server uses when the session (or token) is not accepted. */
const FORBIDDEN = 4403;

function isCloseEvent(value: unknown): value is { code: number } {
  return !!value && typeof value === "object" && "code" in value && typeof value.code === "number";
}

export function createSocket(onStatus: (status: SocketStatus) => void): Client {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  let everConnected = false;
  const client = createClient({
    url: `${scheme}//${location.host}/graphql/`,
    connectionParams: {},
    keepAlive: 20_000,
    lazyCloseTimeout: 2_000, // switching workspaces must not drop and redial the socket
    // A dashboard stays open for hours: keep retrying, except when the session is gone.
    retryAttempts: Number.POSITIVE_INFINITY,
    shouldRetry: (event) => !(isCloseEvent(event) && event.code === FORBIDDEN),
    retryWait: async (retries) => {
      const delay = Math.min(10_000, 500 * 2 ** retries) * (0.75 + Math.random() / 2);
      await new Promise((resolve) => setTimeout(resolve, delay));
    },
    on: {
      connecting: () => onStatus(everConnected ? "reconnecting" : "connecting"),
      connected: () => {
        everConnected = true;
        onStatus("connected");
      },
      closed: (event) => {
        if (isCloseEvent(event) && event.code === FORBIDDEN) onStatus("signed-out");
        else if (everConnected) onStatus("reconnecting");
      },
    },
  });
  return client;
}
