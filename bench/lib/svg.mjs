// Hand-written SVG: grouped bars (one group per algorithm, one bar per
// contender) of a median with a min-max whisker. No dependencies.

const esc = (s) => String(s).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");

/** Axis top and tick step: a round step (1, 2, 2.5, 5 x 10^k) giving 4 to 8 ticks. */
function niceScale(v) {
  if (!(v > 0)) return { top: 1, step: 0.25 };
  const exp = 10 ** Math.floor(Math.log10(v));
  for (const m of [0.1, 0.2, 0.25, 0.5, 1, 2, 2.5, 5, 10]) {
    const step = m * exp;
    const n = Math.ceil(v / step);
    if (n <= 8) return { top: n * step, step };
  }
  return { top: Math.ceil(v / (10 * exp)) * 10 * exp, step: 10 * exp };
}

/**
 * groups: [{ label, bars: [{ series, median, min, max }] }]
 * series: [{ id, label, color }]
 * reference: optional [{ value, label }] horizontal dashed lines
 */
export function groupedBars({ title, subtitle, yLabel, groups, series, references = [], width = 980, height = 560, note }) {
  const m = { top: 86, right: 44, bottom: 124, left: 78 };
  const w = width - m.left - m.right;
  const h = height - m.top - m.bottom;
  const { top, step } = niceScale(Math.max(...groups.flatMap((g) => g.bars.map((b) => b.max ?? b.median ?? 0)), ...references.map((r) => r.value)) * 1.08);
  const y = (v) => m.top + h - (v / top) * h;
  const ticks = Math.round(top / step);
  const out = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="-apple-system, 'Segoe UI', Helvetica, Arial, sans-serif">`);
  out.push(`<rect width="${width}" height="${height}" fill="#ffffff"/>`);
  out.push(`<text x="${m.left}" y="30" font-size="19" font-weight="600" fill="#1f2328">${esc(title)}</text>`);
  if (subtitle) out.push(`<text x="${m.left}" y="52" font-size="12.5" fill="#57606a">${esc(subtitle)}</text>`);
  // Grid and axis labels.
  for (let i = 0; i <= ticks; i++) {
    const v = (top / ticks) * i;
    const yy = y(v).toFixed(1);
    out.push(`<line x1="${m.left}" x2="${m.left + w}" y1="${yy}" y2="${yy}" stroke="${i ? "#eaeef2" : "#8c959f"}" stroke-width="1"/>`);
    out.push(`<text x="${m.left - 8}" y="${yy}" dy="4" font-size="12" text-anchor="end" fill="#57606a">${(Math.round(v * 100) / 100).toLocaleString("en-US")}</text>`);
  }
  out.push(`<text transform="translate(20 ${m.top + h / 2}) rotate(-90)" font-size="13" text-anchor="middle" fill="#1f2328">${esc(yLabel)}</text>`);
  // Bars.
  const gw = w / groups.length;
  const pad = gw * 0.14;
  groups.forEach((g, gi) => {
    const present = series.filter((s) => g.bars.some((b) => b.series === s.id));
    const bw = (gw - 2 * pad) / Math.max(1, present.length);
    const x0 = m.left + gi * gw + pad;
    present.forEach((s, si) => {
      const b = g.bars.find((bb) => bb.series === s.id);
      if (!b || b.median == null) return;
      const x = x0 + si * bw + bw * 0.08;
      const bwi = bw * 0.84;
      out.push(`<rect x="${x.toFixed(1)}" y="${y(b.median).toFixed(1)}" width="${bwi.toFixed(1)}" height="${(y(0) - y(b.median)).toFixed(1)}" fill="${s.color}" rx="2"><title>${esc(`${s.label}, ${g.label}: median ${Math.round(b.median)} (min ${Math.round(b.min)}, max ${Math.round(b.max)})`)}</title></rect>`);
      if (b.min != null && b.max != null && b.max > b.min) {
        const cx = (x + bwi / 2).toFixed(1);
        const cap = Math.min(8, bwi * 0.35);
        out.push(`<g stroke="#1f2328" stroke-width="1.3"><line x1="${cx}" x2="${cx}" y1="${y(b.max).toFixed(1)}" y2="${y(b.min).toFixed(1)}"/>` +
          `<line x1="${(x + bwi / 2 - cap / 2).toFixed(1)}" x2="${(x + bwi / 2 + cap / 2).toFixed(1)}" y1="${y(b.max).toFixed(1)}" y2="${y(b.max).toFixed(1)}"/>` +
          `<line x1="${(x + bwi / 2 - cap / 2).toFixed(1)}" x2="${(x + bwi / 2 + cap / 2).toFixed(1)}" y1="${y(b.min).toFixed(1)}" y2="${y(b.min).toFixed(1)}"/></g>`);
      }
      if (bwi >= 26) {
        out.push(`<text x="${(x + bwi / 2).toFixed(1)}" y="${(y(b.max ?? b.median) - 5).toFixed(1)}" font-size="10.5" text-anchor="middle" fill="#1f2328">${Math.round(b.median)}</text>`);
      }
    });
    out.push(`<text x="${(m.left + gi * gw + gw / 2).toFixed(1)}" y="${m.top + h + 22}" font-size="14" font-weight="600" text-anchor="middle" fill="#1f2328">${esc(g.label)}</text>`);
  });
  // Reference lines over the bars; their values sit in the right margin
  // (stacked so they never overlap), their names in the legend.
  let lastLabelY = -Infinity;
  for (const r of [...references].sort((a, b) => b.value - a.value)) {
    const yv = y(r.value);
    out.push(`<line x1="${m.left}" x2="${m.left + w}" y1="${yv.toFixed(1)}" y2="${yv.toFixed(1)}" stroke="${r.color}" stroke-width="1.6" stroke-dasharray="${r.dash ?? "7 4"}"/>`);
    const ly = Math.max(yv + 4, lastLabelY + 13);
    lastLabelY = ly;
    out.push(`<text x="${m.left + w + 5}" y="${ly.toFixed(1)}" font-size="11.5" fill="${r.color}">${Math.round(r.value)}</text>`);
  }
  // Legend (wraps).
  let lx = m.left, ly = m.top + h + 50;
  const items = [...series.map((s) => ({ ...s, kind: "bar" })), ...references.map((r) => ({ ...r, kind: "line" }))];
  for (const s of items) {
    const label = esc(s.label);
    const sw = s.kind === "bar" ? 19 : 30;
    const lw = sw + s.label.length * 6.4 + 22;
    if (lx + lw > width - m.right) {
      lx = m.left;
      ly += 20;
    }
    if (s.kind === "bar") out.push(`<rect x="${lx}" y="${ly - 10}" width="13" height="13" rx="2" fill="${s.color}"/>`);
    else out.push(`<line x1="${lx}" x2="${lx + 24}" y1="${ly - 4}" y2="${ly - 4}" stroke="${s.color}" stroke-width="1.6" stroke-dasharray="${s.dash ?? "7 4"}"/>`);
    out.push(`<text x="${lx + sw}" y="${ly + 1}" font-size="12.5" fill="#1f2328">${label}</text>`);
    lx += lw;
  }
  if (note) out.push(`<text x="${m.left}" y="${height - 10}" font-size="11" fill="#57606a">${esc(note)}</text>`);
  out.push(`<text x="${m.left}" y="68" font-size="11.5" fill="#57606a">Bars: median of rounds. Whiskers: min–max across rounds. Lower is better.</text>`);
  out.push(`</svg>`);
  return out.join("\n") + "\n";
}
