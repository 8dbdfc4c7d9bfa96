// A job's status as a coloured badge.

import { h } from "../dom.js";

export const FINISHED = new Set(["succeeded", "failed", "cancelled"]);

export function statusBadge(status) {
  return h("span", { class: `badge status-${status}`, dataset: { status } }, status);
}
