export function median(xs) {
  const v = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (!v.length) return null;
  const m = v.length >> 1;
  return v.length % 2 ? v[m] : (v[m - 1] + v[m]) / 2;
}

export function summary(xs) {
  const v = xs.filter((x) => Number.isFinite(x));
  if (!v.length) return null;
  return { median: median(v), min: Math.min(...v), max: Math.max(...v), n: v.length, values: v };
}

/** Rotates a list by r places (interleaving order changes every round). */
export function rotate(list, r) {
  if (!list.length) return list;
  const k = r % list.length;
  return [...list.slice(k), ...list.slice(0, k)];
}
