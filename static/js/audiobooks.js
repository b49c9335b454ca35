/* The Audiobooks page: the user's books with their processing progress (step n/N), where each was published and
 * why one failed, each tracker download's seeding state and alerts, the user's tracker accounts (ratio, class,
 * unsatisfied n / limit, session), refreshed over /api/v1/audiobooks/ and /api/v1/audiobooks/tracker/ (every few
 * seconds while a book is waiting or being made, every minute otherwise); Retry on a failed book;
 * the library / Audiobookshelf settings form (PUT /api/v1/audiobooks/settings/; the token is write-only, so the
 * page only says whether one is set). Everything is built with textContent: titles come from torrents. */
(function () {
  "use strict";

  const config = JSON.parse(document.getElementById("audiobooks-config").textContent);
  const ACTIVE = new Set(["waiting", "processing"]);

  const { el } = window.Flotilla;

  function stepText(b) {
    if (b.state === "waiting") return "waiting for the download";
    if (b.state !== "processing") return b.state;
    const step = b.step || "starting";
    return step === "checking" || step === "merging" ? `${step} ${b.step_done}/${b.step_total}` : step;
  }

  function people(b) {
    let text = (b.authors || []).join(" & ");
    if (b.series) text += ` · ${b.series}${b.sequence ? ` #${b.sequence}` : ""}`;
    if ((b.narrators || []).length) text += ` · read by ${b.narrators.join(", ")}`;
    return text;
  }

  const when = (iso) => (iso ? iso.slice(0, 16).replace("T", " ") : "");
  const hours = (seconds) => Math.round((seconds || 0) / 3600);
  const yesNo = (value) => (value ? "yes" : "no");

  function alertLine(a) {
    return el("p", { class: "msg msg-warning", "data-alert-kind": a.kind },
      el("strong", { text: a.label }), ` — ${a.message}`);
  }

  /* A tracker download's seeding state: seeded / needed within the window, ratio, both clocks. */
  function trackerFacts(t) {
    if (!t) return [];
    const satisfied = t.satisfied ? "yes" : (t.hit_and_run ? "no: hit and run" : "no");
    const seeded = el("dd", { "data-field": "seeded", text: `${hours(t.seeded_seconds)} h of ${hours(t.needed_seconds)} h` });
    if (t.window_ends_at) {
      seeded.append(" · window ends ", el("time", { datetime: t.window_ends_at, text: t.window_ends_at.slice(0, 10) }));
    }
    return [
      el("div", {}, el("dt", { text: `Seeded (${t.tracker_name})` }), seeded),
      el("div", {}, el("dt", { text: "Ratio" }),
        el("dd", { "data-field": "ratio", text: t.ratio === null || t.ratio === undefined ? "—" : t.ratio.toFixed(2) })),
      el("div", {}, el("dt", { text: "Satisfied" }), el("dd", { "data-field": "satisfied" }, `${satisfied} `,
        el("span", { class: "muted",
          text: `(Flotilla's clock: ${yesNo(t.clock_satisfied_at)}; tracker: ${yesNo(t.tracker_satisfied_at)})` }))),
    ];
  }

  const SESSION = { ok: ["completed", "ok"], expired: ["failed", "expired"], unknown: ["queued", "not checked"] };

  function accountRow(a) {
    const [badge, label] = SESSION[a.session] || SESSION.unknown;
    const num = (v) => (v === null || v === undefined ? "—" : String(v));
    return el("tr", { "data-indexer-id": a.indexer },
      el("th", { scope: "row" }, `${a.name} `, el("span", { class: "muted", text: a.tracker_name })),
      el("td", {}, a.ratio === null || a.ratio === undefined ? "—" : a.ratio.toFixed(2), " ",
        el("span", { class: "muted", text: `(floor ${a.ratio_floor.toFixed(2)})` })),
      el("td", { text: a.class || "—" }),
      el("td", { text: `${num(a.unsatisfied)} / ${num(a.unsatisfied_limit)}` }),
      el("td", {}, el("span", { class: `badge badge-${badge}`, "data-field": "session", text: label })),
      el("td", {}, a.checked_at ? el("time", { datetime: a.checked_at, text: when(a.checked_at) }) : "never"));
  }

  function renderTracker(status) {
    document.getElementById("tracker-alerts").replaceChildren(...status.alerts.map(alertLine));
    document.querySelector("#tracker-accounts tbody").replaceChildren(...status.accounts.map(accountRow));
    document.getElementById("tracker-panel").hidden = !status.accounts.length && !status.alerts.length;
  }

  function card(b) {
    const percent = Math.round((b.progress || 0) * 100);
    const title = b.title || b.job_name;
    const bar = el("div", { class: "progress", role: "progressbar", "aria-label": `Progress of ${title}`,
      "aria-valuemin": 0, "aria-valuemax": 100, "aria-valuenow": percent }, el("span", { style: `width: ${percent}%` }));
    const jobLink = el("a", { href: config.jobUrl.replace(/\/0\/$/, `/${b.job}/`), text: b.job_name });
    return el("li", { class: "card", "data-book-id": b.id, "data-status": b.state },
      el("div", { class: "row" }, el("h3", { text: title }), el("span", { class: "spacer" }),
        el("span", { class: `badge badge-${b.state}`, "data-field": "state", text: b.state })),
      el("p", { class: "reason", "data-field": "people", text: people(b) }),
      el("div", { class: "meter" },
        el("div", { class: "meter-label" }, el("span", { "data-field": "step", text: stepText(b) }),
          el("span", { "data-field": "percent", text: `${percent} %` })), bar),
      el("dl", { class: "facts" },
        el("div", {}, el("dt", { text: "Download" }), el("dd", {}, jobLink, " ",
          el("span", { class: "muted", "data-field": "job_status", text: b.job_status }))),
        el("div", {}, el("dt", { text: "Published in" }),
          el("dd", { class: "mono", "data-field": "published_path", text: b.published_path || "—" })),
        el("div", {}, el("dt", { text: "Chapters" }), el("dd", { "data-field": "chapters", text: b.chapters || "—" })),
        ...trackerFacts(b.tracker)),
      ...(b.alerts || []).map(alertLine),
      el("p", { class: "reason", "data-field": "error", hidden: !b.error, text: b.error }),
      el("div", { class: "row", "data-field": "actions", hidden: b.state !== "failed" },
        el("button", { type: "button", class: "secondary", "data-retry": b.id, text: "Retry" })));
  }

  function render(books) {
    const list = document.getElementById("books");
    list.replaceChildren(...books.map(card));
    list.hidden = books.length === 0;
    document.getElementById("books-empty").hidden = books.length !== 0;
  }

  function anyActive() {
    return [...document.querySelectorAll("#books [data-status]")].some((c) => ACTIVE.has(c.dataset.status));
  }

  function start(F) {
    let timer = null;
    async function refresh() {
      timer = null;
      try {
        const [page, tracker] = await Promise.all([F.api("GET", config.apiBooks), F.api("GET", config.apiTracker)]);
        renderTracker(tracker);
        const before = new Map([...document.querySelectorAll("#books [data-book-id]")]
          .map((c) => [c.dataset.bookId, c.dataset.status]));
        render(page.results.slice(0, config.pageSize));
        for (const b of page.results) {
          const was = before.get(String(b.id));
          if (was && was !== b.state && (b.state === "published" || b.state === "failed")) {
            F.toast(`${b.title || b.job_name}: ${b.state === "published" ? "published" : "failed"}`,
              b.state === "failed" ? "error" : "success");
          }
        }
      } catch (err) {
        /* the next tick tries again; the page keeps what it shows */
      }
      schedule();
    }
    function schedule() {
      /* Fast while a book is being made; slowly otherwise (tracker state changes with the compliance sweep). */
      if (timer !== null || document.hidden) return;
      const seconds = anyActive() ? config.refreshSeconds : config.trackerRefreshSeconds;
      timer = window.setTimeout(refresh, seconds * 1000);
    }
    document.addEventListener("visibilitychange", () => { if (!document.hidden) schedule(); });

    document.getElementById("books").addEventListener("click", async (event) => {
      const button = event.target.closest("[data-retry]");
      if (!button) return;
      button.disabled = true;
      try {
        await F.api("POST", config.retryUrl.replace(/\/0\/retry\/$/, `/${button.dataset.retry}/retry/`));
        F.toast("Retrying the book.", "success");
        if (timer !== null) window.clearTimeout(timer);
        await refresh();
      } catch (err) {
        button.disabled = false;
        F.toastError(err);
      }
    });

    const form = document.getElementById("settings-form");
    const errors = document.getElementById("settings-errors");
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const body = Object.fromEntries(new FormData(form).entries());
      body.process_grabs = form.elements.process_grabs.checked;  // an unchecked box is absent from FormData
      errors.hidden = true;
      try {
        const saved = await F.api("PUT", config.apiSettings, body);
        form.elements.abs_token.value = "";
        document.getElementById("ab-token-state").textContent = saved.has_abs_token
          ? "(set: leave empty to keep it)" : "(not set)";
        document.getElementById("ab-library-path").replaceChildren("Books go to ",
          el("span", { class: "mono", text: saved.library_path || "—" }));
        F.toast("Library settings saved.", "success");
      } catch (err) {
        errors.textContent = F.errorLines(err).join(" ");
        errors.hidden = false;
      }
    });
    schedule();
  }

  start(window.Flotilla);
})();
