// A small SVG line chart: a fixed window of points per series, the y axis scaled
// to what is shown, a legend with each series' latest value. No dependencies.

const NS = "http://www.w3.org/2000/svg";
const COLORS = ["#2f6fde", "#23853f", "#c4362b", "#b06d00", "#7a3fc4", "#0d8c8c", "#8a8f98", "#d4458f"];

export class LineChart {
  constructor(el, { unit = "", points = 120 } = {}) {
    this.el = el;
    this.unit = unit;
    this.points = points;
    this.series = new Map(); // name -> array of values (null: gap)
    this.svg = document.createElementNS(NS, "svg");
    this.svg.setAttribute("viewBox", "0 0 600 170");
    this.svg.setAttribute("preserveAspectRatio", "none");
    this.legend = document.createElement("div");
    this.legend.className = "legend";
    el.append(this.svg, this.legend);
  }

  // One step: `values` maps series names to numbers (missing: a gap).
  push(values) {
    for (const name of Object.keys(values)) {
      if (!this.series.has(name)) {
        this.series.set(name, new Array(this.length()).fill(null));
      }
    }
    for (const [name, arr] of this.series) {
      const v = values[name];
      arr.push(typeof v === "number" && Number.isFinite(v) ? v : null);
      if (arr.length > this.points) arr.shift();
    }
    this.draw();
  }

  length() {
    for (const arr of this.series.values()) return arr.length;
    return 0;
  }

  // The latest value of a series (for the legend, and for tests).
  latest(name) {
    const arr = this.series.get(name) || [];
    for (let i = arr.length - 1; i >= 0; i--) if (arr[i] !== null) return arr[i];
    return null;
  }

  draw() {
    const W = 600, H = 170, left = 44, bottom = 16, top = 6;
    let max = 0;
    for (const arr of this.series.values()) for (const v of arr) if (v !== null && v > max) max = v;
    max = niceCeil(max);
    const svg = this.svg;
    while (svg.firstChild) svg.firstChild.remove();
    for (const frac of [0, 0.5, 1]) {
      const y = top + (H - bottom - top) * (1 - frac);
      const line = document.createElementNS(NS, "line");
      line.setAttribute("x1", left); line.setAttribute("x2", W);
      line.setAttribute("y1", y); line.setAttribute("y2", y);
      line.setAttribute("class", "axis");
      svg.append(line);
      const label = document.createElementNS(NS, "text");
      label.setAttribute("x", 2); label.setAttribute("y", y + 3);
      label.textContent = fmt(max * frac);
      svg.append(label);
    }
    let i = 0;
    this.legend.replaceChildren();
    for (const [name, arr] of this.series) {
      const color = COLORS[i++ % COLORS.length];
      const step = (W - left) / Math.max(1, this.points - 1);
      const offset = this.points - arr.length;
      let d = [];
      const flush = () => {
        if (d.length > 1) {
          const pl = document.createElementNS(NS, "polyline");
          pl.setAttribute("points", d.join(" "));
          pl.setAttribute("stroke", color);
          pl.dataset.series = name;
          svg.append(pl);
        }
        d = [];
      };
      arr.forEach((v, j) => {
        if (v === null) { flush(); return; }
        const x = left + (offset + j) * step;
        const y = top + (H - bottom - top) * (1 - (max ? v / max : 0));
        d.push(`${x.toFixed(1)},${y.toFixed(1)}`);
      });
      flush();
      const item = document.createElement("span");
      const sw = document.createElement("span");
      sw.className = "swatch";
      sw.style.background = color;
      const value = document.createElement("b");
      const last = this.latest(name);
      value.textContent = last === null ? "—" : fmt(last) + this.unit;
      value.dataset.series = name;
      value.dataset.value = last === null ? "" : String(last);
      item.append(sw, `${name} `, value);
      this.legend.append(item);
    }
  }
}

function niceCeil(v) {
  if (v <= 0) return 1;
  const p = Math.pow(10, Math.floor(Math.log10(v)));
  for (const m of [1, 2, 2.5, 5, 10]) if (v <= m * p) return m * p;
  return 10 * p;
}

export function fmt(v) {
  if (v === null || v === undefined) return "—";
  const a = Math.abs(v);
  if (a >= 1e6) return (v / 1e6).toFixed(1) + "M";
  if (a >= 1e4) return (v / 1e3).toFixed(1) + "k";
  if (a >= 100) return v.toFixed(0);
  if (a >= 1) return v.toFixed(1);
  return v.toFixed(2);
}
