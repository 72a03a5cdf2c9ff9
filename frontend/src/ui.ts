// Shared building blocks: panels, badges, progress bars, form errors, the notice banner.

import { h, replaceChildren } from "./dom";
import type { UserError } from "./types";

export function panel(title: string, testId: string, ...body: (Node | null)[]): HTMLElement {
  return h(
    "section",
    { class: "panel", "data-testid": testId },
    h("header", { class: "panel-head" }, h("h2", null, title)),
    h("div", { class: "panel-body" }, ...body),
  );
}

export function badge(state: string): HTMLSpanElement {
  return h("span", { class: `badge badge-${state.toLowerCase()}`, "data-testid": "badge" }, state);
}

/** A progress bar; `fraction` null means "working, amount unknown". */
export function progressBar(fraction: number | null, state = ""): HTMLDivElement {
  const bar = h("div", { class: "progress-bar" });
  if (fraction === null) bar.classList.add("indeterminate");
  else bar.style.width = `${Math.round(Math.min(1, Math.max(0, fraction)) * 100)}%`;
  return h(
    "div",
    {
      class: `progress progress-${state.toLowerCase()}`,
      role: "progressbar",
      "aria-valuemin": 0,
      "aria-valuemax": 100,
      "aria-valuenow": fraction === null ? null : Math.round(fraction * 100),
    },
    bar,
  );
}

/** Shows a payload's `errors[]` (or clears them) in an element kept for that. */
export function showErrors(target: HTMLElement, errors: (UserError | string)[]): void {
  replaceChildren(
    target,
    errors.map((e) =>
      h("div", { class: "error-line" }, typeof e === "string" ? e : e.message, typeof e === "string" ? null : h("code", null, e.code)),
    ),
  );
  target.hidden = errors.length === 0;
}

export type Notify = (message: string, kind?: "error" | "info") => void;

/** A banner for failures that belong to no form (network, lost session). */
export function noticeArea(): { el: HTMLElement; notify: Notify } {
  const el = h("div", { class: "notices", "aria-live": "polite" });
  const notify: Notify = (message, kind = "error") => {
    const close = h("button", { class: "notice-close", type: "button", "aria-label": "Dismiss" }, "×");
    const notice = h("div", { class: `notice notice-${kind}`, role: "status" }, h("span", null, message), close);
    close.addEventListener("click", () => notice.remove());
    el.prepend(notice);
    while (el.children.length > 3) el.lastElementChild?.remove();
    if (kind === "info") setTimeout(() => notice.remove(), 6_000);
  };
  return { el, notify };
}
