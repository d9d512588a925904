// A preview run's report (GET /api/runs/{runId}/preview): what an incremental run would send, skip and
// untag, and whether the removal gate would hold. Nothing of it was written to Omnisend.
import {h, plural, uid} from "./dom.js";

const CLASSES = [
  ["new", "New", "would be added to Omnisend and tagged"],
  ["changed", "Changed", "would be updated (fields differ from what was last sent)"],
  ["tagOnly", "Tag only", "would only get the segment's tag"],
  ["unchanged", "Unchanged", "would cost no request"],
];

const DECISIONS = {
  apply: "would lose the tag",
  hold: "held by the removal gate: nobody loses the tag until the removals are approved",
  noMembers: "the segment had no valid email: nobody loses the tag",
};

/** The report as a <section>, headed `title` (text or nodes). */
export function previewReport(report, title) {
  const heading = h("h2", {id: uid("preview"), tabindex: "-1"}, title);
  const counts = h("table", {},
    h("caption", {}, "Rows by what an incremental run would do"),
    h("thead", {}, h("tr", {}, ["Class", "Rows", "Meaning"].map((name) => h("th", {scope: "col"}, name)))),
    h("tbody", {}, CLASSES.map(([key, label, meaning]) => h("tr", {"data-class": key},
      h("th", {scope: "row"}, label), h("td", {"data-label": "Rows"}, report.counts[key].toLocaleString()),
      h("td", {"data-label": "Meaning"}, meaning)))));
  const samples = CLASSES.filter(([key]) => report.samples[key].length).map(([key, label]) => h("details", {},
    h("summary", {}, `${label}: first ${plural(report.samples[key].length, "row")}`),
    h("ul", {class: "samples"}, report.samples[key].map((sample) =>
      h("li", {}, `${sample.email} (${sample.segment}, row ${sample.row})`)))));
  const leavers = Object.values(report.leavers);
  return h("section", {class: "preview-report", "aria-labelledby": heading.id},
    heading,
    h("p", {class: "intro"}, "A preview sends nothing and leaves the export's sync state as it was."),
    report.removalsHeld
      ? h("p", {class: "problem", role: "status"}, `The removal gate would hold: ${report.heldReason || "too many contacts would lose a tag"}.`)
      : null,
    counts,
    samples,
    h("h3", {}, "Contacts that would lose a tag"),
    leavers.length ? h("ul", {class: "leavers"}, leavers.map((item) => h("li", {"data-tag": item.tag},
      h("strong", {}, item.tag), `: ${plural(item.leavers, "contact")} (${item.percent}%) ${DECISIONS[item.decision] || item.decision}`,
      item.sample.length ? h("span", {class: "columns"}, ` — ${item.sample.slice(0, 5).join(", ")}${item.sample.length > 5 ? ", …" : ""}`) : null)))
      : h("p", {class: "empty"}, "None: nobody left a segment."));
}
