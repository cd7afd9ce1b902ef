/** One measured row of a benchmark table. */
export interface BenchRow {
  name: string;
  /** The measured value (e.g. seconds or requests/s). */
  value: number;
  unit: string;
}

/** Median of a list of numbers. */
export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? (sorted[mid] as number) : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
}

/**
 * Prints rows side by side with their ratio to `baseline` (a row name). `higherIsBetter` decides
 * how the ratio reads: for times, ratio = value / baseline (lower is better); for throughput,
 * ratio = value / baseline (higher is better).
 */
export function printTable(title: string, rows: BenchRow[], baseline: string, note = ''): void {
  const base = rows.find((r) => r.name === baseline);
  const width = Math.max(...rows.map((r) => r.name.length), 10);
  console.log(`\n${title}`);
  console.log(`${'case'.padEnd(width)} | ${'value'.padStart(12)} | unit     | vs ${baseline}`);
  console.log(`${'-'.repeat(width)}-|-${'-'.repeat(12)}-|----------|-${'-'.repeat(baseline.length + 3)}`);
  for (const row of rows) {
    const ratio = base && base.value > 0 ? `${(row.value / base.value).toFixed(2)}×` : 'n/a';
    const value = row.value >= 100 ? row.value.toFixed(0) : row.value.toFixed(3);
    console.log(`${row.name.padEnd(width)} | ${value.padStart(12)} | ${row.unit.padEnd(8)} | ${ratio}`);
  }
  if (note) console.log(note);
}
