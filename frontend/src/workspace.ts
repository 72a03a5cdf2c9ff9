// One workspace's dashboard: wires the panels to each other and to the event stream.

import type { Client } from "graphql-ws";
import { AssetsPanel } from "./assets";
import { CollectionsPanel } from "./collections";
import { h } from "./dom";
import { EventLog } from "./eventlog";
import { streamEvents } from "./events";
import { JobsPanel } from "./jobs";
import type { Membership } from "./types";
import type { Notify } from "./ui";
import { UploadPanel } from "./upload";

/** Render the workspace's dashboard into `root`; returns a function that tears it down. */
export function mountWorkspace(root: HTMLElement, client: Client, membership: Membership, notify: Notify): () => void {
  const workspaceId = membership.workspace.id;
  const canWrite = membership.role !== "viewer";

  const assets = new AssetsPanel();
  const log = new EventLog();
  const upload = new UploadPanel(canWrite, (job) => jobs.track(job));
  const jobs = new JobsPanel(client, workspaceId, canWrite, notify, (job) => upload.jobUpdated(job));
  const collections = new CollectionsPanel({
    workspaceId,
    canWrite,
    notify,
    onList: (list, selectedId) => upload.setCollections(list, selectedId),
    onSelect: (collection) => {
      assets.show(collection);
      upload.follow(collection?.id ?? null);
    },
  });

  root.replaceChildren(
    h(
      "main",
      { class: "layout" },
      h("div", { class: "column" }, collections.el, upload.el),
      h("div", { class: "column column-wide" }, assets.el),
      h("div", { class: "column" }, jobs.el, log.el),
    ),
  );

  let reloadTimer: ReturnType<typeof setTimeout> | undefined;
  const reloadCollections = () => {
    clearTimeout(reloadTimer);
    reloadTimer = setTimeout(() => void collections.load(), 300);
  };

  // Subscribe first, then read the current state, so nothing falls between the two.
  const stopEvents = streamEvents(client, workspaceId, {
    event: (event) => {
      log.add(event);
      if (event.type.startsWith("job.")) jobs.onEvent(event);
      if (event.type.startsWith("asset.")) assets.onEvent(event);
      if (event.type.startsWith("collection.") || event.type === "asset.created") reloadCollections();
    },
    resync: () => {
      void collections.load();
      void jobs.load();
      void assets.refresh();
    },
    failed: (message) => notify(message),
  });
  void collections.load();
  void jobs.load();

  return () => {
    clearTimeout(reloadTimer);
    stopEvents();
    jobs.dispose();
  };
}
