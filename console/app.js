// The console's shell: who is calling (GET /api/me), the hash router, page frame.
import {ApiError, get} from "./api.js";
import {append, h} from "./dom.js";
import {connectionForm, connectionsPage} from "./connections.js";
import {exportForm} from "./exportform.js";
import {exportsPage} from "./exports.js";
import {describe} from "./forms.js";
import {runsPage} from "./runs.js";
import {segmentsPage} from "./segments.js";

const APP_NAME = "Omnisend exports";
const SIGN_IN = "/.auth/login/aad?post_login_redirect_uri=/";

const routes = [
  [/^#\/exports$/, exportsPage],
  [/^#\/exports\/new$/, (context) => exportForm(context, null)],
  [/^#\/exports\/([^/]+)\/edit$/, exportForm],
  [/^#\/exports\/([^/]+)\/runs$/, runsPage],
  [/^#\/segments$/, segmentsPage],
  [/^#\/connections$/, connectionsPage],
  [/^#\/connections\/new$/, connectionForm],
];

const main = document.getElementById("main");
const nav = document.querySelector("nav.main-nav");
const announcer = document.getElementById("announcer");
let caller = null; // {identity, role: "admin" | "contributor"}, as GET /api/me answers
let current = null; // AbortController of the page on screen
let pendingFlash = null;
let firstPage = true;
let listening = false;

/** Who is calling: GET /api/me (401 without a sign-in, 403 without an app role). */
async function whoIsCalling() {
  const {data} = await get("me");
  return data;
}

function announce(text) {
  announcer.textContent = "";
  window.setTimeout(() => { announcer.textContent = text; }, 50);
}

function flash(text) {
  pendingFlash = text;
}

function navigate(hash) {
  if (window.location.hash === hash) render();
  else window.location.hash = hash;
}

/** Start a page: title, heading (focused after navigation), the flash message of the last action. */
function frame(title, ...content) {
  document.title = `${title} · ${APP_NAME}`;
  const heading = h("h1", {tabindex: "-1"}, title);
  const notice = pendingFlash ? h("p", {class: "notice", role: "status"}, pendingFlash) : null;
  pendingFlash = null;
  main.replaceChildren();
  append(main, [heading, notice, content]);
  if (!firstPage) heading.focus();
  firstPage = false;
  return main;
}

function markNavigation(hash) {
  for (const link of nav.querySelectorAll("a")) {
    const section = link.getAttribute("href");
    if (hash === section || hash.startsWith(`${section}/`)) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
}

async function render() {
  current?.abort();
  current = new AbortController();
  const hash = window.location.hash;
  if (!hash.startsWith("#/")) {
    window.location.replace("#/exports");
    return;
  }
  markNavigation(hash);
  const context = {main, role: caller.role, signal: current.signal, frame, flash, navigate, announce};
  for (const [pattern, page] of routes) {
    const match = hash.match(pattern);
    if (!match) continue;
    try {
      await page(context, ...match.slice(1).map(decodeURIComponent));
    } catch (error) {
      if (error.name === "AbortError" || context.signal.aborted) return;
      frame("Something went wrong", h("p", {class: "problem", role: "alert"}, describe(error)),
        h("p", {}, h("a", {href: "#/exports"}, "Back to exports")));
    }
    return;
  }
  frame("Page not found", h("p", {}, "There is no page at this address. "), h("a", {href: "#/exports"}, "Go to exports"));
}

// --- screens for callers who cannot use the console yet ------------------------------------------

function withoutNavigation(title, ...content) {
  nav.hidden = true;
  frame(title, ...content);
}

function signedOutScreen(error) {
  withoutNavigation("Sign in to use the console",
    h("p", {}, "The app does not know who you are, so it shows nothing. In Azure, sign in with your work account: ",
      h("a", {href: SIGN_IN}, "Sign in"), "."),
    h("p", {}, "Running it locally? The dev host signs every request in as a local user unless it was started with ",
      h("code", {}, "--no-principal"), "."),
    h("p", {class: "problem"}, "The app said: ", describe(error)));
}

function noRoleScreen(error) {
  withoutNavigation("You have no role in this app",
    h("p", {}, "You are signed in, but your account has neither of the app's two roles, so the app shows you nothing:"),
    h("ul", {},
      h("li", {}, h("strong", {}, "Exports.Admin"), ": manages connections to Omnisend, and every export and run."),
      h("li", {}, h("strong", {}, "Exports.Contributor"), ": creates, changes and runs exports on the connections admins share.")),
    h("p", {}, "Ask an administrator of your Microsoft Entra tenant to assign you one (Enterprise applications → the app's registration → Users and groups), then reload this page."),
    h("p", {class: "problem"}, "The app said: ", describe(error)));
}

function unavailableScreen(error) {
  withoutNavigation("The app cannot be reached",
    h("p", {class: "problem", role: "alert"}, describe(error)),
    h("p", {}, h("button", {type: "button", onclick: () => boot()}, "Try again")));
}

// --- start ----------------------------------------------------------------------------------------

async function boot() {
  try {
    caller = await whoIsCalling();
  } catch (error) {
    if (!(error instanceof ApiError)) throw error;
    if (error.status === 401) signedOutScreen(error);
    else if (error.status === 403) noRoleScreen(error);
    else unavailableScreen(error);
    return;
  }
  nav.hidden = false;
  document.getElementById("who").textContent = `${caller.identity} · ${caller.role === "admin" ? "Admin" : "Contributor"}`;
  document.body.dataset.role = caller.role;
  if (!listening) window.addEventListener("hashchange", render);
  listening = true;
  render();
}

document.querySelector(".skip-link").addEventListener("click", (event) => {
  event.preventDefault();
  (main.querySelector("h1") || main).focus();
});

boot();
