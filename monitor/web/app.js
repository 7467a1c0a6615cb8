// app.js -- the hb-monitor dashboard: polls /api/series once a second (only
// the seconds it has not seen), keeps the last MAX_POINTS, and draws six
// uPlot charts plus the latest values.  With ?check in the URL it also counts
// the pixels each series' line left on its canvas and writes the counts into
// the DOM (data-ink), so a headless browser test can tell drawn charts from
// empty ones.
'use strict';

const MAX_POINTS = 900;
const CHECK = new URLSearchParams(location.search).has('check');

// Each chart: id, title, y-axis label, series (column or function of a row).
const CHARTS = [
  { id: 'conns', title: 'Connections', y: 'connections', series: [
    { label: 'server', col: 'server_conns', stroke: '#1f77b4' },
    { label: 'clients', col: 'client_conns', stroke: '#ff7f0e' } ] },
  { id: 'qps', title: 'Shakes: client send rate vs server reply rate', y: 'per second', series: [
    { label: 'client send', col: 'client_send_qps', stroke: '#2ca02c' },
    { label: 'server reply', col: 'server_reply_qps', stroke: '#d62728' },
    { label: 'target', col: 'target_qps', stroke: '#999999', dash: [6, 4] } ] },
  { id: 'packets', title: 'Packets created vs won', y: 'packets per second', series: [
    { label: 'created', col: 'created_ps', stroke: '#9467bd' },
    { label: 'won', col: 'won_ps', stroke: '#8c564b' } ] },
  { id: 'send', title: 'Send flow: notices and opens', y: 'per second', series: [
    { label: 'notices', col: 'notices_ps', stroke: '#17becf' },
    { label: 'opens', col: 'opens_ps', stroke: '#e377c2' } ] },
  { id: 'latency', title: 'Reply latency (clients)', y: 'milliseconds', series: [
    { label: 'p50', col: 'lat_p50_us', scale: 0.001, stroke: '#1f77b4', gapIfNone: true },
    { label: 'p99', col: 'lat_p99_us', scale: 0.001, stroke: '#d62728', gapIfNone: true } ] },
  { id: 'errors', title: 'Errors', y: 'per second', series: [
    { label: 'server', col: 'server_errors_ps', stroke: '#d62728' },
    { label: 'clients', col: 'client_errors_ps', stroke: '#ff7f0e' } ] },
];

let columns = null; // name -> index, from the first answer
let rows = [];      // arrays in column order (a cluster's: then one [replies, conns] pair per node)
let last = 0;       // newest second we have
let ncols = 0;      // columns in a row
let nodes = [];     // server instances (cluster nodes) in the order the monitor gives their pairs
const charts = {};

// A cluster (more than one server instance): one line per node, shakes
// answered and connections, in two more charts made when the nodes appear.
const NODE_COLOURS = ['#1f77b4', '#d62728', '#2ca02c', '#9467bd', '#ff7f0e', '#17becf', '#8c564b', '#e377c2',
                      '#bcbd22', '#7f7f7f', '#393b79', '#ad494a', '#637939', '#8c6d31', '#7b4173', '#3182bd'];
const NODE_CHARTS = [
  { id: 'node-qps', title: 'Shakes answered per node', y: 'per second', pick: 0 },
  { id: 'node-conns', title: 'Connections per node', y: 'connections', pick: 1 },
];
function nodeChartDefs() {
  return NODE_CHARTS.map(c => ({ id: c.id, title: c.title, y: c.y, series: nodes.map((name, k) => ({
    label: name, stroke: NODE_COLOURS[k % NODE_COLOURS.length],
    value: r => { const p = r[ncols]; // the pairs come after the columns
                  return Array.isArray(p) && p[k] ? p[k][c.pick] : null; } })) }));
}

function el(tag, attrs, text) {
  const e = document.createElement(tag);
  for (const k in attrs || {}) e.setAttribute(k, attrs[k]);
  if (text !== undefined) e.textContent = text;
  return e;
}

function fmt(v) {
  if (v === null || v === undefined || Number.isNaN(v)) return '–';
  return v >= 100 ? Math.round(v).toLocaleString('en-US') : (Math.round(v * 100) / 100).toString();
}

function makeCharts(defs) {
  const host = document.getElementById('charts');
  for (const c of defs || CHARTS) {
    const old = document.getElementById('chart-' + c.id);
    if (old) { if (charts[c.id]) charts[c.id].plot.destroy(); delete charts[c.id]; old.remove(); }
    const box = el('div', { class: 'chart', id: 'chart-' + c.id, 'data-points': '0' });
    const meta = el('div', { class: 'meta' });
    meta.append(el('span', { id: 'pts-' + c.id }, '0'), ' points');
    if (CHECK) meta.append(' · ink ', el('span', { id: 'ink-' + c.id }, '0'));
    box.append(meta);
    host.append(box);
    if (typeof uPlot === 'undefined') continue;
    const opts = {
      title: c.title,
      width: Math.max(400, box.clientWidth - 12),
      height: 240,
      scales: { x: { time: true } },
      series: [{ label: 'time' }].concat(c.series.map(s => ({
        label: s.label, stroke: s.stroke, width: 2, dash: s.dash, points: { show: false } }))),
      axes: [{ label: 'time (local)' }, { label: c.y, size: 70 }],
    };
    charts[c.id] = { def: c, box, plot: new uPlot(opts, [[]].concat(c.series.map(() => [])), box) };
  }
}

function seriesData(c) {
  const x = rows.map(r => r[columns.second]);
  // a second without replies has no latency: a gap, not a fake zero
  const ys = c.series.map(s => rows.map(r => s.value ? s.value(r) :
    s.gapIfNone && !r[columns.lat_count] ? null : r[columns[s.col]] * (s.scale || 1)));
  return [x].concat(ys);
}

// Pixels of each series' colour on the chart canvas (check mode only).
function ink(ch) {
  const canvas = ch.box.querySelector('canvas');
  if (!canvas) return [];
  const ctx = canvas.getContext('2d');
  const px = ctx.getImageData(0, 0, canvas.width, canvas.height).data;
  return ch.def.series.map(s => {
    const r = parseInt(s.stroke.slice(1, 3), 16), g = parseInt(s.stroke.slice(3, 5), 16),
          b = parseInt(s.stroke.slice(5, 7), 16);
    let n = 0;
    for (let i = 0; i < px.length; i += 4)
      if (px[i + 3] > 200 && Math.abs(px[i] - r) < 24 && Math.abs(px[i + 1] - g) < 24 && Math.abs(px[i + 2] - b) < 24) n++;
    return n;
  });
}

function redraw() {
  for (const id in charts) {
    const ch = charts[id];
    ch.plot.setData(seriesData(ch.def));
    ch.box.setAttribute('data-points', String(rows.length));
    document.getElementById('pts-' + id).textContent = String(rows.length);
  }
  for (const c of CHARTS)
    if (!charts[c.id]) document.getElementById('pts-' + c.id).textContent = String(rows.length);
  if (CHECK) // uPlot draws in a microtask after setData: look once it is done
    setTimeout(() => {
      for (const id in charts) {
        const counts = ink(charts[id]);
        charts[id].box.setAttribute('data-ink', counts.join(','));
        document.getElementById('ink-' + id).textContent = counts.join(',');
      }
    }, 0);
}

function showLatest(data) {
  const r = rows[rows.length - 1];
  if (!r) return;
  const v = name => r[columns[name]];
  for (const name of ['server_conns', 'client_conns', 'client_send_qps', 'server_reply_qps', 'created_ps', 'won_ps',
                      'opens_ps'])
    document.getElementById('v-' + name).textContent = fmt(v(name));
  const lat = v('lat_count') > 0;
  document.getElementById('v-lat_p50_us').textContent = lat ? fmt(v('lat_p50_us') / 1000) : '–';
  document.getElementById('v-lat_p99_us').textContent = lat ? fmt(v('lat_p99_us') / 1000) : '–';
  document.getElementById('v-errors_ps').textContent = fmt(v('server_errors_ps') + v('client_errors_ps'));
  document.getElementById('v-instances').textContent = v('servers') + ' · ' + v('clients');
  const tbody = document.querySelector('#instances tbody');
  tbody.replaceChildren(...data.instances.map(i => {
    const tr = el('tr');
    for (const cell of [i.role, i.instance, new Date(i.last_second * 1000).toLocaleTimeString(),
                        fmt(i.connections), i.restarts, i.boot_id])
      tr.append(el('td', {}, String(cell)));
    return tr;
  }));
  const e = data.events;
  document.getElementById('events').textContent =
    `reports: ${e.accepted} merged, ${e.late} late, ${e.duplicate} duplicate, ${e.bad} bad, ${e.future} ahead of ` +
    `the clock; ${e.filled} lost reports interpolated, ${e.restarts} restarts seen`;
}

async function poll() {
  const status = document.getElementById('status');
  try {
    const res = await fetch('/api/series?since=' + last + '&limit=' + MAX_POINTS, { cache: 'no-store' });
    if (!res.ok) throw new Error('HTTP ' + res.status);
    const data = await res.json();
    if (!columns) {
      columns = {};
      data.columns.forEach((name, i) => { columns[name] = i; });
      ncols = data.columns.length;
    }
    const names = data.nodes || [];
    if (names.length > 1 && names.join('\n') !== nodes.join('\n')) { // a node more: its own line
      nodes = names;
      makeCharts(nodeChartDefs());
    }
    if (data.rows.length) {
      rows = rows.concat(data.rows).slice(-MAX_POINTS);
      last = rows[rows.length - 1][columns.second];
      redraw();
    }
    showLatest(data);
    const age = data.now - last;
    status.textContent = rows.length
      ? `last merged second ${new Date(last * 1000).toLocaleTimeString()} (${age} s ago, ${data.settle} s settle) · ` +
        `${rows.length} seconds shown`
      : 'waiting for reports…';
    status.classList.toggle('stale', rows.length > 0 && age > data.settle + 3);
  } catch (err) {
    status.textContent = 'monitor unreachable: ' + err.message;
    status.classList.add('stale');
  }
}

if (typeof uPlot === 'undefined') document.getElementById('libmissing').hidden = false;
makeCharts();
poll();
setInterval(poll, 1000);
