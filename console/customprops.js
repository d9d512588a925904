// Data matching's custom properties: rows of property name, column, type, what to do with a value
// that cannot be converted, and (for lists) the separator. Field errors of the API are routed to the row.
import {fill, h, uid} from "./dom.js";
import {field} from "./forms.js";

export const PROPERTY_TYPES = [
  ["string", "Text"],
  ["number", "Number"],
  ["boolean", "Yes/no"],
  ["date", "Date"],
  ["stringList", "List of texts"],
];
const ON_INVALID = [
  ["reject", "Reject the row"],
  ["omit", "Leave the property out"],
];
const SPEC_PATH = /^mapping\.customProperties(?:\.([A-Za-z_][A-Za-z0-9_]*)|\[("(?:[^"\\]|\\.)*")\])(?:\.(column|type|onInvalid|separator))?$/;

/** The property name an API path such as `mapping.customProperties["a b"].type` is about, and the part. */
function parsePath(path) {
  const match = SPEC_PATH.exec(path);
  if (!match) return null;
  try {
    return {name: match[1] ?? JSON.parse(match[2]), part: match[3] || "name"};
  } catch {
    return null;
  }
}

/**
 * The editor: {element, refresh(columns, hasSegments), value(), fieldFor(path)}. `value()` is the
 * mapping's `customProperties` (rows left blank are skipped); `fieldFor` routes an API error path to
 * the row control it is about (by the names last sent), or to the editor as a whole.
 */
export function customPropertiesEditor(existing = {}) {
  const rows = [];
  let columns = [];
  let hasSegments = false;
  let sent = new Map();
  const list = h("div", {class: "custom-rows"});
  const add = h("button", {type: "button"}, "Add a custom property");
  const hintId = uid("custom-hint");
  const element = h("fieldset", {class: "custom", "data-field-box": "mapping.customProperties", "data-field": "mapping.customProperties",
    "aria-describedby": `${hintId} ${hintId}-error`},
  h("legend", {}, "Custom properties"),
  h("p", {class: "hint", id: hintId}, "Contact custom properties in Omnisend: a name of Latin letters, digits and _, the column it is read from, and its type. A value that cannot be converted rejects the row, or leaves just this property out; an empty one is left out."),
  h("p", {class: "error", id: `${hintId}-error`, "data-error-for": "mapping.customProperties", hidden: true}),
  list, add);

  function fillColumns(row) {
    const previous = row.column;
    const keep = columns.find((column) => column.toLowerCase() === previous.toLowerCase()) || "";
    fill(row.columnSelect, h("option", {value: ""}, "Choose a column"),
      columns.map((column) => h("option", {value: column, selected: column === keep}, column)));
    if (!keep && previous && !hasSegments) row.columnSelect.append(h("option", {value: previous, selected: true}, previous));
    row.columnSelect.disabled = !columns.length && !row.columnSelect.value;
  }

  function renumber() {
    rows.forEach((row, index) => {
      row.legend.textContent = `Custom property ${index + 1}`;
      row.remove.setAttribute("aria-label", `Remove custom property ${index + 1}`);
    });
  }

  function addRow(name = "", spec = {}) {
    const key = uid("property");
    const nameInput = h("input", {type: "text", autocomplete: "off", spellcheck: "false", maxlength: "128", value: name});
    const columnSelect = h("select", {});
    const typeSelect = h("select", {}, PROPERTY_TYPES.map(([value, label]) => h("option", {value, selected: value === (spec.type || "string")}, label)));
    const onInvalid = h("select", {}, ON_INVALID.map(([value, label]) => h("option", {value, selected: value === (spec.onInvalid || "reject")}, label)));
    const separator = h("input", {type: "text", autocomplete: "off", spellcheck: "false", maxlength: "10", value: spec.separator ?? ";"});
    const separatorField = field({name: `${key}.separator`, label: "Separator", control: separator, hint: "The text between list items."});
    const remove = h("button", {type: "button", class: "remove"}, "Remove");
    const legend = h("legend", {});
    const row = {key, column: spec.column || "", nameInput, columnSelect, typeSelect, onInvalid, separator, legend, remove,
      element: h("fieldset", {class: "custom-row"}, legend,
        h("div", {class: "mapping"},
          field({name: `${key}.name`, label: "Name", control: nameInput}),
          field({name: `${key}.column`, label: "Column", control: columnSelect}),
          field({name: `${key}.type`, label: "Type", control: typeSelect}),
          field({name: `${key}.onInvalid`, label: "When a value cannot be converted", control: onInvalid}),
          separatorField),
        h("div", {class: "actions"}, remove))};
    const showSeparator = () => { separatorField.hidden = typeSelect.value !== "stringList"; };
    typeSelect.addEventListener("change", showSeparator);
    columnSelect.addEventListener("change", () => { row.column = columnSelect.value; });
    remove.addEventListener("click", () => {
      rows.splice(rows.indexOf(row), 1);
      row.element.remove();
      renumber();
      add.focus();
    });
    showSeparator();
    fillColumns(row);
    rows.push(row);
    list.append(row.element);
    renumber();
    return row;
  }

  add.addEventListener("click", () => addRow().nameInput.focus());
  for (const [name, spec] of Object.entries(existing || {})) addRow(name, spec);

  return {
    element,
    refresh(offered, chosen) {
      columns = offered;
      hasSegments = chosen;
      rows.forEach(fillColumns);
    },
    value() {
      const properties = {};
      sent = new Map();
      for (const row of rows) {
        const name = row.nameInput.value.trim();
        if (!name && !row.columnSelect.value) continue;
        const spec = {column: row.columnSelect.value, type: row.typeSelect.value, onInvalid: row.onInvalid.value};
        if (spec.type === "stringList") spec.separator = row.separator.value;
        properties[name] = spec;
        if (!sent.has(name)) sent.set(name, row.key);
      }
      return properties;
    },
    fieldFor(path) {
      if (!path.startsWith("mapping.customProperties")) return null;
      const parsed = parsePath(path);
      const key = parsed && sent.get(parsed.name);
      return key ? `${key}.${parsed.part}` : "mapping.customProperties";
    },
  };
}
