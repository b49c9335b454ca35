/* The Search page: one box and its filters ask /api/v1/search/ (every chosen indexer at once), show the ranked
 * results in a sortable table with each indexer's timing or error, and grab a result into the chosen backend
 * (/api/v1/search/{id}/grab/), or play it without downloading (/api/v1/stream/play/: an ephemeral job, opened in
 * the player once its metadata names the file). The query lives in the URL (?q=…), so a search can be reloaded
 * or shared. */
(function () {
  "use strict";

  const { el } = window.Flotilla;

  function age(days) {
    if (days === null || days === undefined) return "—";
    if (days < 1) return `${Math.max(1, Math.round(days * 24))} h`;
    if (days < 60) return `${Math.round(days)} d`;
    if (days < 730) return `${Math.round(days / 30)} mo`;
    return `${(days / 365).toFixed(1)} y`;
  }

  function qualityText(quality) {
    const q = quality || {};
    const words = ["resolution", "source", "codec", "audio", "format"].map((k) => q[k]).filter(Boolean);
    return [...new Set(words)].join(" · "); // "mp3" can be both the audio and the format
  }

  function start(F) {
    const config = F.readJSON("search-config");
    const form = document.getElementById("search-form");
    if (!form) return; // no indexers: the page is its call to action
    const box = document.getElementById("search-q");
    const rows = document.getElementById("result-rows");
    const table = document.getElementById("results-table");
    const wrap = document.getElementById("results-wrap");
    const hint = document.getElementById("search-hint");
    const none = document.getElementById("search-none");
    const summary = document.getElementById("search-summary");
    const report = document.getElementById("search-report");
    const backend = document.getElementById("grab-backend");
    let results = [];
    let sort = { key: null, dir: 1 }; // null: the API's ranking
    let generation = 0;

    try {
      const remembered = window.localStorage.getItem("flotilla-grab-backend");
      if (remembered && [...backend.options].some((o) => o.value === remembered)) backend.value = remembered;
    } catch (err) {
      // Private mode: the first backend stays chosen.
    }
    backend.addEventListener("change", () => {
      try { window.localStorage.setItem("flotilla-grab-backend", backend.value); } catch (err) { /* ignored */ }
    });

    function params() {
      const data = new FormData(form);
      const kind = config.kinds[data.get("kind") || ""] || config.kinds[""];
      const typed = String(data.get("categories") || "").split(/[\s,]+/).filter((c) => /^\d+$/.test(c));
      const query = new URLSearchParams({ q: String(data.get("q") || "").trim(), kind: kind.kind });
      for (const c of typed.length ? typed : kind.categories) query.append("categories", c);
      for (const id of data.getAll("indexer_ids")) query.append("indexer_ids", id);
      const seeders = parseInt(data.get("min_seeders"), 10);
      if (seeders > 0) query.set("min_seeders", String(seeders));
      if (data.get("freeleech")) query.set("freeleech", "true");
      return query;
    }

    function skeletons() {
      rows.replaceChildren();
      for (let i = 0; i < 5; i += 1) {
        const cells = [];
        for (const width of ["line-l", "line-m", "line-s", "line-s", "line-s", "line-s", "line-m", "line-s"]) {
          cells.push(el("td", {}, el("span", { class: `skeleton ${width}`, "aria-hidden": "true" })));
        }
        rows.append(el("tr", { class: "skeleton-row" }, ...cells));
      }
      wrap.hidden = false;
      hint.hidden = true;
      none.hidden = true;
      table.setAttribute("aria-busy", "true");
    }

    function renderReport(outcome) {
      report.replaceChildren();
      for (const t of outcome.timings) {
        report.append(el("li", { class: "ok", "data-indexer": t.indexer },
          el("strong", { text: t.name }), ` ${t.count} result${t.count === 1 ? "" : "s"} in ${Math.round(t.ms)} ms`));
      }
      for (const e of outcome.errors) {
        report.append(el("li", { class: "error", "data-indexer": e.indexer, "data-code": e.code },
          el("strong", { text: e.name }), ` ${e.detail}`));
      }
    }

    function flags(result) {
      const list = el("ul", { class: "flags" });
      for (const flag of result.flags || []) list.append(el("li", { class: "badge", text: flag }));
      return list;
    }

    function resultRow(r) {
      const title = r.info_url
        ? el("a", { href: r.info_url, rel: "noopener noreferrer", target: "_blank", text: r.title })
        : el("span", { text: r.title });
      const grab = el("button", { type: "button", class: "small", "data-grab": r.id, "aria-label": `Grab ${r.title}` },
        "Grab");
      const play = el("button", { type: "button", class: "small secondary", "data-play": r.id,
        "aria-label": `Play ${r.title} without downloading` }, "Play");
      return el("tr", { "data-result-id": r.id },
        el("td", { class: "title" }, title),
        el("td", { text: r.indexer_name }),
        el("td", { class: "num", text: F.formatBytes(r.size) }),
        el("td", { class: "num", text: `${r.seeders} / ${r.leechers}` }),
        el("td", { class: "num", text: age(r.age_days) }),
        el("td", {}, flags(r)),
        el("td", { text: qualityText(r.quality) }),
        el("td", { class: "actions" }, play, " ", grab));
    }

    function sorted() {
      if (!sort.key) return results;
      const key = sort.key;
      return [...results].sort((a, b) => {
        const x = a[key] === null || a[key] === undefined ? -Infinity : a[key];
        const y = b[key] === null || b[key] === undefined ? -Infinity : b[key];
        if (typeof x === "string" || typeof y === "string") return sort.dir * String(x).localeCompare(String(y));
        return sort.dir * (x - y);
      });
    }

    function renderResults() {
      table.removeAttribute("aria-busy");
      rows.replaceChildren(...sorted().map(resultRow));
      wrap.hidden = results.length === 0;
      none.hidden = results.length !== 0;
      table.querySelectorAll("th[data-sort]").forEach((th) => {
        const active = th.dataset.sort === sort.key;
        th.setAttribute("aria-sort", active ? (sort.dir > 0 ? "ascending" : "descending") : "none");
      });
    }

    async function run(pushUrl) {
      const query = params();
      const mine = (generation += 1);
      if (pushUrl) {
        const url = new URL(window.location.href);
        url.search = query.get("q") ? new URLSearchParams({ q: query.get("q") }).toString() : "";
        window.history.replaceState(null, "", url);
      }
      skeletons();
      summary.textContent = "Searching…";
      report.replaceChildren();
      try {
        const outcome = await F.api("GET", `${config.apiSearch}?${query}`);
        if (mine !== generation) return; // a newer search was started meanwhile
        results = outcome.results;
        renderReport(outcome);
        renderResults();
        const failed = outcome.errors.length ? `, ${outcome.errors.length} indexer${outcome.errors.length === 1 ? "" : "s"} failed` : "";
        summary.textContent = `${results.length} result${results.length === 1 ? "" : "s"}${failed}.`;
      } catch (err) {
        if (mine !== generation) return;
        results = [];
        renderResults();
        none.hidden = true;
        summary.textContent = "The search failed.";
        F.toastError(err);
      }
    }

    async function grab(button) {
      const id = Number(button.dataset.grab);
      const result = results.find((r) => r.id === id);
      const label = config.backendLabels[backend.value] || backend.value;
      button.disabled = true;
      try {
        await F.api("POST", config.grabUrl.replace(/\/0\/grab\/$/, `/${id}/grab/`), { backend: backend.value });
        button.textContent = "Grabbed";
        F.toast(`“${result ? result.title : id}” was added to ${label}.`);
      } catch (err) {
        button.disabled = false;
        F.toastError(err);
      }
    }

    const sleep = (ms) => new Promise((resolve) => { window.setTimeout(resolve, ms); });

    /** Play without downloading: an ephemeral job on the built-in engine; the player opens once the torrent's
     * metadata names the file to play (a magnet needs the swarm for that: a few seconds). */
    async function play(button) {
      const id = Number(button.dataset.play);
      const result = results.find((r) => r.id === id);
      button.disabled = true;
      button.textContent = "Starting…";
      try {
        let links = await F.api("POST", wrap.dataset.playUrl, { result: id });
        const giveUp = Date.now() + 60000;
        if (!links.ready) F.toast(`Fetching “${result ? result.title : id}”…`, "info");
        while (!links.ready && links.playable !== false && Date.now() < giveUp) {
          await sleep(500);
          links = await F.api("GET", links.status_url);
        }
        if (links.playable === false) throw new Error("This torrent has no video or audio file to play.");
        if (!links.ready) throw new Error("Nobody in the swarm sent the torrent's metadata yet; try again later.");
        window.location.assign(links.player_url);
      } catch (err) {
        button.disabled = false;
        button.textContent = "Play";
        F.toastError(err);
      }
    }

    form.addEventListener("submit", (ev) => {
      ev.preventDefault();
      run(true);
    });
    rows.addEventListener("click", (ev) => {
      const button = ev.target.closest("button[data-grab]");
      if (button && !button.disabled) grab(button);
      const player = ev.target.closest("button[data-play]");
      if (player && !player.disabled) play(player);
    });
    table.querySelectorAll("th[data-sort] button").forEach((button) => {
      button.addEventListener("click", () => {
        const key = button.closest("th").dataset.sort;
        // Numbers start with the biggest (most seeders, largest), text with A; the third click goes back to rank.
        const first = key === "title" || key === "indexer_name" || key === "age_days" ? 1 : -1;
        if (sort.key !== key) sort = { key, dir: first };
        else if (sort.dir === first) sort = { key, dir: -first };
        else sort = { key: null, dir: 1 };
        renderResults();
      });
    });
    if (box.value.trim()) run(false);
  }

  start(window.Flotilla);
})();
