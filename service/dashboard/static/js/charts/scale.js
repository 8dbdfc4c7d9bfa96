// Scales and ticks shared by the charts.

/** Maps [d0, d1] linearly onto [r0, r1]. */
export function linear([d0, d1], [r0, r1]) {
  const span = d1 - d0 || 1;
  return (value) => r0 + ((value - d0) / span) * (r1 - r0);
}

/** Round tick values covering [min, max], about `count` of them: steps of 1, 2 or 5 times a power of 10. */
export function niceTicks(min, max, count = 5) {
  const span = max - min;
  if (!(span > 0)) return { ticks: [min], digits: 2 };
  const raw = span / count;
  const power = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((multiple) => multiple * power).find((candidate) => candidate >= raw);
  const ticks = [];
  for (let value = Math.ceil(min / step) * step; value <= max + step * 1e-9; value += step) {
    ticks.push(Number(value.toFixed(12)));
  }
  return { ticks, digits: Math.max(0, -Math.floor(Math.log10(step))) };
}

/** [min, max] of the values, widened by `pad` of their span (or a little, around a single value). */
export function paddedExtent(values, pad = 0.1) {
  const min = Math.min(...values);
  const max = Math.max(...values);
  const margin = (max - min) * pad || Math.abs(max) * 0.01 || 0.01;
  return [min - margin, max + margin];
}
