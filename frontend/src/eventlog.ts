// The last events of the workspace, newest first.

import { formatTime, h } from "./dom";
import type { DepotEvent } from "./types";
import { panel } from "./ui";

const MAX_EVENTS = 50;

export class EventLog {
  readonly el: HTMLElement;
  private readonly list = h("ol", { class: "event-log", "data-testid": "event-log" });

  constructor() {
    this.el = panel("Live events", "events-panel", this.list);
  }

  add(event: DepotEvent): void {
    const [topic, ...verb] = event.type.split(".");
    this.list.prepend(
      h(
        "li",
        { "data-sequence": String(event.sequence) },
        h("span", { class: "seq" }, String(event.sequence)),
        h("span", { class: "type" }, h("span", { class: "topic" }, topic ?? "", verb.length ? "." : ""), verb.join(".")),
        h("time", { class: "muted", datetime: event.createdAt }, formatTime(event.createdAt)),
      ),
    );
    while (this.list.children.length > MAX_EVENTS) this.list.lastElementChild?.remove();
  }

  clear(): void {
    this.list.replaceChildren();
  }
}
