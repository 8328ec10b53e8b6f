// Metric charts of runs (uPlot), shared by `layerflow show/compare` reports and `layerflow ui`.
"use strict";
const COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"];

// Panels of one or more runs: one chart per metric, training solid and validation dashed.
// runs: [{label, data: {epoch: [...], loss: [...], val_loss: [...]}}]
function metricNames(runs) {
  const names = [];
  for (const run of runs) for (const key of Object.keys(run.data)) {
    if (key === "epoch") continue;
    const base = key.replace(/^val_/, "");
    if (!names.includes(base)) names.push(base);
  }
  return names.sort((a, b) => (a !== "loss") - (b !== "loss"));
}

function alignedPanel(runs, metric) {
  // One x axis (the union of epochs) and a series per run and split; null where a run has no value.
  const epochs = [...new Set(runs.flatMap(r => r.data.epoch || []))].sort((a, b) => a - b);
  const data = [epochs], series = [{label: "epoch"}];
  runs.forEach((run, i) => {
    for (const [key, dash, split] of [[metric, undefined, ""], ["val_" + metric, [6, 4], "val "]]) {
      if (!(key in run.data)) continue;
      const byEpoch = new Map(run.data.epoch.map((e, j) => [e, run.data[key][j]]));
      data.push(epochs.map(e => byEpoch.has(e) ? byEpoch.get(e) : null));
      series.push({label: (runs.length > 1 ? run.label + " " : "") + split + metric,
                   stroke: runs.length > 1 ? COLORS[i % COLORS.length] : (split ? COLORS[1] : COLORS[0]),
                   dash: dash, width: 2, spanGaps: true, points: {show: true, size: 5}});
    }
  });
  return {data, series};
}

function drawCharts(container, runs) {
  container.innerHTML = "";
  const charts = {};
  for (const metric of metricNames(runs)) {
    const box = document.createElement("div");
    box.className = "chart";
    box.dataset.metric = metric;
    container.appendChild(box);
    const panel = alignedPanel(runs, metric);
    const chart = new uPlot({title: metric, width: 520, height: 260, series: panel.series,
                             scales: {x: {time: false}}, axes: [{label: "epoch", incrs: [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000]}, {}]},
                             panel.data, box);
    charts[metric] = chart;
    box.dataset.points = String(panel.data[0].length);
  }
  container.dataset.epochs = String(Math.max(0, ...runs.map(r => (r.data.epoch || []).length)));
  return charts;
}

// Tuning: one scatter per flag, the metric on y, the best trial drawn larger.
function drawScatter(container, trials, flag, metric, bestId) {
  const points = trials.filter(t => t[flag] !== null && t[metric] !== null && typeof t[metric] === "number");
  const numeric = points.every(t => typeof t[flag] === "number");
  const categories = numeric ? null : [...new Set(points.map(t => String(t[flag])))].sort();
  const x = t => numeric ? t[flag] : categories.indexOf(String(t[flag]));
  points.sort((a, b) => x(a) - x(b));
  const box = document.createElement("div");
  box.className = "chart";
  container.appendChild(box);
  const best = points.map(t => t.id === bestId ? t[metric] : null);
  const pad = (min, max) => { const d = (max - min) * 0.08 || 0.5; return [min - d, max + d]; };  // no point on the edge
  const opts = {title: `${metric} by ${flag}`, width: 380, height: 240,
    scales: {x: {time: false, range: (u, min, max) => pad(min, max)}, y: {range: (u, min, max) => pad(min, max)}},
    axes: [{label: flag, values: numeric ? undefined : (u, ticks) => ticks.map(v => categories[v] ?? "")}, {}],
    series: [{label: flag}, {label: metric, stroke: COLORS[0], paths: () => null, points: {show: true, size: 8}},
             {label: "best", stroke: COLORS[3], paths: () => null, points: {show: true, size: 14, width: 3}}]};
  new uPlot(opts, [points.map(x), points.map(t => t[metric]), best], box);
}


// System metrics of a run (system_metrics.jsonl): one chart per measure against seconds since the start.
// data: {seconds: [...], cpu_percent: [...], memory_rss_mib: [...], ...}
function drawSystemCharts(container, data) {
  container.innerHTML = "";
  const titles = {cpu_percent: "CPU % (process tree)", memory_rss_mib: "memory RSS (MiB)", processes: "processes",
                  host_cpu_percent: "host CPU %", host_memory_percent: "host memory %"};
  for (const key of Object.keys(data)) {
    if (key === "seconds") continue;
    const box = document.createElement("div");
    box.className = "chart";
    box.dataset.metric = key;
    container.appendChild(box);
    new uPlot({title: titles[key] || key.replace(/_/g, " "), width: 380, height: 200,
               scales: {x: {time: false}}, axes: [{label: "seconds"}, {}],
               series: [{label: "seconds"}, {label: key, stroke: COLORS[0], width: 2, spanGaps: true, points: {show: true, size: 4}}]},
              [data.seconds, data[key]], box);
    box.dataset.points = String(data.seconds.length);
  }
}
