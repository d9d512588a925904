// Runs of one export, newest first: status, counts, live progress while running, cancel, rejects,
// tag removals held by the removal gate and their approval; "Run now" in a chosen mode (incremental,
// full, preview) and a preview's report.
import {get, post, segment} from "./api.js";
import {fill, h, plural, time, uid} from "./dom.js";
import {describe} from "./forms.js";
import {runOnWords} from "./exports.js";
import {previewReport} from "./preview.js";
import {ACTIVE, MODES, STATUS, TRIGGERS, badge} from "./status.js";

const POLL_MS = 1000;
const LIMIT = 25;

export async function runsPage(context, exportId) {
  const {signal} = context;
  const path = `exports/${segment(exportId)}`;
  let exportAnswer, runsAnswer;
  try {
    [exportAnswer, runsAnswer] = await Promise.all([get(path, {signal}), get(`${path}/runs`, {signal, query: {limit: LIMIT}})]);
  } catch (error) {
    if (error.code !== "export_not_found") throw error;
    context.frame("Export not found",
      h("p", {}, "This export does not exist, or no longer: deleting an export with its tags deletes it once the run removing them has succeeded."),
      h("p", {}, h("a", {href: "#/exports"}, "All exports")));
    return;
  }
  const item = exportAnswer.data;
  const message = h("p", {class: "problem", role: "alert", hidden: true});
  const tbody = h("tbody");
  const empty = h("p", {class: "empty"}, "No runs yet. “Run now” starts one; so do the export's triggers.");
  const table = h("table", {},
    h("caption", {class: "visually-hidden"}, `Runs of ${item.displayName}, newest first`),
    h("thead", {}, h("tr", {}, ["Started", "Status", "Progress", "Rows", "Finished", "Actions"].map((name) => h("th", {scope: "col"}, name)))),
    tbody);
  const modeId = uid("mode");
  const mode = h("select", {id: modeId, name: "mode"},
    h("option", {value: ""}, "Incremental: only what changed"),
    h("option", {value: "full"}, "Full: resend every row"),
    h("option", {value: "preview"}, "Preview: send nothing, report"));
  const report = h("div", {class: "preview-slot"});
  const runNow = h("button", {type: "button", class: "primary", onclick: async () => {
    runNow.disabled = true;
    message.hidden = true;
    try {
      const {data} = await post(`${path}/runs`, mode.value ? {mode: mode.value} : undefined);
      context.announce(`Run queued.`);
      await refresh();
      tbody.querySelector(`tr[data-run-id="${CSS.escape(data.runId)}"] [data-cell="status"]`)?.focus();
    } catch (error) {
      message.textContent = error.code === "run_in_progress"
        ? "This export already has a run in progress (below): wait for it or cancel it." : describe(error);
      message.hidden = false;
    } finally {
      runNow.disabled = false;
    }
  }}, "Run now");

  const actions = h("div", {class: "actions"}, h("label", {for: modeId}, "Mode"), mode, runNow,
    h("a", {class: "button", href: `#/${path}/edit`}, "Edit export"), h("a", {class: "button", href: "#/exports"}, "All exports"));
  const gone = h("p", {class: "notice", role: "status", hidden: true});
  context.frame(`Runs of “${item.displayName}”`,
    h("p", {class: "intro"}, `${item.segments.join(", ")} → Omnisend. Runs on: ${runOnWords(item.runOn)}.`),
    actions, gone, message, empty, table, report);

  const rows = new Map();
  let timer = null;

  function show(runs) {
    empty.hidden = runs.length > 0;
    table.hidden = runs.length === 0;
    runs.forEach((run, index) => {
      let row = rows.get(run.runId);
      if (!row) {
        row = new RunRow(run, context, message, refresh, report);
        rows.set(run.runId, row);
      }
      row.update(run);
      if (tbody.children[index] !== row.element) tbody.insertBefore(row.element, tbody.children[index] || null);
    });
    if (runs.some((run) => ACTIVE.has(run.status) || applying(run) || leaving(run))) poll(POLL_MS);
  }

  function poll(delay) {
    if (signal.aborted) return;
    window.clearTimeout(timer);
    timer = window.setTimeout(async () => {
      try {
        await refresh();
        if (message.dataset.polling) {
          message.hidden = true;
          delete message.dataset.polling;
        }
      } catch (error) {
        if (signal.aborted) return;
        message.textContent = `The runs could not be refreshed (${describe(error)}); trying again.`;
        message.dataset.polling = "failed";
        message.hidden = false;
        poll(delay * 2 > 30000 ? 30000 : delay * 2);
      }
    }, delay);
  }

  async function refresh() {
    if (signal.aborted) return;
    let answer;
    try {
      answer = await get(`${path}/runs`, {signal, query: {limit: LIMIT}});
    } catch (error) {
      if (error.code !== "export_not_found") throw error;
      await deleted();
      return;
    }
    show(answer.data.runs);
  }

  // A `delete` run that succeeded took the export with it; its runs stay readable one by one.
  async function deleted() {
    const open = [...rows.values()].filter((row) => ACTIVE.has(row.run.status));
    const runs = await Promise.all(open.map((row) => get(`runs/${segment(row.runId)}`, {signal})));
    runs.forEach(({data}) => rows.get(data.runId).update(data));
    actions.hidden = true;
    gone.replaceChildren(`“${item.displayName}” is deleted: its tags were taken off Omnisend's contacts. `,
      h("a", {href: "#/exports"}, "All exports"));
    gone.hidden = false;
  }

  signal.addEventListener("abort", () => window.clearTimeout(timer));
  show(runsAnswer.data.runs);
}

function applying(run) {
  return run.removalsApproved?.status === "applying";
}

// A `delete` run shows as succeeded a moment before its export is deleted: until the export's runs
// answer `export_not_found`, there is more to see.
function leaving(run) {
  return run.trigger === "delete" && run.status === "succeeded";
}

// The removals a run held: approvable unless approved already (a failed approval may be repeated).
function approvable(run) {
  return Boolean(run.removalsHeld) && (!run.removalsApproved || run.removalsApproved.status === "failed");
}

function heldNotes(run) {
  const held = run.removalsHeld;
  if (!held) return [];
  const tags = held.tags.map((tag) => `“${tag.tag}”: ${plural(tag.leavers, "contact")} left its segment (${tag.percent}% of ${(tag.members + tag.leavers).toLocaleString()})`);
  const notes = [h("p", {class: "held"}, `Tag removals held, over ${held.maxRemovalPercent}%: ${tags.join("; ")}. They keep the tag until approved.`)];
  const approved = run.removalsApproved;
  if (approved) {
    const words = {
      applying: `Approved by ${approved.by}: removing the tags…`,
      applied: `Approved by ${approved.by}: ${plural(approved.removed, "contact")} lost the tag.`,
      failed: `Approved by ${approved.by}, but the removals failed: ${approved.error || "see the run's log"}`,
    }[approved.status] || approved.status;
    notes.push(h("p", {class: "approval", role: "status"}, words));
  }
  return notes;
}

class RunRow {
  constructor(run, context, message, refresh, report) {
    this.runId = run.runId;
    this.startedAt = run.startedAt;
    this.report = report;
    this.trigger = h("span", {class: "columns"});
    this.status = h("td", {"data-label": "Status", "data-cell": "status", tabindex: "-1"});
    this.progress = h("td", {"data-label": "Progress"});
    this.counts = h("td", {"data-label": "Rows"});
    this.finished = h("td", {"data-label": "Finished"});
    this.actions = h("td", {"data-label": "Actions"});
    this.message = message;
    this.refresh = refresh;
    this.actionsKey = null;
    this.element = h("tr", {"data-run-id": run.runId},
      h("td", {"data-label": "Started"}, time(run.startedAt), h("br"), this.trigger),
      this.status, this.progress, this.counts, this.finished, this.actions);
  }

  update(run) {
    this.run = run;
    const preview = run.mode === "preview";
    this.trigger.textContent = `${TRIGGERS[run.trigger] || run.trigger} · ${MODES[run.mode] || run.mode}`;
    let [, words] = STATUS[run.status] || [run.status, ""];
    if (preview && run.status === "succeeded") words = "a preview: nothing was sent; see its report";
    if (run.removalsHeld && run.counts.rejected + run.counts.failed === 0) words = "tag removals over the export's limit wait for approval";
    fill(this.status, badge(run.status), h("br"), h("span", {class: "columns"}, words),
      run.error ? h("p", {class: "run-error"}, run.error) : null);
    const percent = Math.floor(run.progress * 100);
    const bar = this.progress.querySelector("progress") || h("progress", {max: "100", "aria-label": `Progress of the run started ${new Date(run.startedAt).toLocaleString()}`});
    bar.value = percent;
    const label = this.progress.querySelector(".percent") || h("span", {class: "percent"});
    label.textContent = `${percent}%`;
    if (!this.progress.firstChild) this.progress.append(h("div", {class: "progress"}, bar, label));
    const counts = run.counts;
    fill(this.counts, h("p", {class: "counts"},
      preview ? `${plural(counts.rows, "row")} read, ${counts.rejected.toLocaleString()} would be rejected; nothing sent`
        : `${plural(counts.rows, "row")}: ${counts.sent.toLocaleString()} sent, ${counts.rejected.toLocaleString()} rejected, ${counts.failed.toLocaleString()} failed`,
      run.untagged ? `; ${plural(run.untagged, "contact")} lost a segment tag` : ""), ...heldNotes(run));
    fill(this.finished, time(run.finishedAt));

    const active = ACTIVE.has(run.status);
    const hasRejects = counts.rejected + counts.failed > 0;
    const approve = approvable(run);
    const hasReport = preview && run.status === "succeeded";
    const key = `${active}/${hasRejects}/${approve}/${hasReport}`;
    if (key === this.actionsKey) return;
    const hadFocus = this.actions.contains(document.activeElement);
    this.actionsKey = key;
    const buttons = [];
    if (active) buttons.push(h("button", {type: "button", class: "danger", onclick: (event) => this.cancel(event.currentTarget)}, "Cancel run"));
    if (approve) buttons.push(h("button", {type: "button", class: "primary", onclick: (event) => this.approve(event.currentTarget)}, "Approve removals"));
    if (hasReport) buttons.push(h("button", {type: "button", onclick: (event) => this.showReport(event.currentTarget)}, "Show preview report"));
    if (hasRejects) buttons.push(h("button", {type: "button", onclick: (event) => this.download(event.currentTarget)}, "Download rejects (CSV)"));
    fill(this.actions, buttons.length ? h("div", {class: "row-actions"}, buttons) : h("span", {class: "columns"}, active ? "" : "No rejects"));
    if (hadFocus) (this.actions.querySelector("button") || this.status).focus();
  }

  async cancel(button) {
    button.disabled = true;
    try {
      await post(`runs/${segment(this.runId)}/cancel`);
      await this.refresh();
    } catch (error) {
      this.message.textContent = describe(error);
      this.message.hidden = false;
      button.disabled = false;
    }
  }

  async approve(button) {
    button.disabled = true;
    try {
      await post(`runs/${segment(this.runId)}/approve-removals`);
      await this.refresh();
    } catch (error) {
      this.message.textContent = describe(error);
      this.message.hidden = false;
      button.disabled = false;
    }
  }

  async showReport(button) {
    button.disabled = true;
    try {
      const {data} = await get(`runs/${segment(this.runId)}/preview`);
      fill(this.report, previewReport(data, ["Preview of the run started ", time(this.startedAt)]));
      this.report.querySelector("h2").focus();
    } catch (error) {
      this.message.textContent = describe(error);
      this.message.hidden = false;
    } finally {
      button.disabled = false;
    }
  }

  async download(button) {
    button.disabled = true;
    try {
      const {data} = await get(`runs/${segment(this.runId)}/rejects`);
      const url = URL.createObjectURL(data);
      const link = h("a", {href: url, download: `rejects-${this.runId}.csv`, hidden: true});
      document.body.append(link);
      link.click();
      link.remove();
      window.setTimeout(() => URL.revokeObjectURL(url), 10000);
    } catch (error) {
      this.message.textContent = describe(error);
      this.message.hidden = false;
    } finally {
      button.disabled = false;
    }
  }
}
