// The live page of one sketch job: polls the job and its preview about once a second and draws every level's
// strokes as SVG over the job's picture (a toggle hides it); shows the settings, the place in the queue, the
// progress, the time so far and left (or taken, once finished) and the server's usual time for the quality;
// cancels; once finished, replays the run and links the files. No loss figures: they are in the API.
// With a server token it asks for the token once, keeps it in sessionStorage and sends it as a Bearer header.
// While the job waits for the CLIP models, it says so from /v1/health ("Downloading the CLIP models: 120 of 580 MB").
"use strict";
(() => {
  const INKSCAPE_NS = "http://www.inkscape.org/namespaces/inkscape";
  const SVG_NS = "http://www.w3.org/2000/svg";
  const TOKEN_KEY = "clipasso-server-token";
  const POLL_MS = 1000;
  const FINISHED = ["succeeded", "failed", "cancelled"];
  const QUALITY = { quick: "Quick look", balanced: "Balanced", paper: "Best, as in the paper" };
  const jobId = document.body.dataset.job;
  const $ = (id) => document.getElementById(id);
  let token = sessionStorage.getItem(TOKEN_KEY);
  let health = null;
  let picture = null; // blob URL of the job's picture, once fetched
  let pictureAsked = false;
  let animationShown = false;

  function headers() {
    return token ? { Authorization: "Bearer " + token } : {};
  }

  function request(method, path) {
    return fetch(path, { method, headers: headers(), cache: "no-store", credentials: "omit" });
  }

  async function blobUrl(path) {
    const response = await request("GET", path);
    return response.ok ? URL.createObjectURL(await response.blob()) : null;
  }

  function seconds(value) {
    if (value === null || value === undefined || !isFinite(value)) return "";
    const total = Math.max(0, Math.round(value));
    const hours = Math.floor(total / 3600);
    const minutes = Math.floor((total % 3600) / 60);
    if (hours) return `${hours} h ${String(minutes).padStart(2, "0")} min`;
    return minutes ? `${minutes} min ${String(total % 60).padStart(2, "0")} s` : `${total} s`;
  }

  function showMessage(text) {
    $("message").textContent = text || "";
    $("message").hidden = !text;
  }

  function askToken(problem) {
    $("job").hidden = true;
    $("token-form").hidden = false;
    $("token-error").textContent = problem || "";
    $("token-error").hidden = !problem;
    $("token").focus();
  }

  async function errorMessage(response) {
    try {
      const body = await response.json();
      return body.error.message;
    } catch (_) {
      return `The sketch server answered ${response.status}.`;
    }
  }

  function settingsText(settings) {
    if (!settings) return "";
    const parts = [settings.preset ? `Quality: ${QUALITY[settings.preset] || settings.preset}` : "Quality: custom"];
    parts.push(`${settings.strokes.join(", ")} strokes`);
    let attempts = `${settings.seeds} attempt${settings.seeds === 1 ? "" : "s"} per level`;
    if (settings.seeds > 1 && settings.pick_seed_at) attempts += `, the best goes on after step ${settings.pick_seed_at}`;
    parts.push(attempts, `${settings.iterations} steps`);
    if (settings.text) parts.push(`prompt “${settings.text}”`);
    if (settings.fidelity === "precise") parts.push("closer to the picture");
    if (settings.fidelity === "loose") parts.push("freer");
    parts.push(`seed ${settings.seed}`);
    return parts.join(" · ");
  }

  function queueText(job) {
    if (job.status !== "queued" || job.queue_position === null || job.queue_position === undefined) return "";
    const ahead = job.queue_position;
    return ahead === 0 ? "— it starts next" : `— ${ahead} job${ahead === 1 ? "" : "s"} start before it`;
  }

  function duration(job) {
    const progress = job.progress || {};
    if (FINISHED.includes(job.status)) {
      const taken = job.started_at && job.finished_at
        ? (Date.parse(job.finished_at) - Date.parse(job.started_at)) / 1000 : progress.elapsed_s;
      return taken === null || taken === undefined ? "" : `took ${seconds(taken)}`;
    }
    return job.status === "running" && progress.elapsed_s !== null && progress.elapsed_s !== undefined
      ? `${seconds(progress.elapsed_s)} so far` : "";
  }

  function expectedText(job) {
    const preset = job.settings && job.settings.preset;
    const times = health && health.preset_seconds;
    if (FINISHED.includes(job.status) || !preset || !times || typeof times[preset] !== "number") return "";
    return `(a four-level sketch at ${QUALITY[preset] || preset} quality takes about ${seconds(times[preset])} here)`;
  }

  function showJob(job) {
    $("token-form").hidden = true;
    $("job").hidden = false;
    $("status").textContent = job.status;
    $("status").dataset.status = job.status;
    $("settings").textContent = settingsText(job.settings);
    $("queue").textContent = queueText(job);
    const progress = job.progress;
    if (progress) {
      $("bar").max = Math.max(progress.total, 1);
      $("bar").value = job.status === "succeeded" ? progress.total : progress.iteration;
      $("steps").textContent = `step ${progress.iteration} of ${progress.total}`;
    }
    $("elapsed").textContent = duration(job);
    const eta = progress && job.status === "running" && progress.eta_s !== null ? `, about ${seconds(progress.eta_s)} left` : "";
    $("eta").textContent = eta;
    $("expected").textContent = expectedText(job);
    showMessage(job.error ? job.error.message : "");
    $("cancel").hidden = FINISHED.includes(job.status);
    $("picture-toggle").hidden = !picture || job.status === "queued";
    $("finished").hidden = job.status !== "succeeded";
  }

  function modelsText(models) {
    if (!models) return "";
    const mb = (bytes) => Math.round((bytes || 0) / 1e6);
    if (models.state === "downloading") {
      return models.bytes_total
        ? `Downloading the CLIP models: ${mb(models.bytes_done)} of ${mb(models.bytes_total)} MB`
        : `Downloading the CLIP models: ${mb(models.bytes_done)} MB so far`;
    }
    if (models.state === "missing") return "Downloading the CLIP models…";
    if (models.state === "loading") return "Loading the CLIP models…";
    return "";
  }

  function waitsForModels(job) {
    // Only a job that has not started sketching waits for the models.
    return job.status === "queued" || (job.status === "running" && !job.progress);
  }

  async function showModels(job) {
    // Health is asked at every poll while the job waits; a degraded server (503) still sends its body.
    let text = "";
    if (waitsForModels(job)) {
      try {
        const response = await request("GET", "/v1/health");
        const body = await response.json();
        if (response.ok) health = body; // healthy again: its usual times are known now
        text = modelsText(body.models);
      } catch (_) {
        // asked again at the next poll
      }
    }
    $("models").textContent = text;
    $("models").hidden = !text;
  }

  function figureFor(label, strokes) {
    let figure = document.querySelector(`figure.level[data-strokes="${strokes}"]`);
    if (!figure) {
      figure = document.createElement("figure");
      figure.className = "level";
      figure.dataset.strokes = strokes;
      figure.appendChild(document.createElementNS(SVG_NS, "svg"));
      const caption = document.createElement("figcaption");
      caption.textContent = label;
      figure.appendChild(caption);
      $("levels").appendChild(figure);
    }
    return figure;
  }

  function pictureUnder(viewBox) {
    const [, , width, height] = (viewBox || "0 0 224 224").split(/[\s,]+/);
    const image = document.createElementNS(SVG_NS, "image");
    image.setAttribute("class", "picture");
    image.setAttribute("href", picture);
    image.setAttribute("x", "0");
    image.setAttribute("y", "0");
    image.setAttribute("width", width);
    image.setAttribute("height", height);
    image.setAttribute("preserveAspectRatio", "none");
    return image;
  }

  function draw(svgText) {
    // Style attributes renamed before parsing: the page's CSP (no inline styles) applies to parsed documents too.
    const doc = new DOMParser().parseFromString(svgText.replace(/\sstyle="/g, ' data-style="'), "image/svg+xml");
    const root = doc.documentElement;
    if (root.namespaceURI !== SVG_NS) return;
    for (const layer of root.getElementsByTagNameNS(SVG_NS, "g")) {
      if (layer.getAttributeNS(INKSCAPE_NS, "groupmode") !== "layer") continue;
      const label = layer.getAttributeNS(INKSCAPE_NS, "label") || "";
      const figure = figureFor(label, String(parseInt(label, 10)));
      const svg = figure.querySelector("svg");
      const viewBox = root.getAttribute("viewBox") || "0 0 224 224";
      svg.setAttribute("viewBox", viewBox);
      const children = picture ? [pictureUnder(viewBox)] : [];
      for (const source of layer.getElementsByTagNameNS(SVG_NS, "path")) {
        const width = /stroke-width:\s*([\d.eE+-]+)/.exec(source.getAttribute("data-style") || "");
        const path = document.createElementNS(SVG_NS, "path");
        path.setAttribute("d", source.getAttribute("d") || "");
        path.setAttribute("fill", "none");
        path.setAttribute("stroke", "#000");
        path.setAttribute("stroke-width", width ? width[1] : "3");
        path.setAttribute("stroke-linecap", "round");
        path.setAttribute("stroke-linejoin", "round");
        children.push(path);
      }
      svg.replaceChildren(...children);
    }
  }

  async function drawSketch(status) {
    // A finished job is drawn from its result (also when it kept no snapshots); a running one from its preview.
    const file = status === "succeeded" ? "result.svg" : "preview.svg";
    const response = await request("GET", `/v1/jobs/${jobId}/${file}`);
    if (response.ok) draw(await response.text());
  }

  async function fetchOnce(job) {
    // The server's usual times (from showModels while the job waits), the job's picture and, once it has
    // succeeded, its replay: fetched once each.
    if (health === null && !waitsForModels(job)) {
      health = {};
      const response = await request("GET", "/v1/health");
      if (response.ok) health = await response.json();
    }
    if (!pictureAsked) {
      pictureAsked = true;
      picture = await blobUrl(`/v1/jobs/${jobId}/image`);
    }
    if (job.status === "succeeded" && !animationShown) {
      animationShown = true;
      const replay = await blobUrl(`/v1/jobs/${jobId}/animation.svg`);
      if (replay) $("animation").src = replay;
      else $("animation").hidden = true;
    }
  }

  async function poll() {
    let response;
    try {
      response = await request("GET", `/v1/jobs/${jobId}`);
    } catch (_) {
      showMessage("The sketch server does not answer; trying again…");
      setTimeout(poll, POLL_MS);
      return;
    }
    if (response.status === 401) {
      askToken(token ? "That token is not the server's." : "");
      return;
    }
    if (!response.ok) {
      $("job").hidden = false;
      showMessage(await errorMessage(response));
      if (response.status !== 404) setTimeout(poll, POLL_MS);
      return;
    }
    const job = await response.json();
    try {
      await fetchOnce(job);
    } catch (_) {
      // what cannot be fetched now is left out; the strokes and the progress still show
    }
    await showModels(job);
    showJob(job);
    try {
      if (job.status !== "queued") await drawSketch(job.status);
    } catch (_) {
      // a preview that cannot be fetched now is fetched again at the next poll
    }
    if (!FINISHED.includes(job.status)) setTimeout(poll, POLL_MS);
  }

  async function cancel() {
    $("cancel").disabled = true;
    const response = await request("DELETE", `/v1/jobs/${jobId}`);
    if (response.ok) showJob(await response.json());
    else showMessage(await errorMessage(response));
    $("cancel").disabled = false;
  }

  async function download(event) {
    if (!token) return; // without a token the plain link works
    event.preventDefault();
    const link = event.currentTarget;
    const response = await request("GET", link.dataset.path);
    if (!response.ok) {
      showMessage(await errorMessage(response));
      return;
    }
    const url = URL.createObjectURL(await response.blob());
    const save = document.createElement("a");
    save.href = url;
    save.download = link.textContent;
    document.body.appendChild(save);
    save.click();
    save.remove();
    setTimeout(() => URL.revokeObjectURL(url), 60000);
  }

  function start() {
    for (const name of ["result.svg", "animation.svg", "animation.gif"]) {
      const link = $(name.replace(".", "-"));
      link.dataset.path = `/v1/jobs/${jobId}/${name}`;
      link.href = link.dataset.path;
      link.addEventListener("click", download);
    }
    $("cancel").addEventListener("click", cancel);
    $("show-picture").addEventListener("change", () => {
      $("levels").classList.toggle("no-picture", !$("show-picture").checked);
    });
    $("token-form").addEventListener("submit", (event) => {
      event.preventDefault();
      token = $("token").value;
      $("token").value = "";
      sessionStorage.setItem(TOKEN_KEY, token);
      poll();
    });
    poll();
  }

  start();
})();
