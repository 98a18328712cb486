// Charts through Chart.js from Debian's libjs-chart.js, served by the hub at
// /console/vendor/chart.min.js. Without it the chart says so and the numbers stay in the tables.
import { h } from './dom.js';

const palette = ['#1d4e89', '#d1495b', '#2e933c', '#edae49', '#00798c', '#7b2cbf', '#6c757d'];

export function lineChart(container, seriesNames, opts = {}) {
  const canvas = h('canvas', {});
  const box = h('div', { class: 'chart' }, canvas);
  container.appendChild(box);
  if (!window.Chart) {
    box.replaceChildren(h('p', { class: 'muted' }, 'Charts need Chart.js (Debian package libjs-chart.js) on the hub.'));
    return { push() {}, set() {}, destroy() {} };
  }
  const chart = new window.Chart(canvas, {
    type: 'line',
    data: { labels: [], datasets: seriesNames.map((n, i) => ({ label: n, data: [], borderColor: palette[i % palette.length], backgroundColor: palette[i % palette.length], pointRadius: opts.points ? 2 : 0, borderWidth: 2, tension: 0.2, yAxisID: opts.axes ? opts.axes[i] : 'y' })) },
    options: {
      animation: false, responsive: true, maintainAspectRatio: false, interaction: { mode: 'index', intersect: false },
      scales: opts.scales || { x: { ticks: { maxTicksLimit: 8 } }, y: { beginAtZero: true } },
      plugins: { legend: { position: 'bottom' } },
    },
  });
  const max = opts.maxPoints || 300;
  return {
    push(label, values) {
      chart.data.labels.push(label);
      values.forEach((v, i) => chart.data.datasets[i].data.push(v));
      if (chart.data.labels.length > max) { chart.data.labels.shift(); chart.data.datasets.forEach((d) => d.data.shift()); }
      chart.update('none');
    },
    set(labels, columns) {
      chart.data.labels = labels;
      columns.forEach((c, i) => { chart.data.datasets[i].data = c; });
      chart.update('none');
    },
    destroy() { chart.destroy(); },
  };
}

export function hhmmss(ms) { return new Date(ms).toISOString().slice(11, 19); }
