// dbfleet console: progressive enhancement of server-rendered pages.
// Every page works without this file; with it:
// - times show in the reader's zone (UTC stays in the title);
// - action forms post in the background and the page's <main> is replaced
//   by the page the server sends back (no full reload, focus kept near);
// - the search answers as you type (debounced);
// - pages marked data-refresh reload their <main> while work runs;
// - "/" focuses the page's search box.
"use strict";

(function () {
  const pad = (n) => String(n).padStart(2, "0");

  function localTimes(root) {
    for (const el of root.querySelectorAll("time[datetime]")) {
      const d = new Date(el.getAttribute("datetime"));
      if (isNaN(d)) continue;
      const utc = el.getAttribute("title") || el.textContent;
      el.textContent = d.getFullYear() + "-" + pad(d.getMonth() + 1) + "-" + pad(d.getDate()) + " " +
        pad(d.getHours()) + ":" + pad(d.getMinutes()) + ":" + pad(d.getSeconds());
      el.setAttribute("title", utc);
    }
  }

  // Replaces the current <main> with the one in `html`.
  function swapMain(html, url) {
    const next = new DOMParser().parseFromString(html, "text/html");
    const fresh = next.querySelector("main");
    const current = document.querySelector("main");
    if (!fresh || !current) {
      window.location.assign(url);
      return;
    }
    current.replaceWith(document.importNode(fresh, true));
    if (next.title) document.title = next.title;
    if (url && url !== window.location.href) history.replaceState(null, "", url);
    init(document.querySelector("main"));
  }

  async function load(url, options) {
    const response = await fetch(url, Object.assign({ credentials: "same-origin" }, options));
    if (new URL(response.url).pathname === "/console/sign-in") {
      window.location.assign(response.url);
      return null;
    }
    return { html: await response.text(), url: response.url };
  }

  document.addEventListener("submit", async (event) => {
    const form = event.target;
    if (!(form instanceof HTMLFormElement) || !form.hasAttribute("data-enhance")) return;
    const confirmText = form.getAttribute("data-confirm");
    if (confirmText && !window.confirm(confirmText)) {
      event.preventDefault();
      return;
    }
    event.preventDefault();
    const submitter = event.submitter;
    const action = (submitter && submitter.getAttribute("formaction")) || form.action;
    const body = new URLSearchParams(new FormData(form, submitter));
    const busy = form.querySelectorAll("button");
    busy.forEach((b) => { b.disabled = true; b.setAttribute("aria-busy", "true"); });
    if (submitter) submitter.dataset.label = submitter.textContent;
    if (submitter) submitter.textContent = submitter.textContent + "…";
    try {
      const answer = await load(action, {
        method: "POST",
        body,
        headers: { "X-CSRFToken": body.get("csrf_token") || "" },
      });
      if (answer) swapMain(answer.html, answer.url);
    } catch (e) {
      busy.forEach((b) => { b.disabled = false; b.removeAttribute("aria-busy"); });
      if (submitter) submitter.textContent = submitter.dataset.label;
      showError("The request did not reach the console: " + e.message);
    }
  });

  function showError(text) {
    const main = document.querySelector("main");
    const p = document.createElement("p");
    p.className = "notice error";
    p.setAttribute("role", "alert");
    p.textContent = text;
    main.prepend(p);
  }

  // Search as you type.
  let searchTimer = null;
  let searchSeq = 0;
  document.addEventListener("input", (event) => {
    const form = event.target.form;
    if (!form || !form.hasAttribute("data-live")) return;
    clearTimeout(searchTimer);
    searchTimer = setTimeout(() => liveSearch(form), 250);
  });
  document.addEventListener("change", (event) => {
    const form = event.target.form;
    if (form && form.hasAttribute("data-live") && event.target.type === "radio") liveSearch(form);
  });

  async function liveSearch(form) {
    const seq = ++searchSeq;
    const params = new URLSearchParams(new FormData(form));
    const pageUrl = form.action + "?" + params.toString();
    params.set("fragment", "1");
    try {
      const answer = await load(form.action + "?" + params.toString());
      if (!answer || seq !== searchSeq) return;
      const results = document.getElementById("results");
      const fresh = new DOMParser().parseFromString(answer.html, "text/html").getElementById("results");
      if (results && fresh) {
        results.replaceWith(document.importNode(fresh, true));
        history.replaceState(null, "", pageUrl);
      }
    } catch (e) {
      showError("Search failed: " + e.message);
    }
  }

  // Refresh while something runs.
  let refreshTimer = null;
  function scheduleRefresh(main) {
    clearTimeout(refreshTimer);
    const every = parseInt(main.getAttribute("data-refresh") || "", 10);
    if (!every) return;
    refreshTimer = setTimeout(async () => {
      try {
        const answer = await load(window.location.href);
        if (answer) swapMain(answer.html, null);
      } catch (e) {
        scheduleRefresh(main);
      }
    }, every);
  }

  document.addEventListener("keydown", (event) => {
    if (event.key !== "/" || event.ctrlKey || event.metaKey || event.altKey) return;
    const tag = (document.activeElement && document.activeElement.tagName) || "";
    if (tag === "INPUT" || tag === "TEXTAREA" || tag === "SELECT") return;
    const box = document.querySelector("main input[type=search]");
    if (box) {
      event.preventDefault();
      box.focus();
    }
  });

  function init(main) {
    localTimes(main);
    scheduleRefresh(main);
  }

  localTimes(document);
  const main = document.querySelector("main");
  if (main) scheduleRefresh(main);
})();
