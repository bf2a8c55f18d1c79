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

  root.addEventListener("htmx:wsOpen", function () {
    status.textContent = "connected";
  });
  root.addEventListener("htmx:wsClose", function (event) {
    const code = event.detail && event.detail.event ? event.detail.event.code : 0;
    status.textContent = code === 4403 ? "closed: not allowed" : "reconnecting…";
  });

  // Keep at most maxRows rows: new ones arrive at the top.
  root.addEventListener("htmx:wsAfterMessage", function () {
    const rows = document.querySelectorAll("#sd-rows > tr");
    for (let i = maxRows; i < rows.length; i += 1) {
      rows[i].remove();
    }
  });

  // Reflect the filter in the page URL (bookmarkable) and in the socket URL (reconnects keep it).
  filters.addEventListener("htmx:wsConfigSend", function () {
    const params = new URLSearchParams();
    for (const [name, value] of new FormData(filters)) {
      if (name !== "action" && value !== "") {
        params.set(name, value);
      }
    }
    const query = params.toString();
    history.replaceState(null, "", query ? "?" + query : window.location.pathname);
    root.setAttribute("ws-connect", root.dataset.wsPath + (query ? "?" + query : ""));
  });
})();
