// The console's only script: follow a stream live (EventSource on the console's
// proxy of the API's SSE endpoint) and draw the lag chart from /console/lag.json.
// No framework, no build step; everything the page shows is set with textContent.
"use strict";

function cell(row, text) {
  const td = document.createElement("td");
  td.textContent = text;
  row.appendChild(td);
  return td;
}

function followStream(button) {
  const status = document.getElementById("live-status");
  const body = document.querySelector("#events tbody");
  let source = null;
  button.addEventListener("click", () => {
    if (source) {
      source.close();
      source = null;
      button.textContent = "Follow live";
      status.textContent = "not following";
      return;
    }
    // After the newest event the page shows (or from the stream's start when it shows
    // none): the live rows continue the table without a gap or a repeat.
    const after = button.dataset.after;
    const query = after ? "?last_event_id=" + encodeURIComponent(after) : "?from=start";
    source = new EventSource(button.dataset.live + query);
    button.textContent = "Stop";
    status.textContent = "connecting";
    source.onopen = () => { status.textContent = "following"; };
    source.onerror = () => { status.textContent = "reconnecting"; };
    source.addEventListener("overflow", () => { status.textContent = "overflow: reconnecting"; });
    source.onmessage = (message) => {
      const event = JSON.parse(message.data);
      const row = document.createElement("tr");
      row.className = "live";
      cell(row, String(event.position ?? ""));
      cell(row, event.ts ?? "");
      cell(row, event.event_type ?? "");
      const link = document.createElement("a");
      link.href = "/console/events/" + encodeURIComponent(event.event_id);
      link.textContent = event.event_id;
      cell(row, "").appendChild(link);
      body.appendChild(row);
      status.textContent = "following (" + body.querySelectorAll("tr.live").length + " live)";
    };
  });
}

const SVG = "http://www.w3.org/2000/svg";

function svgEl(name, attrs) {
  const el = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  return el;
}

function drawLag(chart, history, latest) {
  const width = 640, height = 220, pad = 30;
  const svg = svgEl("svg", { width, height, viewBox: `0 0 ${width} ${height}`, role: "img" });
  const max = Math.max(1, ...history.map((h) => h.total), ...latest.partitions.map((p) => p.lag));
  // Left half: one bar per partition (current lag).
  const parts = latest.partitions;
  const barW = (width / 2 - pad) / Math.max(1, parts.length);
  parts.forEach((p, i) => {
    const h = ((height - 2 * pad) * p.lag) / max;
    const bar = svgEl("rect", {
      x: pad + i * barW + 2, y: height - pad - h, width: barW - 4, height: h,
      class: "bar", "data-partition": p.partition, "data-lag": p.lag,
    });
    svg.appendChild(bar);
    const label = svgEl("text", { x: pad + i * barW + barW / 2, y: height - pad + 14, "text-anchor": "middle" });
    label.textContent = "p" + p.partition + ": " + p.lag;
    svg.appendChild(label);
  });
  // Right half: total lag over the last samples.
  const x0 = width / 2 + pad, w = width / 2 - 2 * pad;
  const points = history.map((h, i) => {
    const x = x0 + (w * i) / Math.max(1, history.length - 1);
    const y = height - pad - ((height - 2 * pad) * h.total) / max;
    return `${x.toFixed(1)},${y.toFixed(1)}`;
  });
  svg.appendChild(svgEl("polyline", { points: points.join(" "), class: "line", fill: "none" }));
  const axis = svgEl("text", { x: x0, y: pad - 8 });
  axis.textContent = "total lag, last " + history.length + " s (max " + max + ")";
  svg.appendChild(axis);
  chart.replaceChildren(svg);
}

function watchLag(chart) {
  const history = [];
  const total = document.getElementById("total-lag");
  const table = document.querySelector("#lag-table tbody");
  async function tick() {
    try {
      const response = await fetch(chart.dataset.source, { credentials: "same-origin" });
      if (!response.ok) throw new Error("HTTP " + response.status);
      const latest = await response.json();
      history.push({ total: latest.total_lag });
      if (history.length > 60) history.shift();
      total.textContent = String(latest.total_lag);
      total.dataset.samples = String(history.length);
      table.replaceChildren(...latest.partitions.map((p) => {
        const row = document.createElement("tr");
        for (const v of [p.partition, p.committed, p.high_watermark, p.lag]) cell(row, String(v));
        return row;
      }));
      drawLag(chart, history, latest);
    } catch (error) {
      total.textContent = "unavailable (" + error.message + ")";
    }
    setTimeout(tick, 1000);
  }
  tick();
}

document.addEventListener("DOMContentLoaded", () => {
  const follow = document.getElementById("follow");
  if (follow) followStream(follow);
  const chart = document.getElementById("lag-chart");
  if (chart) watchLag(chart);
});
