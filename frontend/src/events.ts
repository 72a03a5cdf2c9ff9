// The workspace's durable event stream, resumed without gaps across reconnects.

import type { GraphQLFormattedError } from "graphql";
import type { Client } from "graphql-ws";
import { errorMessage } from "./dom";
import { EVENTS_SUBSCRIPTION } from "./ops";
import type { DepotEvent } from "./types";

export interface EventStreamHandlers {
  /** Each durable event once, in sequence order. */
  event(event: DepotEvent): void;
  /** Events may have been missed (no cursor yet, or it expired): reload the current state. */
  resync(): void;
  /** The stream stopped for good (e.g. signed out). */
  failed(message: string): void;
}

const RESTART_DELAY_MS = 1_000;

export function streamEvents(
  client: Client,
  workspaceId: string,
  handlers: EventStreamHandlers,
): () => void {
  // graphql-ws re-sends a subscription's payload, serialised afresh, whenever it reconnects.
  // Keeping `after` at the last sequence seen makes that automatic resubscription resume the
  // stream from our cursor: the server replays what we missed, then goes live.
  const variables: { workspaceId: string; after: number | null } = { workspaceId, after: null };
  let stopped = false;
  let unsubscribe: () => void = () => {};
  let timer: ReturnType<typeof setTimeout> | undefined;

  const restart = () => {
    if (stopped) return;
    clearTimeout(timer);
    timer = setTimeout(start, RESTART_DELAY_MS);
  };

  // A subscription's own errors (a cursor refused, a subscriber fallen behind) come as a
  // `next` with `errors`, followed by `complete`, which restarts the stream: set the cursor it
  // restarts from. Only a refused subscribe or a lost connection reaches the `error` sink.
  function failedWith(errors: readonly GraphQLFormattedError[]): void {
    const codes = errors.map((e) => e.extensions?.code);
    if (codes.includes("CURSOR_EXPIRED") || codes.includes("CURSOR_INVALID")) {
      // Events we never saw are gone (or our cursor is not the server's): start from now,
      // after reloading everything.
      variables.after = null;
      handlers.resync();
    } else if (!codes.includes("SUBSCRIBER_TOO_SLOW")) {
      // Fallen behind needs nothing: the restart replays from our cursor.
      handlers.failed(`Live events failed: ${errorMessage(errors)}`);
    }
  }

  function start(): void {
    unsubscribe = client.subscribe<{ events: DepotEvent }>(
      { query: EVENTS_SUBSCRIPTION, variables },
      {
        next: (result) => {
          if (result.errors?.length) {
            failedWith(result.errors);
            return;
          }
          const event = result.data?.events;
          if (!event) return;
          const sequence = Number(event.sequence);
          if (variables.after !== null && sequence <= variables.after) return; // already seen
          variables.after = sequence;
          handlers.event(event);
        },
        error: (error) => {
          if (stopped) return;
          if (Array.isArray(error)) {
            failedWith(error);
          } else if (typeof error === "object" && error && "code" in error) {
            // The socket closed for good (the session ended): the header's status says so.
            return;
          } else {
            handlers.failed(`Live events failed: ${errorMessage(error)}`);
          }
          restart();
        },
        complete: restart,
      },
    );
  }

  // Without a cursor (nothing arrived yet) a resubscription starts "from now", so whatever
  // happened while we were away is read again from the queries instead.
  const offConnected = client.on("connected", (_socket, _payload, wasRetry) => {
    if (wasRetry && variables.after === null) handlers.resync();
  });

  start();
  return () => {
    stopped = true;
    clearTimeout(timer);
    offConnected();
    unsubscribe();
  };
}
