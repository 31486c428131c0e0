// Percentiles over recorded samples, and the JSON-line output every benchmark uses.

export function percentile(samples: Float64Array, count: number, p: number): number {
  if (count === 0) return 0;
  const sorted = samples.slice(0, count).sort();
  const idx = Math.min(count - 1, Math.ceil((p / 100) * count) - 1);
  return sorted[Math.max(0, idx)]!;
}

export function emit(row: Record<string, unknown>): void {
  process.stdout.write(JSON.stringify(row) + "\n");
}

export function round(x: number, digits = 3): number {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}
