// Connections to Omnisend: the list (admins see everything, contributors the shared ones), add, delete.
import {get, post, remove, segment} from "./api.js";
import {fill, h, time} from "./dom.js";
import {choices, checkedValues, describe, field, showProblem, summary} from "./forms.js";

const USABLE_BY = {admins: "Admins only", adminsAndContributors: "Admins and contributors"};

export const PRIVACY_STATEMENT = [
  "When you connect, contact data of the Customer Insights segments you export (email addresses, names, " +
    "postal addresses and tags) is sent to Omnisend and leaves your Customer Insights and Azure environment. " +
    "From then on Omnisend's terms of service and privacy policy govern it, and your organisation's data " +
    "protection obligations apply to its processing there.",
  "You confirm that your organisation may share this data with Omnisend, that the contacts exported have given " +
    "the consent the law requires for the marketing you will send them, and that you will keep Customer " +
    "Insights and Omnisend consistent when contacts withdraw it.",
  "The API key is stored in the app's Key Vault. It is never shown again, not even to admins; exports on " +
    "this connection run as you.",
];

export async function connectionsPage(context) {
  const {data} = await get("connections", {signal: context.signal});
  const admin = context.role === "admin";
  const list = data.connections;
  const page = context.frame("Connections",
    h("p", {class: "intro"}, admin
      ? "A connection holds the API key of one Omnisend store. Exports send contacts through it."
      : "The Omnisend stores admins have shared with contributors. Only admins can add or delete connections."),
    admin ? h("div", {class: "actions"}, h("a", {class: "button primary", href: "#/connections/new"}, "Add connection")) : null,
  );
  if (!list.length) {
    page.append(h("p", {class: "empty"}, admin
      ? "No connections yet. Add one with the API key of your Omnisend store."
      : "No connection is shared with contributors yet. Ask an admin to add one usable by contributors."));
    return;
  }
  const rows = list.map((connection) => admin ? adminRow(context, connection) : h("tr", {},
    h("td", {"data-label": "Connection"}, connection.displayName),
    h("td", {"data-label": "Type"}, "Omnisend"),
  ));
  page.append(h("table", {},
    h("caption", {class: "visually-hidden"}, "Connections"),
    h("thead", {}, h("tr", {}, admin
      ? ["Connection", "Who can use it", "Limits", "Created", "Actions"].map((name) => h("th", {scope: "col"}, name))
      : ["Connection", "Type"].map((name) => h("th", {scope: "col"}, name)))),
    h("tbody", {}, rows),
  ));
}

function adminRow(context, connection) {
  const actions = h("td", {"data-label": "Actions"});
  const showDelete = () => fill(actions, h("div", {class: "row-actions"},
    h("button", {type: "button", class: "danger", "aria-label": `Delete ${connection.displayName}`,
      onclick: () => confirmDelete(context, connection, actions, showDelete)}, "Delete")));
  showDelete();
  const limit = connection.contactLimit ? `${connection.contactLimit.toLocaleString()} contacts a run` : "No contact limit";
  return h("tr", {},
    h("td", {"data-label": "Connection"}, h("strong", {}, connection.displayName), h("br"),
      h("span", {class: "columns"}, `Runs as ${connection.exportUser}`)),
    h("td", {"data-label": "Who can use it"}, USABLE_BY[connection.usableBy] || connection.usableBy),
    h("td", {"data-label": "Limits"}, limit, h("br"),
      h("span", {class: "columns"}, `${connection.requestsPerMinute} requests/min, ${connection.tagRequestsPerMinute} tag calls/min`)),
    h("td", {"data-label": "Created"}, time(connection.createdAt), h("br"), h("span", {class: "columns"}, `by ${connection.createdBy}`)),
    actions,
  );
}

function confirmDelete(context, connection, cell, restore) {
  const yes = h("button", {type: "button", class: "danger", onclick: async () => {
    yes.disabled = true;
    try {
      await remove(`connections/${segment(connection.id)}`);
      context.flash(`Connection “${connection.displayName}” deleted.`);
      context.navigate("#/connections");
    } catch (error) {
      fill(cell, await deleteRefusal(connection, error), h("button", {type: "button", onclick: restore}, "OK"));
      cell.querySelector("button").focus();
    }
  }}, "Delete it");
  const cancel = () => {
    restore();
    cell.querySelector("button").focus();
  };
  const box = h("div", {class: "confirm", role: "group", "aria-label": `Delete ${connection.displayName}?`,
    onkeydown: (event) => { if (event.key === "Escape") cancel(); }},
  h("p", {}, `Delete “${connection.displayName}”? Its API key is deleted too.`),
  h("div", {class: "row-actions"}, yes, h("button", {type: "button", onclick: cancel}, "Cancel")));
  fill(cell, box);
  yes.focus();
}

/** Why a delete was refused; for connection_in_use, the exports that block it, by name. */
async function deleteRefusal(connection, error) {
  if (error.code !== "connection_in_use") return h("p", {class: "problem", role: "alert"}, describe(error));
  const ids = error.problem.exportIds || [];
  let names = new Map();
  try {
    names = new Map((await get("exports")).data.exports.map((item) => [item.id, item.displayName]));
  } catch {
    // the ids alone still say which exports block it
  }
  return h("div", {class: "problem", role: "alert"},
    h("p", {}, `“${connection.displayName}” is used by ${ids.length === 1 ? "an export" : `${ids.length} exports`}. ` +
      "Delete them or move them to another connection first:"),
    h("ul", {}, ids.map((id) => h("li", {}, h("a", {href: `#/exports/${segment(id)}/edit`}, names.get(id) || id)))));
}

export async function connectionForm(context) {
  if (context.role !== "admin") {
    context.frame("Add a connection",
      h("p", {class: "problem", role: "alert"}, "Only admins can add connections. Your role is Contributor: ask an admin to add the connection and make it usable by contributors."),
      h("p", {}, h("a", {href: "#/connections"}, "Back to connections")));
    return;
  }
  const name = h("input", {type: "text", autocomplete: "off", maxlength: "200"});
  const key = h("input", {type: "password", autocomplete: "new-password", spellcheck: "false", maxlength: "500"});
  const usableBy = choices({name: "usableBy", legend: "Who can use it", type: "radio", items: [
    {value: "admins", label: USABLE_BY.admins, checked: true, hint: "(contributors do not see it)"},
    {value: "adminsAndContributors", label: USABLE_BY.adminsAndContributors, hint: "(contributors can build exports on it)"},
  ]});
  const consent = choices({name: "consent", legend: "Data privacy and compliance", items: [
    {value: "yes", label: "I agree"},
  ]});
  consent.insertBefore(h("div", {class: "privacy", tabindex: "0", role: "region", "aria-label": "Data-privacy statement"},
    PRIVACY_STATEMENT.map((text) => h("p", {}, text))), consent.querySelector(".choice"));
  const contactLimit = h("input", {type: "number", min: "1", step: "1", inputmode: "numeric"});
  const rpm = h("input", {type: "number", min: "1", step: "1", value: "400", inputmode: "numeric"});
  const tagRpm = h("input", {type: "number", min: "1", step: "1", value: "60", inputmode: "numeric"});
  const connect = h("button", {type: "submit", class: "primary"}, "Connect");
  const status = h("p", {class: "hint", role: "status"});

  const form = h("form", {novalidate: true, "aria-label": "Add a connection"},
    summary(),
    h("div", {class: "panel"},
      field({name: "displayName", label: "Display name", control: name, required: true,
        hint: "How people will recognise this Omnisend store, e.g. “Webshop EU”."}),
      usableBy,
      field({name: "apiKey", label: "API key", control: key, required: true,
        hint: "Omnisend → Store settings → API keys. Checked with Omnisend when you connect, then never shown again."}),
      h("details", {},
        h("summary", {}, "Limits (optional)"),
        field({name: "contactLimit", label: "Contact limit per run", control: contactLimit,
          hint: "Rows past this many contacts are rejected as contact_limit. Empty: no limit."}),
        field({name: "requestsPerMinute", label: "Requests per minute", control: rpm, hint: "Omnisend allows 400."}),
        field({name: "tagRequestsPerMinute", label: "Tag calls per minute", control: tagRpm, hint: "Omnisend allows 60."})),
      consent),
    h("div", {class: "actions"}, connect, h("a", {class: "button", href: "#/connections"}, "Cancel")),
    status,
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const body = {
      displayName: name.value,
      apiKey: key.value,
      usableBy: checkedValues(usableBy)[0] || "admins",
      consent: checkedValues(consent).includes("yes"),
      requestsPerMinute: whole(rpm.value, 400),
      tagRequestsPerMinute: whole(tagRpm.value, 60),
    };
    if (contactLimit.value.trim()) body.contactLimit = whole(contactLimit.value, null);
    connect.disabled = true;
    form.setAttribute("aria-busy", "true");
    status.textContent = "Checking the key with Omnisend…";
    try {
      const {data} = await post("connections", body);
      key.value = "";
      context.flash(`Connected to Omnisend: “${data.displayName}” is saved.`);
      context.navigate("#/connections");
    } catch (error) {
      status.textContent = "";
      const title = error.code === "omnisend_rejected_key" ? "Omnisend refused the API key"
        : error.code === "consent_required" ? "Agree to the data-privacy statement to connect" : "Not connected";
      showProblem(form, error, {title});
    } finally {
      connect.disabled = false;
      form.removeAttribute("aria-busy");
    }
  });
  context.frame("Add a connection",
    h("p", {class: "intro"}, "Connect an Omnisend store: the key is checked with Omnisend (read only) before anything is saved."),
    form);
}

/** A whole number from a number field; the text itself when it is not one, so the API names the field. */
function whole(text, fallback) {
  const value = text.trim();
  if (!value) return fallback;
  return /^-?\d+$/.test(value) ? Number(value) : value;
}
