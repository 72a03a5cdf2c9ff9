// The workspace's collections: a selectable list and a form to create one.

import { gql } from "./api";
import { errorMessage, h, replaceChildren } from "./dom";
import { COLLECTION_CREATE, COLLECTIONS } from "./ops";
import { nodes, type Collection, type Connection, type UserError } from "./types";
import { panel, showErrors, type Notify } from "./ui";

interface Options {
  workspaceId: string;
  canWrite: boolean;
  notify: Notify;
  /** The list changed (loaded, or a collection was added). */
  onList(collections: Collection[], selectedId: string | null): void;
  onSelect(collection: Collection | null): void;
}

export class CollectionsPanel {
  readonly el: HTMLElement;
  private readonly list = h("ul", { class: "collection-list", "data-testid": "collection-list" });
  private collections: Collection[] = [];
  private selectedId: string | null = null;
  private loaded = false;

  constructor(private readonly options: Options) {
    this.el = panel("Collections", "collections-panel", this.list, options.canWrite ? this.createForm() : null);
  }

  async load(): Promise<void> {
    try {
      const data = await gql<{ collections: Connection<Collection> }>(COLLECTIONS, {
        workspaceId: this.options.workspaceId,
      });
      this.collections = nodes(data.collections);
    } catch (error) {
      this.options.notify(`Could not load collections: ${errorMessage(error)}`);
      return;
    }
    const before = this.loaded ? this.selectedId : undefined;
    if (!this.collections.some((c) => c.id === this.selectedId)) {
      this.selectedId = this.collections[0]?.id ?? null;
    }
    this.loaded = true;
    this.render();
    this.options.onList(this.collections, this.selectedId);
    if (this.selectedId !== before) this.options.onSelect(this.selected());
  }

  select(id: string): void {
    if (id === this.selectedId) return;
    this.selectedId = id;
    this.render();
    this.options.onSelect(this.selected());
  }

  private selected(): Collection | null {
    return this.collections.find((c) => c.id === this.selectedId) ?? null;
  }

  private render(): void {
    if (this.collections.length === 0) {
      replaceChildren(this.list, h("li", { class: "empty" }, "No collections yet."));
      return;
    }
    replaceChildren(
      this.list,
      this.collections.map((c) =>
        h(
          "li",
          null,
          h(
            "button",
            {
              type: "button",
              class: c.id === this.selectedId ? "collection selected" : "collection",
              "aria-pressed": c.id === this.selectedId ? "true" : "false",
              "data-collection-id": c.id,
              title: c.description || c.name,
              onclick: () => this.select(c.id),
            },
            h("span", { class: "collection-name" }, c.name),
            h("span", { class: "count" }, String(c.assets.totalCount ?? "")),
          ),
        ),
      ),
    );
  }

  private createForm(): HTMLFormElement {
    const name = h("input", { name: "name", required: true, maxlength: 200, placeholder: "Name", "aria-label": "Collection name", autocomplete: "off" });
    const description = h("input", { name: "description", placeholder: "Description (optional)", "aria-label": "Description", autocomplete: "off" });
    const button = h("button", { type: "submit", class: "primary" }, "Create");
    const errors = h("div", { class: "form-errors", "data-testid": "collection-errors", hidden: true });
    const form = h("form", { class: "stack", "data-testid": "collection-form" }, h("h3", null, "New collection"), name, description, button, errors);
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      button.disabled = true;
      showErrors(errors, []);
      try {
        const data = await gql<{ collectionCreate: { collection: { id: string } | null; errors: UserError[] } }>(
          COLLECTION_CREATE,
          { input: { workspaceId: this.options.workspaceId, name: name.value.trim(), description: description.value.trim() } },
        );
        const { collection, errors: problems } = data.collectionCreate;
        if (problems.length || !collection) {
          showErrors(errors, problems.length ? problems : ["The collection was not created."]);
          return;
        }
        form.reset();
        await this.load();
        this.select(collection.id);
      } catch (error) {
        showErrors(errors, [errorMessage(error)]);
      } finally {
        button.disabled = false;
      }
    });
    return form;
  }
}
