// Entry point: find out who is signed in, then show the dashboard of their workspace.

import "./style.css";
import { createSocket, gql } from "./api";
import { errorMessage, h } from "./dom";
import { Header } from "./header";
import { VIEWER } from "./ops";
import type { Membership, Viewer } from "./types";
import { noticeArea } from "./ui";
import { mountWorkspace } from "./workspace";

const WORKSPACE_KEY = "depot.workspace";

async function boot(app: HTMLElement): Promise<void> {
  let viewer: Viewer | null;
  try {
    viewer = (await gql<{ viewer: Viewer | null }>(VIEWER)).viewer;
  } catch (error) {
    app.replaceChildren(h("p", { class: "boot error" }, `Depot could not start: ${errorMessage(error)}`));
    return;
  }
  if (!viewer) {
    location.assign(`/login/?next=${encodeURIComponent(location.pathname)}`);
    return;
  }
  if (viewer.memberships.length === 0) {
    app.replaceChildren(h("p", { class: "boot" }, `Signed in as ${viewer.username}, who is not a member of any workspace yet.`));
    return;
  }

  const remembered = localStorage.getItem(WORKSPACE_KEY);
  const first = viewer.memberships.find((m) => m.workspace.id === remembered) ?? viewer.memberships[0]!;

  const { el: notices, notify } = noticeArea();
  const content = h("div", { class: "content" });
  const header = new Header(viewer, first, (membership) => show(membership));
  // One socket for the page; switching workspaces only swaps subscriptions on it.
  const client = createSocket((status) => {
    header.setStatus(status);
    if (status === "signed-out") notify("Your session has ended. Sign in again to see live updates.");
  });
  let unmount = () => {};
  function show(membership: Membership): void {
    unmount();
    localStorage.setItem(WORKSPACE_KEY, membership.workspace.id);
    header.setRole(membership.role);
    unmount = mountWorkspace(content, client, membership, notify);
  }

  app.replaceChildren(header.el, notices, content);
  show(first);
}

const app = document.getElementById("app");
if (app) void boot(app);
