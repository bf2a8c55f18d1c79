// The dashboard page's own behaviour; htmx and its ws extension do the rest.
(function () {
  "use strict";
  const root = document.getElementById("sd-dashboard");
  if (!root) {
    return;
  }
  const status = document.getElementById("sd-status");
  const filters = document.getElementById("sd-filters");
  const maxRows = parseInt(root.dataset.maxRows, 10) || 200;
  const tabs = Array.from(root.querySelectorAll("[data-tab]"));
  const panels = Array.from(root.querySelectorAll("[data-panel]"));
  const downloads = Array.from(root.querySelectorAll(".sd-downloads a[data-base]"));

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

  // Keep at most maxRows rows: new ones arrive at the top.
  root.addEventListener("htmx:wsAfterMessage", function () {
    const rows = document.querySelectorAll("#sd-rows > tr");
    for (let i = maxRows; i < rows.length; i += 1) {
      rows[i].remove();
    }
  });

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
  }
  for (const tab of tabs) {
    tab.addEventListener("click", function (event) {
      event.preventDefault();
      history.replaceState(null, "", window.location.search + "#" + tab.dataset.tab);
      showTab(tab.dataset.tab);
    });
  }
  showTab(window.location.hash.slice(1));

  // Reflect the filter in the page URL (bookmarkable), the socket URL (reconnects keep it) and
  // the download links (they export what the page shows).
  filters.addEventListener("htmx:wsConfigSend", function () {
    const params = new URLSearchParams();
    for (const [name, value] of new FormData(filters)) {
      if (name !== "action" && value !== "") {
        params.set(name, value);
      }
    }
    const query = params.toString() ? "?" + params.toString() : "";
    history.replaceState(null, "", (query || window.location.pathname) + window.location.hash);
    root.setAttribute("ws-connect", root.dataset.wsPath + query);
    for (const link of downloads) {
      link.href = link.dataset.base + query;
    }
  });
})();
