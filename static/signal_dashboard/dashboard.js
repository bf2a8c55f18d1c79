// The dashboard page's own behaviour; htmx and its ws extension do the rest.
(function () {
  "use strict";
  const root = document.getElementById("sd-dashboard");
  if (!root) {
    return;
  }
  const status = document.getElementById("sd-status");
  const filters = document.getElementById("sd-filters");
  const hideForm = document.getElementById("sd-hide");
  const rowsBody = document.getElementById("sd-rows");
  const empty = document.getElementById("sd-empty");
  const layout = document.getElementById("sd-layout");
  const detail = document.getElementById("sd-detail");
  const help = document.getElementById("sd-help");
  const maxRows = parseInt(root.dataset.maxRows, 10) || 200;
  const tabs = Array.from(root.querySelectorAll("[data-tab]"));
  const panels = Array.from(root.querySelectorAll("[data-panel]"));
  const eventsLink = document.getElementById("sd-download-events");
  const statsLink = document.getElementById("sd-download-stats");
  const baseTitle = "Signal dashboard";
  let paused = false;

  root.addEventListener("htmx:wsOpen", function () {
    status.textContent = "connected";
  });
  root.addEventListener("htmx:wsClose", function (event) {
    const code = event.detail && event.detail.event ? event.detail.event.code : 0;
    if (code === 4403) {
      status.textContent = "closed: not allowed";
    } else if (code === 4503) {
      status.textContent = "transport down: reconnecting…";
    } else {
      status.textContent = "reconnecting…";
    }
  });

  // The state the server accepted (templates/signal_dashboard/_state.html): only then do the
  // page URL (bookmarkable), the socket URL (reconnects keep it) and the download links change.
  function applyState() {
    const state = document.getElementById("sd-state");
    if (!state) {
      return;
    }
    const page = state.dataset.page || "";
    history.replaceState(null, "", (page || window.location.pathname) + window.location.hash);
    root.setAttribute("ws-connect", root.dataset.wsPath + page);
    eventsLink.href = eventsLink.dataset.base + (state.dataset.events || "");
    statsLink.href = statsLink.dataset.base + (state.dataset.stats || "");
    const active = state.dataset.active === "true";
    empty.textContent = active
      ? "No events match the filter (" + state.dataset.words + ")."
      : "No events yet: they appear here as your project sends signals.";
    updateTitle();
  }

  function updateTitle() {
    const state = document.getElementById("sd-state");
    const selected = tabs.find((tab) => tab.getAttribute("aria-selected") === "true");
    const what = selected ? selected.textContent.trim() : "Stream";
    const words = state && state.dataset.active === "true" ? " · " + state.dataset.words : "";
    document.title = what + words + " · " + baseTitle;
  }

  // After every message: no row twice (a re-rendered stream may already hold a pushed row), at
  // most maxRows rows (new ones arrive at the top), and a word when there is none.
  function tidyRows() {
    const seen = new Set();
    let kept = 0;
    for (const row of Array.from(rowsBody.children)) {
      const id = row.dataset.id;
      if ((id && seen.has(id)) || kept >= maxRows) {
        row.remove();
        continue;
      }
      seen.add(id);
      kept += 1;
    }
    empty.hidden = kept > 0;
    // Senders new to this socket may be on the list the page was made with already.
    const listed = new Set();
    for (const option of Array.from(document.getElementById("sd-senders").children)) {
      if (listed.has(option.value)) {
        option.remove();
      } else {
        listed.add(option.value);
      }
    }
  }

  // The staff's recording switch says what pressing it would do.
  function applyRecording() {
    const state = document.getElementById("sd-recording-state");
    const form = document.getElementById("sd-recording");
    if (!state || !form) {
      return;
    }
    const on = state.dataset.on === "true";
    form.elements.on.value = on ? "false" : "true";
    document.getElementById("sd-recording-toggle").textContent = on
      ? "Stop recording"
      : "Start recording";
  }
  document.body.addEventListener("htmx:oobAfterSwap", applyRecording);

  root.addEventListener("htmx:wsAfterMessage", function () {
    tidyRows();
    applyState();
    applyRecording();
    const held = document.getElementById("sd-held");
    paused = Boolean(held) && !held.hidden;
    applyPaused();
  });

  // One button pauses and resumes: it says what pressing it does, and is pressed while paused.
  function applyPaused() {
    const form = document.getElementById("sd-pausing");
    const button = document.getElementById("sd-pause");
    form.elements.action.value = paused ? "resume" : "pause";
    button.textContent = paused ? "Resume" : "Pause";
    button.setAttribute("aria-pressed", paused ? "true" : "false");
    button.title = paused
      ? "Show the held-back events and go on (p)"
      : "Stop updating the page; events are held back (p)";
  }

  // Tabs: one panel shown at a time, named in the URL's fragment.
  function showTab(name) {
    if (!panels.some((panel) => panel.dataset.panel === name)) {
      name = "stream";
    }
    for (const panel of panels) {
      panel.hidden = panel.dataset.panel !== name;
    }
    for (const tab of tabs) {
      tab.setAttribute("aria-selected", String(tab.dataset.tab === name));
    }
    updateTitle();
  }
  for (const tab of tabs) {
    tab.addEventListener("click", function (event) {
      event.preventDefault();
      showTab(tab.dataset.tab);
      setFragment();
    });
  }

  // The URL's fragment: the tab, and on the Requests tab the request open there
  // (#requests/42).
  function setFragment() {
    const selected = tabs.find((tab) => tab.getAttribute("aria-selected") === "true");
    let fragment = selected ? selected.dataset.tab : "stream";
    if (fragment === "requests" && selectedRequest) {
      fragment += "/" + selectedRequest;
    }
    history.replaceState(null, "", window.location.search + "#" + fragment);
  }
  function followFragment() {
    const [name, request] = window.location.hash.slice(1).split("/");
    showTab(name);
    if (name === "requests" && request && request !== selectedRequest) {
      openRequest(request);
    }
  }

  // The request list. A click opens a request's waterfall and selects it; while a request is
  // selected or the pointer is over the list, newer lists are held (their new requests counted)
  // so that nothing moves under the eye; a changed filter or sort is shown at once.
  const requestDetail = document.getElementById("sd-request-detail");
  const requestTools = document.getElementById("sd-request-tools");
  const requestsWrap = document.getElementById("sd-requests-wrap");
  const heldNote = document.getElementById("sd-requests-held");
  let selectedRequest = null;
  let heldTable = null;
  let pointerOnRequests = false;
  let showNextTables = false;

  function markRequest() {
    for (const row of document.querySelectorAll("#sd-request-rows > tr")) {
      const selected = row.dataset.id === selectedRequest;
      row.classList.toggle("sd-selected", selected);
      if (selected) {
        row.setAttribute("aria-selected", "true");
      } else {
        row.removeAttribute("aria-selected");
      }
    }
    requestTools.hidden = selectedRequest === null;
  }
  function openRequest(id) {
    selectedRequest = id;
    markRequest();
    setFragment();
    const url = requestDetail.dataset.url.replace(/0\/$/, id + "/");
    htmx.ajax("GET", url, { source: requestDetail, target: requestDetail, swap: "innerHTML" });
  }
  function closeRequest() {
    selectedRequest = null;
    requestDetail.replaceChildren();
    markRequest();
    setFragment();
    if (!pointerOnRequests) {
      showHeldRequests();
    }
  }
  function showHeldRequests() {
    if (heldTable) {
      heldTable.removeAttribute("hx-swap-oob");
      document.getElementById("sd-requests").replaceWith(heldTable);
      htmx.process(heldTable);
      heldTable = null;
    }
    heldNote.hidden = true;
    markRequest();
  }
  root.addEventListener("htmx:oobBeforeSwap", function (event) {
    if (event.detail.target.id !== "sd-requests") {
      return;
    }
    if (showNextTables || !(pointerOnRequests || selectedRequest)) {
      showNextTables = false;
      heldTable = null;
      heldNote.hidden = true;
      return;
    }
    event.detail.shouldSwap = false;
    heldTable = event.detail.fragment.querySelector("#sd-requests");
    const shown = new Set(
      Array.from(document.querySelectorAll("#sd-request-rows > tr"), (row) => row.dataset.id)
    );
    const added = Array.from(heldTable.querySelectorAll("#sd-request-rows > tr[data-id]")).filter(
      (row) => !shown.has(row.dataset.id)
    ).length;
    heldNote.firstElementChild.textContent =
      added === 0
        ? "The list is held while a request is open or the pointer is over it."
        : added + " newer request" + (added === 1 ? " is" : "s are") + " held while a request " +
          "is open or the pointer is over the list.";
    heldNote.hidden = false;
  });
  root.addEventListener("htmx:oobAfterSwap", function (event) {
    if (event.detail.target && event.detail.target.id === "sd-requests") {
      markRequest();
    }
  });
  // A new filter or sort is the person's own doing: its tables are shown at once.
  root.addEventListener("htmx:wsConfigSend", function (event) {
    const action = event.detail.parameters && event.detail.parameters.action;
    if (["filter", "hide", "table"].includes(action)) {
      showNextTables = true;
    }
  });
  requestsWrap.addEventListener("mouseenter", function () {
    pointerOnRequests = true;
  });
  requestsWrap.addEventListener("mouseleave", function () {
    pointerOnRequests = false;
    if (!selectedRequest) {
      showHeldRequests();
    }
  });
  requestsWrap.addEventListener("click", function (event) {
    const row = event.target.closest("#sd-request-rows > tr[data-id]");
    if (row) {
      openRequest(row.dataset.id);
    }
  });
  document.getElementById("sd-requests-show").addEventListener("click", showHeldRequests);
  document.getElementById("sd-request-close").addEventListener("click", closeRequest);
  // A detail that cannot be shown says why, in the server's words: gone from the buffer
  // (410), or the backend unreachable (503).
  root.addEventListener("htmx:responseError", function (event) {
    const target = event.detail.target;
    if (target !== requestDetail && target !== detail) {
      return;
    }
    const status = event.detail.xhr.status;
    const message = document.createElement("p");
    message.className = "sd-muted";
    message.textContent =
      status === 410 || status === 503
        ? event.detail.xhr.responseText
        : "That could not be shown (HTTP " + status + ").";
    target.replaceChildren(message);
    if (target === detail) {
      layout.classList.add("sd-open");
    }
  });

  // A detail opened from a table is brought to where the person is looking, and focused; the
  // stream's detail opens beside the stream.
  root.addEventListener("htmx:afterSwap", function (event) {
    const target = event.detail.target;
    if (target === detail) {
      layout.classList.add("sd-open");
    } else if (target === requestDetail || target.id === "sd-receiver-detail") {
      target.scrollIntoView({ block: "start" });
      target.focus({ preventScroll: true });
    }
  });

  followFragment();
  // A fragment edited in the address bar (or the browser's back button) is followed too.
  window.addEventListener("hashchange", followFragment);
  applyState();
  tidyRows();

  // Hiding: a signal, sender or receiver joins the page filter (and its URL).
  function hide(field, label) {
    hideForm.elements.field.value = field;
    hideForm.elements.label.value = label;
    htmx.trigger(hideForm, "submit");
  }
  function submitFilters() {
    htmx.trigger(filters, "submit");
  }
  root.addEventListener("click", function (event) {
    const hideButton = event.target.closest("[data-hide-field]");
    if (hideButton) {
      hide(hideButton.dataset.hideField, hideButton.dataset.hideLabel);
      return;
    }
    const unhide = event.target.closest(".sd-unhide");
    if (unhide) {
      const chip = unhide.closest(".sd-chip");
      const input = document.querySelector(
        '#sd-state input[name="' + chip.dataset.field + '"]'
      );
      input.value = input.value
        .split(",")
        .filter((label) => label && label !== chip.dataset.label)
        .join(",");
      submitFilters();
      return;
    }
    const row = event.target.closest("#sd-rows > tr");
    if (row) {
      select(row);
    }
  });
  document.getElementById("sd-hide-requests").addEventListener("click", function (event) {
    for (const label of event.currentTarget.dataset.labels.split(",")) {
      const input = document.querySelector('#sd-state input[name="hide_signals"]');
      const labels = input.value ? input.value.split(",") : [];
      if (!labels.includes(label)) {
        labels.push(label);
      }
      input.value = labels.join(",");
    }
    submitFilters();
  });
  document.getElementById("sd-clear-filters").addEventListener("click", function () {
    for (const input of filters.querySelectorAll("input[type=text], input[type=number]")) {
      input.value = "";
    }
    filters.querySelector("[name=errors_only]").checked = false;
    for (const input of document.querySelectorAll("#sd-state input")) {
      input.value = "";
    }
    submitFilters();
  });

  // The selected row: marked, moved with j/k, opened with Enter or a click.
  function select(row) {
    for (const marked of rowsBody.querySelectorAll("tr.sd-selected")) {
      marked.classList.remove("sd-selected");
      marked.removeAttribute("aria-selected");
    }
    if (row) {
      row.classList.add("sd-selected");
      row.setAttribute("aria-selected", "true");
      row.scrollIntoView({ block: "nearest" });
    }
  }
  function move(step) {
    const rows = Array.from(rowsBody.children);
    if (!rows.length) {
      return;
    }
    const current = rows.findIndex((row) => row.classList.contains("sd-selected"));
    const next = current < 0 ? 0 : Math.min(rows.length - 1, Math.max(0, current + step));
    select(rows[next]);
  }
  function closeDetail() {
    layout.classList.remove("sd-open");
    detail.replaceChildren();
    select(null);
  }
  document.getElementById("sd-close").addEventListener("click", closeDetail);
  document.getElementById("sd-widen").addEventListener("click", function (event) {
    const wide = layout.classList.toggle("sd-wide");
    event.currentTarget.setAttribute("aria-pressed", String(wide));
    event.currentTarget.textContent = wide ? "Narrow" : "Widen";
  });

  // Keyboard shortcuts, listed in the help dialog (?); never while typing in a field.
  document.getElementById("sd-help-open").addEventListener("click", function () {
    help.showModal();
  });
  document.addEventListener("keydown", function (event) {
    const target = event.target;
    const typing =
      target instanceof HTMLElement &&
      (target.isContentEditable || ["INPUT", "SELECT", "TEXTAREA"].includes(target.tagName));
    if (event.key === "Escape") {
      if (typing) {
        target.blur();
      } else if (help.open) {
        return;
      } else if (!requestDetail.closest("[data-panel]").hidden) {
        closeRequest();
      } else {
        closeDetail();
      }
      return;
    }
    if (typing || event.altKey || event.ctrlKey || event.metaKey || help.open) {
      return;
    }
    const selected = rowsBody.querySelector("tr.sd-selected");
    switch (event.key) {
      case "/":
        event.preventDefault();
        filters.querySelector("[name=sender]").focus();
        break;
      case "p":
        document.getElementById("sd-pause").click();
        break;
      case "j":
        move(1);
        break;
      case "k":
        move(-1);
        break;
      case "Enter":
        if (selected) {
          selected.click();
        }
        break;
      case "?":
        help.showModal();
        break;
      default:
        return;
    }
  });
})();
