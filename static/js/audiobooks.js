/* The Audiobooks page: the user's books with their processing progress (step n/N), where each was published and
 * why one failed, refreshed over /api/v1/audiobooks/ while any is waiting or being made; Retry on a failed book;
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
        el("div", {}, el("dt", { text: "Chapters" }), el("dd", { "data-field": "chapters", text: b.chapters || "—" }))),
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
        const page = await F.api("GET", config.apiBooks);
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
      if (timer === null && anyActive() && !document.hidden) timer = window.setTimeout(refresh, config.refreshSeconds * 1000);
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
