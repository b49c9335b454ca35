/* Preload: tell the server which job cards are on screen, so the worker fetches the head and tail of their video
 * before Play is pressed (POST /api/v1/ui/viewport; streaming/preload.py). Priorities: the card with the pointer
 * or the keyboard focus is "focused", its neighbours "adjacent", the rest on screen "visible", cards within a
 * screen's height of it "near". Posted at most every DEBOUNCE ms, and only when the set changed; each post
 * replaces the previous one (cards that left the screen are cancelled server-side). */
(function () {
  "use strict";

  const F = window.Flotilla;
  const script = document.currentScript;
  const url = script && script.dataset.viewportUrl;
  const list = document.getElementById("job-list");
  if (!F || !url || !list || !("IntersectionObserver" in window)) return;

  const DEBOUNCE = 300;
  const visible = new Set();
  const near = new Set();
  let focused = null;
  let timer = null;
  const NOTHING = JSON.stringify({ items: [] });
  let last = NOTHING; // a page with no cards on screen has nothing to say

  const idOf = (card) => Number(card.dataset.jobId);
  const cards = () => [...list.querySelectorAll(".job-card[data-job-id]")].filter((c) => idOf(c) > 0 && !c.hidden);

  function items() {
    const rank = new Map();
    const put = (card, priority, order) => {
      const id = idOf(card);
      if (id > 0 && (!rank.has(id) || rank.get(id).order < order)) rank.set(id, { priority, order });
    };
    near.forEach((card) => put(card, "near", 1));
    visible.forEach((card) => put(card, "visible", 2));
    if (focused && focused.isConnected) {
      const all = cards();
      const at = all.indexOf(focused);
      [all[at - 1], all[at + 1]].forEach((card) => card && put(card, "adjacent", 3));
      put(focused, "focused", 4);
    }
    return [...rank.entries()].sort((a, b) => a[0] - b[0]).map(([job, r]) => ({ job, priority: r.priority }));
  }

  function schedule() {
    window.clearTimeout(timer);
    timer = window.setTimeout(send, DEBOUNCE);
  }

  async function send() {
    const body = { items: items() };
    const key = JSON.stringify(body);
    if (key === last) return;
    last = key;
    try {
      await F.api("POST", url, body);
    } catch (err) {
      last = null; // try again with the next change; preloading is a hint, never worth a toast
    }
  }

  const watch = (set) => (entries) => {
    for (const entry of entries) {
      if (entry.isIntersecting) set.add(entry.target);
      else set.delete(entry.target);
    }
    schedule();
  };
  const onScreen = new IntersectionObserver(watch(visible));
  const nearby = new IntersectionObserver(watch(near), { rootMargin: "100% 0px" });
  const observe = (card) => { onScreen.observe(card); nearby.observe(card); };
  cards().forEach(observe);

  // Cards come and go with live events and the search box.
  new MutationObserver((mutations) => {
    for (const m of mutations) {
      m.addedNodes.forEach((node) => { if (node.matches && node.matches(".job-card")) observe(node); });
      m.removedNodes.forEach((node) => {
        if (!node.matches || !node.matches(".job-card")) return;
        onScreen.unobserve(node);
        nearby.unobserve(node);
        visible.delete(node);
        near.delete(node);
        if (focused === node) focused = null;
      });
    }
    schedule();
  }).observe(list, { childList: true });

  const focus = (ev) => {
    const card = ev.target.closest && ev.target.closest(".job-card[data-job-id]");
    if (card && card !== focused) {
      focused = card;
      schedule();
    }
  };
  list.addEventListener("pointerover", focus);
  list.addEventListener("focusin", focus);
  // Leaving the page: nothing is on screen any more.
  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "hidden" && last !== NOTHING) {
      last = NOTHING;
      F.api("POST", url, { items: [] }).catch(() => { last = null; });
    } else if (document.visibilityState === "visible") {
      schedule();
    }
  });
})();
