// Exports: the list with connection, segments, triggers and the last run's status; run, edit, delete.
import {get, post, remove, segment} from "./api.js";
import {fill, h, time, uid} from "./dom.js";
import {describe} from "./forms.js";
import {ACTIVE, badge, noRunBadge} from "./status.js";

export function runOnWords(runOn) {
  const words = {schedule: "Schedule", upload: "Upload"};
  return runOn.length ? runOn.map((item) => words[item] || item).join(", ") + " and on demand" : "On demand only";
}

export function scheduleWords(schedule) {
  return schedule ? `Schedule: ${schedule.cron} (${schedule.timeZone})` : "Schedule: the app’s (UTC)";
}

export async function exportsPage(context) {
  const {signal} = context;
  const [exports, connections] = await Promise.all([get("exports", {signal}), get("connections", {signal})]);
  const names = new Map(connections.data.connections.map((item) => [item.id, item.displayName]));
  const list = exports.data.exports;
  const lastRuns = await Promise.all(list.map((item) => get(`exports/${segment(item.id)}/runs`, {signal, query: {limit: 1}})
    .then(({data}) => data.runs[0] || null, () => undefined)));
  const canCreate = connections.data.connections.length > 0;
  const page = context.frame("Exports",
    h("p", {class: "intro"}, "Each export sends the contacts of its segments to Omnisend through a connection, on a schedule, when Customer Insights uploads new data, or when you run it."),
    h("div", {class: "actions"}, canCreate
      ? h("a", {class: "button primary", href: "#/exports/new"}, "New export")
      : h("p", {class: "empty"}, context.role === "admin"
        ? ["To create an export, first ", h("a", {href: "#/connections/new"}, "add a connection"), "."]
        : "No connection is shared with contributors yet, so you cannot create an export. Ask an admin.")),
  );
  if (!list.length) {
    page.append(h("p", {class: "empty"}, "No exports yet."));
    return;
  }
  page.append(h("table", {},
    h("caption", {class: "visually-hidden"}, "Exports"),
    h("thead", {}, h("tr", {}, ["Export", "Connection", "Segments", "Runs on", "Next run", "Last run", "Actions"]
      .map((name) => h("th", {scope: "col"}, name)))),
    h("tbody", {}, list.map((item, index) => exportRow(context, item, names, lastRuns[index]))),
  ));
}

function exportRow(context, item, names, lastRun) {
  const runsHref = `#/exports/${segment(item.id)}/runs`;
  const actions = h("td", {"data-label": "Actions"});
  const message = h("p", {class: "problem", role: "alert", hidden: true});
  const showActions = () => fill(actions, h("div", {class: "row-actions"},
    h("button", {type: "button", class: "primary", "aria-label": `Run now: ${item.displayName}`, onclick: async (event) => {
      event.currentTarget.disabled = true;
      try {
        await post(`exports/${segment(item.id)}/runs`);
        context.flash(`Run of “${item.displayName}” queued.`);
        context.navigate(runsHref);
      } catch (error) {
        message.textContent = error.code === "run_in_progress"
          ? "This export already has a run in progress: see its runs." : describe(error);
        message.hidden = false;
        actions.querySelector("button").disabled = false;
      }
    }}, "Run now"),
    h("a", {class: "button", href: `#/exports/${segment(item.id)}/edit`, "aria-label": `Edit ${item.displayName}`}, "Edit"),
    h("button", {type: "button", class: "danger", "aria-label": `Delete ${item.displayName}`, onclick: () => {
      // Unticked (the default), Omnisend stays as it is; ticked, a run takes the export's tags off first.
      const removeId = uid("remove-tags");
      const removeTags = h("input", {type: "checkbox", id: removeId, "aria-describedby": `${removeId}-hint`});
      const yes = h("button", {type: "button", class: "danger", onclick: async () => {
        yes.disabled = true;
        try {
          const withTags = removeTags.checked;
          await remove(`exports/${segment(item.id)}`, withTags ? {query: {removeTags: "true"}} : undefined);
          context.flash(withTags
            ? `Removing the tags of “${item.displayName}” from Omnisend: the export is deleted when this run succeeds.`
            : `Export “${item.displayName}” deleted.`);
          context.navigate(withTags ? runsHref : "#/exports");
        } catch (error) {
          message.textContent = error.code === "run_in_progress"
            ? "This export has a run in progress: wait for it or cancel it (see its runs), then delete it." : describe(error);
          message.hidden = false;
          showActions();
        }
      }}, "Delete it");
      const cancel = () => {
        showActions();
        actions.querySelector("button").focus();
      };
      fill(actions, h("div", {class: "confirm", role: "group", "aria-label": `Delete ${item.displayName}?`,
        onkeydown: (event) => { if (event.key === "Escape") cancel(); }},
      h("p", {}, `Delete “${item.displayName}”? Its runs in progress are cancelled.`),
      h("div", {class: "choice"}, removeTags,
        h("label", {for: removeTags.id}, "Also remove the tags it added in Omnisend"),
        h("span", {class: "confirm-hint", id: `${removeId}-hint`}, "A run takes them off the contacts it tagged, then deletes the export. Left unticked, Omnisend stays as it is.")),
      h("div", {class: "row-actions"}, yes, h("button", {type: "button", onclick: cancel}, "Cancel"))));
      yes.focus();
    }}, "Delete")), message);
  showActions();
  let last = h("span", {}, "—");
  if (lastRun === null) last = noRunBadge();
  else if (lastRun) {
    last = h("span", {}, badge(lastRun.status), " ", time(lastRun.startedAt));
    if (lastRun.trigger === "delete" && ACTIVE.has(lastRun.status)) {
      last = [last, h("span", {class: "columns"}, h("br"), "Being deleted: its tags are leaving Omnisend")];
    }
  }
  return h("tr", {},
    h("td", {"data-label": "Export"}, h("a", {href: runsHref}, h("strong", {}, item.displayName)),
      item.tagContacts ? null : h("span", {class: "columns"}, h("br"), "Contacts are not tagged")),
    h("td", {"data-label": "Connection"}, names.get(item.connectionId) || item.connectionId),
    h("td", {"data-label": "Segments"}, h("ul", {}, item.segments.map((name) => h("li", {}, name)))),
    h("td", {"data-label": "Runs on"}, runOnWords(item.runOn),
      item.runOn.includes("schedule") ? h("span", {class: "columns"}, h("br"), scheduleWords(item.schedule)) : null),
    h("td", {"data-label": "Next run"}, item.nextRunAt ? time(item.nextRunAt) : h("span", {}, "Not on schedule")),
    h("td", {"data-label": "Last run"}, last),
    actions,
  );
}
