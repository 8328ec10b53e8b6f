// layerflow ui: live updates over server-sent events (charts: charts.js, shared with the reports).
"use strict";
// A run in progress: append epochs and output as the server sends them; switch the status at the end.
function followRun(runId, run, offsets, chartsBox, logBox, statusBox) {
  let charts = drawCharts(chartsBox, [run]);
  const url = `/runs/${runId}/events?metrics=${offsets.metrics}&log=${offsets.log}`;
  const source = new EventSource(url);
  source.addEventListener("metrics", event => {
    for (const epoch of JSON.parse(event.data)) {
      const n = run.data.epoch.length;
      run.data.epoch.push(epoch.epoch ?? n + 1);
      for (const [key, value] of Object.entries(epoch)) {
        if (["epoch", "time", "fit"].includes(key) || typeof value !== "number") continue;
        if (!(key in run.data)) run.data[key] = new Array(n).fill(null);
      }
      for (const key of Object.keys(run.data)) if (key !== "epoch") run.data[key].push(typeof epoch[key] === "number" ? epoch[key] : null);
    }
    const names = metricNames([run]);
    if (names.some(m => !(m in charts))) { charts = drawCharts(chartsBox, [run]); return; }
    for (const metric of names) {
      const panel = alignedPanel([run], metric);
      charts[metric].setData(panel.data);
      charts[metric].root.parentElement.dataset.points = String(panel.data[0].length);
    }
    chartsBox.dataset.epochs = String(run.data.epoch.length);
  });
  source.addEventListener("output", event => {
    const atBottom = logBox.scrollTop + logBox.clientHeight >= logBox.scrollHeight - 20;
    logBox.appendChild(document.createTextNode(JSON.parse(event.data)));
    if (atBottom) logBox.scrollTop = logBox.scrollHeight;
  });
  source.addEventListener("status", event => {
    const end = JSON.parse(event.data);
    statusBox.textContent = end.status;
    statusBox.className = "status status-" + end.status;
    document.body.dataset.runStatus = end.status;
    source.close();
  });
  return source;
}

// Runs table: compare the checked runs.
function compareSelected(form) {
  const ids = [...form.querySelectorAll("input[name=run]:checked")].map(i => i.value);
  if (ids.length < 2) { alert("Select 2 or more runs to compare."); return false; }
  location.href = "/compare?" + ids.map(id => "runs=" + encodeURIComponent(id)).join("&");
  return false;
}
