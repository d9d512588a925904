// Create or change an export: connection, segments, Data matching from the segments' columns, triggers.
import {get, post, put, segment} from "./api.js";
import {fill, h, plural} from "./dom.js";
import {customPropertiesEditor} from "./customprops.js";
import {checkedValues, choices, clearProblems, field, showProblem, summary} from "./forms.js";
import {LAYOUTS} from "./segments.js";

/** Omnisend contact fields, in the order Customer Insights' own export shows them. */
export const CONTACT_FIELDS = [
  ["email", "Email", true],
  ["firstName", "First name"],
  ["lastName", "Last name"],
  ["address", "Address"],
  ["country", "Country/Region"],
  ["state", "State"],
  ["city", "City"],
  ["postalCode", "Post code"],
  ["birthdate", "Birthdate"],
  ["gender", "Gender"],
];

/** The form field an API error path belongs to: "mapping.email" -> "mapping.email", "segments[2]" -> "segments",
 * "tags.Vip" -> "tags.Vip" (a segment's tag field; "tagContacts" when it is not on the form). */
function fieldFor(path, form) {
  if (/^mapping\.\w+$/.test(path) || path === "schedule.cron" || path === "schedule.timeZone") return path;
  if (path.startsWith("tags.")) return form?.querySelector(`[data-field="${CSS.escape(path)}"]`) ? path : "tagContacts";
  const root = path.replace(/[[.].*$/, "");
  return ["displayName", "connectionId", "segments", "mapping", "runOn", "tagContacts", "schedule"].includes(root) ? root : null;
}

/** Columns every chosen segment has (names match case-insensitively, as the run engine matches them). */
export function commonColumns(chosen) {
  if (!chosen.length) return [];
  const [first, ...others] = chosen;
  const sets = others.map((item) => new Set(item.columns.map((name) => name.toLowerCase())));
  return first.columns.filter((name) => sets.every((set) => set.has(name.toLowerCase())));
}

export async function exportForm(context, exportId) {
  const {signal} = context;
  const editing = Boolean(exportId);
  const [connections, segments, current] = await Promise.all([
    get("connections", {signal}), get("segments", {signal}),
    editing ? get(`exports/${segment(exportId)}`, {signal}) : Promise.resolve(null),
  ]);
  const existing = current?.data || {displayName: "", connectionId: "", segments: [], mapping: {}, runOn: ["schedule", "upload"], tagContacts: true, tags: {}, schedule: null};
  const etag = current?.etag || null;
  const title = editing ? `Edit “${existing.displayName}”` : "New export";
  const usable = connections.data.connections;

  if (!editing && !usable.length) {
    context.frame(title, h("p", {class: "empty"}, context.role === "admin"
      ? ["An export needs a connection to Omnisend: ", h("a", {href: "#/connections/new"}, "add a connection"), " first."]
      : "An export needs a connection to Omnisend, and no admin has shared one with contributors yet."));
    return;
  }

  const name = h("input", {type: "text", autocomplete: "off", maxlength: "200", value: existing.displayName});
  const connection = h("select", {},
    h("option", {value: ""}, "Choose a connection"),
    usable.map((item) => h("option", {value: item.id, selected: item.id === existing.connectionId}, item.displayName)));
  if (existing.connectionId && !usable.some((item) => item.id === existing.connectionId)) {
    connection.append(h("option", {value: existing.connectionId, selected: true}, `${existing.connectionId} (not available to you)`));
  }

  const known = new Map(segments.data.segments.map((item) => [item.name.toLowerCase(), item]));
  const segmentItems = segments.data.segments.map((item) => ({
    value: item.name, label: item.name, checked: existing.segments.some((chosen) => chosen.toLowerCase() === item.name.toLowerCase()),
    hint: `(${LAYOUTS[item.layout] || item.layout}, ${plural(item.columns.length, "column")})`,
  }));
  for (const missing of existing.segments.filter((chosen) => !known.has(chosen.toLowerCase()))) {
    segmentItems.push({value: missing, label: missing, checked: true, hint: "(not in the container now)"});
  }
  const segmentBox = choices({name: "segments", legend: "Segments", required: true, items: segmentItems,
    hint: segmentItems.length ? "Every profile of the chosen segments is sent to Omnisend as a contact."
      : "No segments in the container yet: Customer Insights has not exported any."});

  const selects = new Map();
  const mappingGrid = h("div", {class: "mapping"});
  for (const [key, label, required] of CONTACT_FIELDS) {
    const select = h("select", {});
    selects.set(key, select);
    mappingGrid.append(field({name: `mapping.${key}`, label, control: select, required}));
  }
  const mappingHint = h("p", {class: "hint", id: "mapping-hint"});
  const mappingBox = h("fieldset", {class: "choices", "data-field-box": "mapping", "data-field": "mapping", "aria-describedby": "mapping-hint mapping-error"},
    h("legend", {}, "Data matching"),
    mappingHint,
    h("p", {class: "error", id: "mapping-error", "data-error-for": "mapping", hidden: true}),
    mappingGrid);
  const customProperties = customPropertiesEditor(existing.mapping.customProperties);
  mappingBox.append(customProperties.element);
  const routeField = (path) => customProperties.fieldFor(path) || fieldFor(path, form);

  const chosenMapping = {...existing.mapping};
  function refreshColumns() {
    const chosen = checkedValues(segmentBox).map((value) => known.get(value.toLowerCase())).filter(Boolean);
    const columns = commonColumns(chosen);
    mappingHint.textContent = chosen.length
      ? `Choose the column of the chosen segments that holds each Omnisend field. Offered: the ${plural(columns.length, "column")} every chosen segment has. Email is required; leave the others as “Not sent” if you do not need them. Birthdate and gender are converted to what Omnisend takes (a gender other than male or female is left out).`
      : "Choose segments first: their columns are offered here.";
    for (const [key, , required] of CONTACT_FIELDS) {
      const select = selects.get(key);
      const previous = chosenMapping[key] || "";
      const keep = columns.find((column) => column.toLowerCase() === previous.toLowerCase()) || "";
      fill(select,
        h("option", {value: ""}, required ? "Choose a column" : "Not sent"),
        columns.map((column) => h("option", {value: column, selected: column === keep}, column)));
      if (!keep && previous && !chosen.length) {
        select.append(h("option", {value: previous, selected: true}, previous));
      }
      if (!select.value && required) {
        const guess = columns.filter((column) => /e-?mail/i.test(column));
        if (guess.length === 1) select.value = guess[0];
      }
      select.disabled = !columns.length && !select.value;
    }
    customProperties.refresh(columns, chosen.length > 0);
  }
  segmentBox.addEventListener("change", () => {
    refreshColumns();
    context.announce("The columns offered for Data matching changed.");
  });
  for (const select of selects.values()) select.addEventListener("change", () => { chosenMapping[select.dataset.field.slice(8)] = select.value; });

  const runOn = choices({name: "runOn", legend: "Run on", hint: "Besides these, you can always start a run with “Run now”.", items: [
    {value: "schedule", label: "Schedule", hint: "(as set below)", checked: existing.runOn.includes("schedule")},
    {value: "upload", label: "Upload", hint: "(when Customer Insights writes new data)", checked: existing.runOn.includes("upload")},
  ]});
  const ownSchedule = existing.schedule || null;
  const scheduleMode = choices({name: "schedule", legend: "Schedule", type: "radio",
    hint: "When “Run on: Schedule” starts this export. Missed times run once when the app is back.", items: [
      {value: "app", label: "Follow the app’s schedule", hint: "(EXPORT_SCHEDULE, in UTC)", checked: !ownSchedule},
      {value: "own", label: "Its own schedule", checked: Boolean(ownSchedule)},
    ]});
  const cron = h("input", {type: "text", autocomplete: "off", spellcheck: "false", maxlength: "200",
    value: ownSchedule?.cron || "0 0 6 * * *"});
  const zone = h("input", {type: "text", autocomplete: "off", spellcheck: "false", maxlength: "100",
    value: ownSchedule?.timeZone || "UTC"});
  const ownFields = h("div", {class: "panel"},
    field({name: "schedule.cron", label: "Cron expression", control: cron,
      hint: "NCRONTAB (second minute hour day month day-of-week, e.g. “0 0 6 * * *” for 06:00 daily) or 5-field cron (e.g. “0 6 * * Mon”)."}),
    field({name: "schedule.timeZone", label: "Time zone", control: zone,
      hint: "An IANA time zone name, e.g. “Europe/Vilnius” or “UTC”. Daylight-saving changes neither skip nor repeat a run."}));
  scheduleMode.append(ownFields);
  const showOwn = () => { ownFields.hidden = !checkedValues(scheduleMode).includes("own"); };
  scheduleMode.addEventListener("change", showOwn);
  showOwn();
  const tags = choices({name: "tagContacts", legend: "Tags", items: [
    {value: "yes", label: "Tag contacts with a tag per segment", checked: existing.tagContacts,
      hint: "(and take the tag off contacts that left a segment)"},
  ]});
  // One tag name per chosen segment: its name unless changed. What was typed survives (un)checking segments.
  const tagNames = new Map(Object.entries(existing.tags || {}).map(([name, tag]) => [name.toLowerCase(), tag]));
  const tagInputs = new Map();
  const tagFields = h("div", {class: "panel tag-names"});
  tags.append(tagFields);
  function refreshTags() {
    for (const [key, input] of tagInputs) tagNames.set(key, input.value);
    tagInputs.clear();
    const chosen = checkedValues(segmentBox);
    fill(tagFields,
      h("p", {class: "hint"}, "The tag each segment’s contacts get in Omnisend. Renaming one moves it on the next run: the new tag is added, the old one taken off the contacts this export tagged (a tag someone set by hand stays). No other export on the same connection may use the same tag."),
      chosen.map((name) => {
        const input = h("input", {type: "text", autocomplete: "off", spellcheck: "false", maxlength: "100",
          value: tagNames.get(name.toLowerCase()) ?? name});
        tagInputs.set(name.toLowerCase(), input);
        return field({name: `tags.${name}`, label: `Tag for ${name}`, control: input});
      }));
    tagFields.hidden = !chosen.length || !checkedValues(tags).includes("yes");
  }
  tags.addEventListener("change", (event) => { if (event.target.type === "checkbox") refreshTags(); });
  segmentBox.addEventListener("change", refreshTags);

  const save = h("button", {type: "submit", class: "primary"}, "Save");
  const form = h("form", {novalidate: true, "aria-label": title},
    summary(),
    h("div", {class: "panel"},
      field({name: "displayName", label: "Display name", control: name, required: true}),
      field({name: "connectionId", label: "Connection", control: connection, required: true,
        hint: context.role === "admin" ? "The Omnisend store to send contacts to." : "The Omnisend stores admins shared with contributors."})),
    segmentBox,
    mappingBox,
    runOn,
    scheduleMode,
    tags,
    h("p", {class: "hint"}, "Saving never runs the export."),
    h("div", {class: "actions"}, save, h("a", {class: "button", href: editing ? `#/exports/${segment(exportId)}/runs` : "#/exports"}, "Cancel")),
  );

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const mapping = {};
    for (const [key] of CONTACT_FIELDS) if (selects.get(key).value) mapping[key] = selects.get(key).value;
    const properties = customProperties.value();
    if (Object.keys(properties).length) mapping.customProperties = properties;
    const tagging = checkedValues(tags).includes("yes");
    const segmentTags = {};
    for (const chosen of checkedValues(segmentBox)) {
      const tag = tagInputs.get(chosen.toLowerCase())?.value ?? chosen;
      // A blank one too, while tagging: the API says what is wrong with it, beside its field.
      if (tag !== chosen && (tagging || tag.trim())) segmentTags[chosen] = tag;
    }
    // Settings the form does not show are sent back as they are, so that saving here keeps them.
    const kept = Object.fromEntries(["maxRemovalPercent", "fullResyncDays"].filter((key) => key in existing).map((key) => [key, existing[key]]));
    const body = {
      ...kept,
      displayName: name.value,
      connectionId: connection.value,
      segments: checkedValues(segmentBox),
      mapping,
      runOn: checkedValues(runOn),
      tagContacts: tagging,
      tags: segmentTags,
      schedule: checkedValues(scheduleMode).includes("own") ? {cron: cron.value, timeZone: zone.value} : null,
    };
    save.disabled = true;
    form.setAttribute("aria-busy", "true");
    try {
      const {data} = editing
        ? await put(`exports/${segment(exportId)}`, body, {ifMatch: etag})
        : await post("exports", body);
      context.flash(`Export “${data.displayName}” saved. Saving does not run it: use “Run now” or wait for its triggers.`);
      context.navigate(editing ? `#/exports/${segment(data.id)}/runs` : "#/exports");
    } catch (error) {
      if (error.code === "precondition_failed" || error.code === "edit_conflict") {
        const reload = h("button", {type: "button", onclick: () => {
          clearProblems(form);
          context.navigate(`#/exports/${segment(exportId)}/edit`);
        }}, "Load their version");
        showProblem(form, error, {title: "Someone else changed this export", extra: [
          h("p", {}, "Your changes were not saved: the export was changed since you opened it. Load the current version, then make your changes again."),
          reload]});
      } else {
        showProblem(form, error, {fieldFor: routeField});
      }
    } finally {
      save.disabled = false;
      form.removeAttribute("aria-busy");
    }
  });

  context.frame(title,
    h("p", {class: "intro"}, "Choose where contacts go, which segments they come from, and which column holds each contact field."),
    form);
  refreshColumns();
  refreshTags();
}
