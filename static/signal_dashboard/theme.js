// Light or dark: the system's choice (prefers-color-scheme) unless this browser chose one with
// the page's toggle, kept in localStorage. Loaded in <head>, before the page is painted.
(function () {
  "use strict";
  const THEME_KEY = "signal-dashboard-theme";

  function storedTheme() {
    try {
      return window.localStorage.getItem(THEME_KEY);
    } catch (error) {
      return null; // storage refused (private windows, policies): follow the system
    }
  }
  const system = window.matchMedia("(prefers-color-scheme: dark)");
  function currentTheme() {
    return document.documentElement.dataset.theme;
  }
  function applyTheme(theme) {
    if (theme !== "light" && theme !== "dark") {
      theme = system.matches ? "dark" : "light";
    }
    document.documentElement.dataset.theme = theme;
    if (themeButton) {
      const next = currentTheme() === "dark" ? "light" : "dark";
      themeButton.textContent = next === "dark" ? "Dark" : "Light";
      themeButton.setAttribute("aria-label", "Switch to " + next + " mode");
    }
  }
  let themeButton = null;
  applyTheme(storedTheme());
  system.addEventListener("change", function () {
    applyTheme(storedTheme());
  });
  document.addEventListener("DOMContentLoaded", function () {
    themeButton = document.getElementById("sd-theme");
    if (!themeButton) {
      return;
    }
    applyTheme(storedTheme());
    themeButton.addEventListener("click", function () {
      const next = currentTheme() === "dark" ? "light" : "dark";
      try {
        window.localStorage.setItem(THEME_KEY, next);
      } catch (error) {
        // not kept, but switched for this page
      }
      applyTheme(next);
    });
  });
})();
