// The drawing page of `python -m sbirjax.search serve` (docs/search.md).
// Strokes are kept as points on the run's canvas (0..canvas, 256 for the synthetic world and
// QMUL) and sent as SketchX rows [x, y, pen], pen = 1 on the last point of each stroke; the
// server rasterises them as training does. The width slider changes the drawing on screen only:
// the model always sees the run's line width (its input is shown under the canvas).
"use strict";

(function () {
  const $ = (id) => document.getElementById(id);
  const canvas = $("canvas");
  const ctx = canvas.getContext("2d");
  const DEBOUNCE_MS = 200;
  const MIN_STEP = 0.5;  // canvas units between two kept points of a stroke

  let info = null;            // /api/info
  let strokes = [];           // finished strokes: arrays of [x, y]
  let current = null;         // {id, points} of the stroke being drawn
  let timer = null;
  let sent = 0;               // requests sent; a late answer to an older one is dropped
  let controller = null;
  let inflight = 0;           // requests not answered yet

  const hook = {              // for tests and the console
    responses: 0, lastRequest: null, lastResponse: null, lastError: null,
    strokes: () => strokes.map((s) => s.map((p) => p.slice())),
    rows: () => strokeRows(),
    setStrokes(list) {        // replace the drawing ([[[x, y], ...], ...]) and search now
      strokes = list.map((s) => s.map((p) => [clamp(p[0]), clamp(p[1])]));
      redraw();
      return search();
    },
    search: () => search(),
    idle: () => timer === null && inflight === 0,   // nothing scheduled, nothing in flight
  };
  window.sbirjax = hook;

  function setState(state, message) {
    document.body.dataset.state = state;
    if (message !== undefined) $("status").textContent = message;
  }

  function clamp(v) {
    const c = info ? info.canvas : 256;
    return Math.min(c, Math.max(0, Math.round(v * 100) / 100));
  }

  function pointCount() {
    return strokes.reduce((n, s) => n + s.length, 0) + (current ? current.points.length : 0);
  }

  // ------------------------------------------------------------------ drawing
  function resize() {
    const ratio = window.devicePixelRatio || 1;
    const side = Math.round(canvas.getBoundingClientRect().width * ratio);
    if (side > 0 && canvas.width !== side) {
      canvas.width = side;
      canvas.height = side;
    }
    redraw();
  }

  function toCanvas(event) {
    const rect = canvas.getBoundingClientRect();
    const c = info ? info.canvas : 256;
    return [clamp((event.clientX - rect.left) / rect.width * c),
            clamp((event.clientY - rect.top) / rect.height * c)];
  }

  function drawStroke(points) {
    if (!points.length) return;
    const c = info ? info.canvas : 256;
    const scale = canvas.width / c;
    ctx.lineWidth = Number($("width").value) * canvas.width / canvas.getBoundingClientRect().width;
    ctx.lineCap = "round";
    ctx.lineJoin = "round";
    ctx.strokeStyle = "#111";
    ctx.beginPath();
    ctx.moveTo(points[0][0] * scale, points[0][1] * scale);
    if (points.length === 1) ctx.lineTo(points[0][0] * scale + 0.01, points[0][1] * scale);
    for (const p of points.slice(1)) ctx.lineTo(p[0] * scale, p[1] * scale);
    ctx.stroke();
  }

  function redraw() {
    ctx.fillStyle = "#fff";
    ctx.fillRect(0, 0, canvas.width, canvas.height);
    for (const s of strokes) drawStroke(s);
    if (current) drawStroke(current.points);
  }

  function addPoint(event) {
    const p = toCanvas(event);
    const pts = current.points;
    const last = pts[pts.length - 1];
    if (last && Math.hypot(p[0] - last[0], p[1] - last[1]) < MIN_STEP) return;
    if (info && pointCount() >= info.limits.points) {
      setState("error", `at most ${info.limits.points} points: undo or clear`);
      return;
    }
    pts.push(p);
  }

  canvas.addEventListener("pointerdown", (event) => {
    if (current || !info || (event.pointerType === "mouse" && event.button !== 0)) return;
    if (strokes.length >= info.limits.strokes) {
      setState("error", `at most ${info.limits.strokes} strokes: undo or clear`);
      return;
    }
    event.preventDefault();
    canvas.setPointerCapture(event.pointerId);
    current = { id: event.pointerId, points: [] };
    addPoint(event);
    redraw();
  });

  canvas.addEventListener("pointermove", (event) => {
    if (!current || event.pointerId !== current.id) return;
    event.preventDefault();
    const events = event.getCoalescedEvents ? event.getCoalescedEvents() : [];
    for (const e of (events.length ? events : [event])) addPoint(e);
    redraw();
  });

  function endStroke(event) {
    if (!current || event.pointerId !== current.id) return;
    if (event.type === "pointerup") addPoint(event);
    if (current.points.length) strokes.push(current.points);
    current = null;
    redraw();
    schedule();
  }
  canvas.addEventListener("pointerup", endStroke);
  canvas.addEventListener("pointercancel", endStroke);
  canvas.addEventListener("contextmenu", (event) => event.preventDefault());

  $("undo").addEventListener("click", () => { strokes.pop(); redraw(); schedule(); });
  $("clear").addEventListener("click", () => { strokes = []; redraw(); schedule(); });
  $("width").addEventListener("input", redraw);
  $("k").addEventListener("change", schedule);
  $("text").addEventListener("input", schedule);
  document.addEventListener("keydown", (event) => {
    if ((event.ctrlKey || event.metaKey) && event.key === "z" && event.target === document.body) {
      event.preventDefault();
      $("undo").click();
    }
  });
  window.addEventListener("resize", resize);

  // ------------------------------------------------------------------ searching
  function strokeRows() {
    const rows = [];
    for (const s of strokes) {
      s.forEach((p, i) => rows.push([p[0], p[1], i === s.length - 1 ? 1 : 0]));
    }
    return rows;
  }

  function schedule() {
    clearTimeout(timer);
    timer = setTimeout(search, DEBOUNCE_MS);
  }

  function cancelScheduled() {
    clearTimeout(timer);
    timer = null;
  }

  function showResults(answer) {
    const grid = $("results");
    grid.replaceChildren();
    for (const r of answer.results) {
      const fig = document.createElement("figure");
      fig.dataset.row = r.row;
      fig.dataset.rank = r.rank;
      const img = document.createElement("img");
      img.src = `/photo/${r.row}`;
      img.alt = r.name;
      const cap = document.createElement("figcaption");
      const rank = document.createElement("span");
      rank.className = "rank";
      rank.textContent = `#${r.rank}`;
      const score = document.createElement("span");
      score.className = "score";
      score.textContent = r.score.toFixed(3);
      cap.append(rank, score);
      const name = document.createElement("span");
      name.className = "name";
      name.textContent = `row ${r.row} · ${r.name}`;
      fig.append(img, cap, name);
      grid.append(fig);
    }
    const seen = $("model-input");
    if (answer.query_image) {
      $("query-image").src = answer.query_image;
      seen.hidden = false;
    } else {
      seen.hidden = true;
    }
  }

  async function search() {
    cancelScheduled();
    const text = info && info.text ? $("text").value.trim() : "";
    const rows = strokeRows();
    if (!rows.length && !text) {
      sent += 1;
      if (controller) controller.abort();
      $("results").replaceChildren();
      $("model-input").hidden = true;
      setState("ready", "draw a stroke");
      hook.lastResponse = null;
      return null;
    }
    const k = Math.max(1, Math.min(Number($("k").value) || 10, info ? info.limits.k : 100));
    const body = { strokes: rows, k };
    if (text) body.text = text;
    const mine = ++sent;
    if (controller) controller.abort();
    controller = new AbortController();
    hook.lastRequest = body;
    setState("searching", "searching\u2026");
    inflight += 1;
    try {
      const response = await fetch("/api/search", {
        method: "POST", headers: { "Content-Type": "application/json" },
        body: JSON.stringify(body), signal: controller.signal,
      });
      const answer = await response.json();
      if (mine !== sent) return null;
      if (!response.ok) throw new Error(answer.error || `HTTP ${response.status}`);
      showResults(answer);
      hook.lastResponse = answer;
      hook.responses += 1;
      setState("ready", `${strokes.length} stroke${strokes.length === 1 ? "" : "s"}, ` +
               `${rows.length} points: top ${answer.results.length} in ${answer.elapsed_ms} ms`);
      return answer;
    } catch (error) {
      if (error.name === "AbortError" || mine !== sent) return null;
      hook.lastError = String(error.message || error);
      setState("error", hook.lastError);
      return null;
    } finally {
      inflight -= 1;
    }
  }

  // ------------------------------------------------------------------ start
  async function start() {
    try {
      const response = await fetch("/api/info");
      info = await response.json();
      if (!response.ok) throw new Error(info.error || `HTTP ${response.status}`);
    } catch (error) {
      info = null;
      setState("error", `cannot reach the server: ${error.message || error}`);
      return;
    }
    $("info").textContent = `${info.method} \u00b7 run ${info.run} \u00b7 step ${info.step} ` +
      `\u00b7 ${info.count} photos`;
    $("k").value = info.k;
    $("k").max = info.limits.k;
    $("text-row").hidden = !info.text;
    hook.info = info;
    resize();
    setState("ready", "draw a stroke");
  }
  start();
})();
