// Run states in words, as badges.
import {h} from "./dom.js";

export const STATUS = {
  queued: ["Queued", "waiting for a worker"],
  running: ["Running", "contacts are being sent"],
  succeeded: ["Succeeded", "every row was sent"],
  partiallySucceeded: ["Partly succeeded", "some rows were rejected or failed: download them for the reasons"],
  failed: ["Failed", "the run stopped"],
  cancelled: ["Cancelled", "someone cancelled it"],
  skipped: ["Skipped", "another run of the export was in progress"],
};

export const ACTIVE = new Set(["queued", "running"]);

export const TRIGGERS = {manual: "Run now", schedule: "Schedule", upload: "Upload", delete: "Delete (removing tags)"};

export const MODES = {incremental: "incremental", full: "full", preview: "preview"};

export function badge(status) {
  const [label] = STATUS[status] || [status];
  return h("span", {class: `badge ${status}`}, label);
}

export function noRunBadge() {
  return h("span", {class: "badge none"}, "Never run");
}
