// The selected collection's assets as a grid of cards, refreshed by asset events.

import { gql } from "./api";
import { errorMessage, formatBytes, formatTime, h, replaceChildren } from "./dom";
import { ASSETS } from "./ops";
import { nodes, type Asset, type Collection, type Connection, type DepotEvent } from "./types";
import { badge, panel } from "./ui";

const REFRESH_DELAY_MS = 150; // events come in bursts (uploaded, processing, ready)

export class AssetsPanel {
  readonly el: HTMLElement;
  private readonly title = h("span", { class: "muted" });
  private readonly grid = h("div", { class: "asset-grid", "data-testid": "asset-grid" });
  private readonly cards = new Map<string, { key: string; el: HTMLElement }>();
  private collection: Collection | null = null;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private generation = 0;

  constructor() {
    this.el = panel("Assets", "assets-panel", this.grid);
    this.el.querySelector(".panel-head")?.append(this.title);
  }

  show(collection: Collection | null): void {
    this.collection = collection;
    this.cards.clear();
    this.title.textContent = collection ? collection.name : "";
    replaceChildren(this.grid, h("p", { class: "empty" }, collection ? "Loading…" : "No collection selected."));
    if (collection) void this.refresh();
  }

  onEvent(event: DepotEvent): void {
    if (!event.type.startsWith("asset.") || !this.collection) return;
    if (event.payload.collectionId !== this.collection.id) return;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => void this.refresh(), REFRESH_DELAY_MS);
  }

  async refresh(): Promise<void> {
    const collection = this.collection;
    if (!collection) return;
    const generation = ++this.generation;
    let assets: Asset[];
    try {
      const data = await gql<{ assets: Connection<Asset> }>(ASSETS, { collectionId: collection.id });
      assets = nodes(data.assets);
    } catch (error) {
      if (generation === this.generation) {
        replaceChildren(this.grid, h("p", { class: "form-errors" }, `Could not load assets: ${errorMessage(error)}`));
      }
      return;
    }
    if (generation !== this.generation) return; // a newer refresh or another collection won
    this.render(assets);
  }

  private render(assets: Asset[]): void {
    if (assets.length === 0) {
      this.cards.clear();
      replaceChildren(this.grid, h("p", { class: "empty" }, "No assets yet. Upload some files."));
      return;
    }
    const seen = new Set<string>();
    const cards = assets.map((asset) => {
      seen.add(asset.id);
      // Rendition links are signed afresh on every query: keep a card (and its loaded
      // thumbnail) while nothing visible changed, so a refresh does not flicker.
      const key = cardKey(asset);
      let card = this.cards.get(asset.id);
      if (!card || card.key !== key) {
        card = { key, el: assetCard(asset) };
        this.cards.set(asset.id, card);
      }
      return card.el;
    });
    for (const id of [...this.cards.keys()]) if (!seen.has(id)) this.cards.delete(id);
    replaceChildren(this.grid, cards);
  }
}

function dimensions(asset: Asset): string {
  const { width, height } = asset.metadata ?? {};
  return typeof width === "number" && typeof height === "number" ? `${width}×${height}` : "";
}

// The smallest rendition that fits a card: the thumbnail preset when the workspace has it.
function thumbnailOf(asset: Asset): Asset["renditions"][number] | undefined {
  return asset.renditions.find((r) => r.preset === "thumb-256") ?? [...asset.renditions].sort((a, b) => a.width - b.width)[0];
}

function cardKey(asset: Asset): string {
  const thumb = thumbnailOf(asset);
  return JSON.stringify([asset.title, asset.state, asset.contentType, asset.size, dimensions(asset), thumb?.preset, thumb?.width, asset.failure]);
}

function assetCard(asset: Asset): HTMLElement {
  const thumb = thumbnailOf(asset);
  const type = asset.contentType || asset.declaredContentType;
  const picture = thumb
    ? h("img", { src: thumb.url, alt: asset.title, width: thumb.width, height: thumb.height, "data-testid": "asset-thumb" })
    : h("span", { class: "thumb-placeholder" }, (type.split("/")[1] ?? "file").toUpperCase());
  return h(
    "article",
    { class: "asset", "data-testid": "asset-card", "data-asset-id": asset.id, "data-state": asset.state },
    h("div", { class: "thumb" }, picture),
    h(
      "div",
      { class: "asset-body" },
      h("div", { class: "asset-title", title: asset.title }, asset.title),
      h("div", { class: "asset-meta" }, badge(asset.state), h("span", null, formatTime(asset.createdAt))),
      h("div", { class: "asset-facts muted" }, [type, formatBytes(asset.size), dimensions(asset)].filter(Boolean).join(" · ")),
      asset.failure ? h("div", { class: "job-error" }, h("code", null, asset.failure.code), " ", asset.failure.message) : null,
    ),
  );
}
