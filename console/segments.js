// Segments: what Customer Insights (or anyone) wrote to the segments container, with their columns.
import {get} from "./api.js";
import {h, plural, time} from "./dom.js";

export const LAYOUTS = {customerInsights: "Customer Insights export", plain: "Plain CSV"};

export async function segmentsPage(context) {
  const {data} = await get("segments", {signal: context.signal});
  const page = context.frame("Segments",
    h("p", {class: "intro"}, "The segments in the storage container Customer Insights exports to. An export picks one or more of them and maps their columns to Omnisend's contact fields."));
  if (data.errors.length) {
    page.append(h("div", {class: "problem", role: "alert"},
      h("h2", {}, `${plural(data.errors.length, "export")} in the container cannot be read`),
      h("p", {}, "The other segments are listed. Exports that use these fail until Customer Insights writes them again:"),
      h("ul", {}, data.errors.map((text) => h("li", {}, text)))));
  }
  if (!data.segments.length) {
    page.append(h("p", {class: "empty"}, "No segments yet. Customer Insights has not exported any to the container, or it is empty."));
    return;
  }
  page.append(h("table", {},
    h("caption", {class: "visually-hidden"}, "Segments"),
    h("thead", {}, h("tr", {}, ["Segment", "Layout", "Columns", "Last update"].map((name) => h("th", {scope: "col"}, name)))),
    h("tbody", {}, data.segments.map((item) => h("tr", {},
      h("td", {"data-label": "Segment"}, h("strong", {}, item.name)),
      h("td", {"data-label": "Layout"}, LAYOUTS[item.layout] || item.layout),
      h("td", {"data-label": "Columns"}, h("span", {class: "columns"}, `${plural(item.columns.length, "column")}: ${item.columns.join(", ")}`)),
      h("td", {"data-label": "Last update"}, time(item.updatedAt)),
    )))));
}
