// The live page of one sketch job: polls the job and its preview about once a second, draws every level's
// strokes as SVG, shows progress, ETA and loss, cancels, and links the result and the animation when done.
// With a server token it asks for the token once, keeps it in sessionStorage and sends it as a Bearer header.
// While the job waits for the CLIP models, it says so from /v1/health ("Downloading the CLIP models: 120 of 580 MB").
"use strict";
(() => {
  const INKSCAPE_NS = "http://www.inkscape.org/namespaces/inkscape";
  const SVG_NS = "http://www.w3.org/2000/svg";
  const TOKEN_KEY = "clipasso-server-token";
  const POLL_MS = 1000;
  const FINISHED = ["succeeded", "failed", "cancelled"];
  const jobId = document.body.dataset.job;
  const $ = (id) => document.getElementById(id);
  let token = sessionStorage.getItem(TOKEN_KEY);
  let losses = {};

  function headers() {
    return token ? { Authorization: "Bearer " + token } : {};
  }

  function request(method, path) {
    return fetch(path, { method, headers: headers(), cache: "no-store", credentials: "omit" });
  }

  function seconds(value) {
    if (value === null || value === undefined) return "";
    const total = Math.round(value);
    const minutes = Math.floor(total / 60);
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

  function showJob(job) {
    $("token-form").hidden = true;
    $("job").hidden = false;
    $("status").textContent = job.status;
    $("status").dataset.status = job.status;
    const progress = job.progress;
    if (progress) {
      $("bar").max = Math.max(progress.total, 1);
      $("bar").value = job.status === "succeeded" ? progress.total : progress.iteration;
      $("steps").textContent = `step ${progress.iteration} of ${progress.total}`;
      $("elapsed").textContent = progress.elapsed_s === null ? "" : `${seconds(progress.elapsed_s)} so far`;
      const eta = job.status === "running" && progress.eta_s !== null ? `, about ${seconds(progress.eta_s)} left` : "";
      $("eta").textContent = eta;
      losses = progress.best_loss || {};
    }
    showMessage(job.error ? job.error.message : "");
    $("cancel").hidden = FINISHED.includes(job.status);
    $("links").hidden = job.status !== "succeeded";
    for (const level of document.querySelectorAll("figure.level")) caption(level);
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

  async function showModels(job) {
    // Only a job that has not started sketching waits for the models; a degraded server (503) still sends its body.
    let text = "";
    if (job.status === "queued" || (job.status === "running" && !job.progress)) {
      try {
        text = modelsText((await (await request("GET", "/v1/health")).json()).models);
      } catch (_) {
        // asked again at the next poll
      }
    }
    $("models").textContent = text;
    $("models").hidden = !text;
  }

  function caption(figure) {
    const loss = losses[figure.dataset.strokes];
    const text = loss === undefined || loss === null ? "" : ` — loss ${Number(loss).toFixed(4)}`;
    figure.querySelector("figcaption").textContent = figure.dataset.label + text;
  }

  function figureFor(label, strokes) {
    let figure = document.querySelector(`figure.level[data-strokes="${strokes}"]`);
    if (!figure) {
      figure = document.createElement("figure");
      figure.className = "level";
      figure.dataset.strokes = strokes;
      figure.dataset.label = label;
      figure.appendChild(document.createElementNS(SVG_NS, "svg"));
      figure.appendChild(document.createElement("figcaption"));
      $("levels").appendChild(figure);
    }
    return figure;
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
      svg.setAttribute("viewBox", root.getAttribute("viewBox") || "0 0 224 224");
      const paths = [];
      for (const source of layer.getElementsByTagNameNS(SVG_NS, "path")) {
        const width = /stroke-width:\s*([\d.eE+-]+)/.exec(source.getAttribute("data-style") || "");
        const path = document.createElementNS(SVG_NS, "path");
        path.setAttribute("d", source.getAttribute("d") || "");
        path.setAttribute("fill", "none");
        path.setAttribute("stroke", "#000");
        path.setAttribute("stroke-width", width ? width[1] : "3");
        path.setAttribute("stroke-linecap", "round");
        path.setAttribute("stroke-linejoin", "round");
        paths.push(path);
      }
      svg.replaceChildren(...paths);
      caption(figure);
    }
  }

  async function drawSketch(status) {
    // A finished job is drawn from its result (also when it kept no snapshots); a running one from its preview.
    const file = status === "succeeded" ? "result.svg" : "preview.svg";
    const response = await request("GET", `/v1/jobs/${jobId}/${file}`);
    if (response.ok) draw(await response.text());
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
    showJob(job);
    await showModels(job);
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
