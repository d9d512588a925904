// Form controls with their labels, hints and error slots, and API problems shown beside their fields.
import {fill, h, uid} from "./dom.js";

/**
 * A labelled control: {name, label, control, hint}. `name` is the key errors are routed to (see
 * showProblem); the control gets an id, aria-describedby for the hint and the error, and data-field.
 */
export function field({name, label, control, hint, required = false}) {
  const id = control.id || uid(name.replace(/\W/g, "-"));
  control.id = id;
  control.dataset.field = name;
  const hintId = hint ? `${id}-hint` : null;
  const errorId = `${id}-error`;
  control.setAttribute("aria-describedby", [hintId, errorId].filter(Boolean).join(" "));
  if (required) control.setAttribute("aria-required", "true");
  return h("div", {class: "field", "data-field-box": name},
    h("label", {for: id}, label, required ? h("span", {class: "required"}, " (required)") : null),
    hint ? h("p", {class: "hint", id: hintId}, hint) : null,
    h("p", {class: "error", id: errorId, "data-error-for": name, hidden: true}),
    control,
  );
}

/** A fieldset of checkboxes or radios: {name, legend, hint, items: [{value, label, checked, hint}]}. */
export function choices({name, legend, hint, type = "checkbox", items, required = false}) {
  const errorId = uid(`${name}-error`);
  const hintId = hint ? uid(`${name}-hint`) : null;
  const group = uid(name);
  const box = h("fieldset", {class: "choices", "data-field-box": name, "data-field": name,
    "aria-describedby": [hintId, errorId].filter(Boolean).join(" ")},
  h("legend", {}, legend, required ? h("span", {class: "required"}, " (required)") : null),
  hint ? h("p", {class: "hint", id: hintId}, hint) : null,
  h("p", {class: "error", id: errorId, "data-error-for": name, hidden: true}),
  );
  for (const item of items) {
    const id = uid(group);
    box.append(h("div", {class: "choice"},
      h("input", {type, id, name: group, value: item.value, checked: Boolean(item.checked),
        "aria-describedby": item.hint ? `${id}-hint` : null}),
      h("label", {for: id}, item.label),
      item.hint ? h("span", {class: "choice-hint", id: `${id}-hint`}, item.hint) : null,
    ));
  }
  return box;
}

export function checkedValues(fieldset) {
  return [...fieldset.querySelectorAll("input:checked")].map((input) => input.value);
}

/** The summary slot a form shows problems in (focused when it has something to say). */
export function summary() {
  return h("div", {class: "form-summary", tabindex: "-1", hidden: true, "aria-live": "assertive"});
}

export function clearProblems(form) {
  for (const slot of form.querySelectorAll("[data-error-for]")) {
    slot.replaceChildren();
    slot.hidden = true;
  }
  for (const control of form.querySelectorAll("[aria-invalid]")) control.removeAttribute("aria-invalid");
  const box = form.querySelector(".form-summary");
  if (box) {
    box.replaceChildren();
    box.hidden = true;
  }
}

/**
 * Show a failed save: every `errors[]` entry beside its field (`fieldFor` turns an API path such as
 * "mapping.email" or "segments[1]" into a field name), and a summary on top with the problem in words
 * and links to the fields. `extra` nodes are added to the summary (e.g. a reload button).
 */
export function showProblem(form, error, {title, fieldFor = (path) => path, extra = []} = {}) {
  const custom = Boolean(title);
  title = title || "Not saved";
  clearProblems(form);
  const placed = [];
  const unplaced = [];
  for (const item of error.fieldErrors) {
    const name = fieldFor(item.field);
    const slot = name && form.querySelector(`[data-error-for="${CSS.escape(name)}"]`);
    if (!slot) {
      unplaced.push(item);
      continue;
    }
    slot.append(h("span", {class: "error-line"}, sentence(item.message, item.field, name)));
    slot.hidden = false;
    const control = form.querySelector(`[data-field="${CSS.escape(name)}"]`);
    if (control) control.setAttribute("aria-invalid", "true");
    if (!placed.includes(name)) placed.push(name);
  }
  const box = form.querySelector(".form-summary");
  fill(box,
    h("h2", {}, title),
    h("p", {}, custom && error.problem?.detail ? error.problem.detail : describe(error)),
    unplaced.length ? h("ul", {}, unplaced.map((item) => h("li", {}, `${item.field}: ${item.message}`))) : null,
    placed.length ? h("p", {}, "Fix: ", placed.map((name, index) => [
      index ? ", " : "",
      h("a", {href: "#", "data-goto": name, onclick: (event) => {
        event.preventDefault();
        focusField(form, name);
      }}, labelOf(form, name)),
    ])) : null,
    extra,
  );
  box.hidden = false;
  box.focus();
}

function focusField(form, name) {
  const control = form.querySelector(`[data-field="${CSS.escape(name)}"]`);
  const target = control?.matches("fieldset") ? control.querySelector("input, select") : control;
  target?.focus();
}

function labelOf(form, name) {
  const control = form.querySelector(`[data-field="${CSS.escape(name)}"]`);
  if (!control) return name;
  if (control.matches("fieldset")) return control.querySelector("legend")?.firstChild?.textContent || name;
  return form.querySelector(`label[for="${CSS.escape(control.id)}"]`)?.firstChild?.textContent || name;
}

function sentence(message, path, name) {
  // The API says what is wrong with the field ("must be true"); name an item of a list ("segments[1]").
  const item = path !== name && /\[\d+\]$/.test(path) ? `Item ${Number(path.match(/\[(\d+)\]$/)[1]) + 1}: ` : "";
  const text = `${item}${message}`;
  return text.charAt(0).toUpperCase() + text.slice(1) + (/[.!?]$/.test(text) ? "" : ".");
}

/** A failed call in words, for people: what the app said, or what went wrong on the way. */
export function describe(error) {
  if (error.status === 0) return error.message;
  const problem = error.problem;
  // App Service Authentication answers 401 itself, without a body, once a sign-in has expired.
  if (!problem && error.status === 401) return "You are not signed in, or your sign-in has expired: reload the page to sign in again.";
  if (!problem) return `The app answered HTTP ${error.status} without saying why. Try again later.`;
  return problem.detail ? `${problem.title}: ${problem.detail}` : problem.title;
}
