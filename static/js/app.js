/* The page chrome on every page: the sidebar drawer (phones), the theme toggle, Django messages as toasts,
 * keyboard shortcuts (/ search, a Add download, Esc closes), and the live connection state on pages whose
 * own script does not open the event stream. Loaded last (defer), after the page's scripts. */
(function () {
  "use strict";

  const F = window.Flotilla;
  const root = document.documentElement;

  // --- theme ---------------------------------------------------------------------------------------

  const darkQuery = window.matchMedia("(prefers-color-scheme: dark)");

  function effectiveTheme() {
    return root.dataset.theme || (darkQuery.matches ? "dark" : "light");
  }

  function paintToggles() {
    const theme = effectiveTheme();
    const next = theme === "dark" ? "light" : "dark";
    document.querySelectorAll("[data-theme-toggle]").forEach((button) => {
      button.setAttribute("aria-label", `Switch to ${next} theme`);
      // SVG elements have no .hidden property: set the attribute.
      button.querySelector(".theme-icon-light").toggleAttribute("hidden", theme === "light");
      button.querySelector(".theme-icon-dark").toggleAttribute("hidden", theme === "dark");
      button.querySelector(".theme-label").textContent = next === "light" ? "Light theme" : "Dark theme";
    });
  }

  document.querySelectorAll("[data-theme-toggle]").forEach((button) => {
    button.addEventListener("click", () => {
      const next = effectiveTheme() === "dark" ? "light" : "dark";
      root.dataset.theme = next;
      try {
        window.localStorage.setItem("flotilla-theme", next);
      } catch (err) {
        // Private mode: the choice lasts for this page only.
      }
      paintToggles();
      document.dispatchEvent(new CustomEvent("flotilla:theme", { detail: next }));
    });
  });
  darkQuery.addEventListener("change", () => {
    paintToggles();
    document.dispatchEvent(new CustomEvent("flotilla:theme", { detail: effectiveTheme() }));
  });
  paintToggles();

  // --- drawer (phones) -----------------------------------------------------------------------------

  const app = document.getElementById("app");
  const toggle = document.getElementById("drawer-toggle");
  const sidebar = document.getElementById("sidebar");

  function setDrawer(open, { restoreFocus = true } = {}) {
    if (!app || !toggle) return;
    app.classList.toggle("drawer-open", open);
    toggle.setAttribute("aria-expanded", String(open));
    toggle.setAttribute("aria-label", open ? "Close navigation" : "Open navigation");
    if (open) {
      const current = sidebar.querySelector('a[aria-current="page"]') || sidebar.querySelector("a[href]");
      if (current) current.focus();
    } else if (restoreFocus && sidebar.contains(document.activeElement)) {
      toggle.focus(); // focus goes back to the button that opened the drawer
    }
  }

  const drawerOpen = () => Boolean(app && app.classList.contains("drawer-open"));
  if (toggle) toggle.addEventListener("click", () => setDrawer(!drawerOpen()));
  const backdrop = document.getElementById("drawer-backdrop");
  if (backdrop) backdrop.addEventListener("click", () => setDrawer(false));

  // --- keyboard shortcuts --------------------------------------------------------------------------

  function typing(target) {
    return target.closest("input, textarea, select, [contenteditable=''], [contenteditable='true']") !== null;
  }

  document.addEventListener("keydown", (ev) => {
    if (ev.key === "Escape" && drawerOpen()) {
      setDrawer(false);
      return;
    }
    if (ev.ctrlKey || ev.metaKey || ev.altKey || ev.defaultPrevented || typing(ev.target)) return;
    if (document.querySelector("dialog[open]")) return;
    if (ev.key === "/") {
      const search = document.querySelector("[data-search]");
      if (search) {
        ev.preventDefault();
        search.focus();
      }
    } else if (ev.key === "a" && !ev.shiftKey) {
      const add = document.querySelector("[data-open-add]:not([hidden])");
      const dialog = document.getElementById("add-dialog");
      if (add && dialog) {
        ev.preventDefault();
        const before = document.activeElement;
        add.click();
        // When it closes, focus returns where it was before the shortcut (not to the page's button).
        if (before && before !== document.body) dialog.addEventListener("close", () => before.focus(), { once: true });
      }
    }
  });

  // --- Django messages as toasts -------------------------------------------------------------------

  const flash = F.readJSON("flash-messages") || [];
  for (const message of flash) {
    const level = message.level.includes("error") ? "error" : message.level.includes("success") ? "success" : "info";
    F.toast(message.text, level);
  }

  // --- live state on every signed-in page -----------------------------------------------------------

  if (F.startLive && document.querySelector(".live-status") && !window.flotillaLive) {
    F.startLive({ wsPath: "/ws/events/" }, () => {}, null);
  }
})();
