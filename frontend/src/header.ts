// The top bar: product, workspace picker, live-connection status, the user and sign-out.

import type { SocketStatus } from "./api";
import { cookie } from "./api";
import { h } from "./dom";
import type { Membership, Viewer } from "./types";

const STATUS_TEXT: Record<SocketStatus, string> = {
  connecting: "Connecting…",
  connected: "Live",
  reconnecting: "Reconnecting…",
  "signed-out": "Signed out",
};

export class Header {
  readonly el: HTMLElement;
  private readonly status = h("span", { class: "status", "data-testid": "connection-status" });
  private readonly role = h("span", { class: "role" });

  constructor(viewer: Viewer, current: Membership, onWorkspace: (membership: Membership) => void) {
    const picker = h(
      "select",
      { class: "workspace-picker", "aria-label": "Workspace", "data-testid": "workspace-picker" },
      viewer.memberships.map((m) =>
        h("option", { value: m.workspace.id, selected: m.workspace.id === current.workspace.id }, m.workspace.name),
      ),
    );
    picker.addEventListener("change", () => {
      const membership = viewer.memberships.find((m) => m.workspace.id === picker.value);
      if (membership) onWorkspace(membership);
    });
    // Django's LogoutView takes a POST with the CSRF token; the token is read when it is sent.
    const csrf = h("input", { type: "hidden", name: "csrfmiddlewaretoken" });
    const logout = h(
      "form",
      { method: "post", action: "/logout/", class: "logout" },
      csrf,
      h("button", { type: "submit", class: "link" }, "Sign out"),
    );
    logout.addEventListener("submit", () => (csrf.value = cookie("csrftoken")));

    this.el = h(
      "header",
      { class: "topbar" },
      h("div", { class: "brand" }, h("span", { class: "logo", "aria-hidden": "true" }), "Depot"),
      picker,
      this.status,
      h("div", { class: "spacer" }),
      h("div", { class: "user", "data-testid": "viewer" }, h("span", { class: "avatar", "aria-hidden": "true" }, viewer.username.slice(0, 1).toUpperCase()), h("span", { class: "username" }, viewer.username), this.role),
      logout,
    );
    this.setRole(current.role);
    this.setStatus("connecting");
  }

  setRole(role: string): void {
    this.role.textContent = role;
  }

  setStatus(status: SocketStatus): void {
    this.status.textContent = STATUS_TEXT[status];
    this.status.dataset.status = status;
  }
}
