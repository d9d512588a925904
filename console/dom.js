// Building the page: elements from data, never from HTML strings (no innerHTML with API data).

/** An element: h("a", {href: "#/x", class: "button"}, "text", child, [more, children]). */
export function h(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith("on") && typeof value === "function") {
      element.addEventListener(name.slice(2), value);
    } else if (name === "class") {
      element.className = value;
    } else if (name === "value" || name === "checked" || name === "selected" || name === "disabled") {
      element[name] = value;
      if (name !== "value") element.toggleAttribute(name, Boolean(value));
    } else {
      element.setAttribute(name, value === true ? "" : String(value));
    }
  }
  append(element, children);
  return element;
}

export function append(parent, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    parent.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return parent;
}

/** Replace the children of `parent` (nulls skipped, arrays flattened). */
export function fill(parent, ...children) {
  parent.replaceChildren();
  return append(parent, children);
}

let lastId = 0;
/** A document-unique id for label/aria wiring. */
export function uid(prefix = "id") {
  lastId += 1;
  return `${prefix}-${lastId}`;
}

/** "2026-11-28T02:00:00Z" -> local date and time in words the reader's browser prefers. */
export function when(iso) {
  if (!iso) return "";
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return iso;
  return date.toLocaleString(undefined, {dateStyle: "medium", timeStyle: "short"});
}

/** A <time> element for an ISO timestamp. */
export function time(iso) {
  return iso ? h("time", {datetime: iso}, when(iso)) : h("span", {}, "—");
}

export function plural(count, one, many = `${one}s`) {
  return `${count.toLocaleString()} ${count === 1 ? one : many}`;
}
