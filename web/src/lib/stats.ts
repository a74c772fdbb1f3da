// Rates and quantiles from two snapshots of cumulative counters, as Prometheus's
// rate() and histogram_quantile() compute them.
import type { Histogram, ModelStats, StatsSnapshot } from "./types";

export function difference(now: Histogram, before: Histogram | undefined): Histogram {
  if (!before || before.counts.length !== now.counts.length || before.count > now.count) return now;
  return {
    bounds: now.bounds,
    counts: now.counts.map((c, i) => c - before.counts[i]!),
    count: now.count - before.count,
    sum: now.sum - before.sum,
  };
}

/** The q-quantile of a cumulative histogram, interpolated inside its bucket (null: empty). */
export function quantile(q: number, histogram: Histogram): number | null {
  const total = histogram.count;
  if (total <= 0) return null;
  const rank = q * total;
  for (let i = 0; i < histogram.counts.length; i += 1) {
    const count = histogram.counts[i]!;
    if (count >= rank) {
      if (i >= histogram.bounds.length) return histogram.bounds[histogram.bounds.length - 1] ?? null;
      const upper = histogram.bounds[i]!;
      const lower = i === 0 ? 0 : histogram.bounds[i - 1]!;
      const below = i === 0 ? 0 : histogram.counts[i - 1]!;
      const inside = count - below;
      return inside > 0 ? lower + ((upper - lower) * (rank - below)) / inside : upper;
    }
  }
  return null;
}

export function totalRequests(model: ModelStats): number {
  return Object.values(model.requests).reduce((a, b) => a + b, 0);
}

export function errorRequests(model: ModelStats): number {
  return Object.entries(model.requests)
    .filter(([status]) => Number(status) >= 500)
    .reduce((a, [, n]) => a + n, 0);
}

export interface Traffic {
  requestsPerSecond: number | null;
  p50Ms: number | null;
  p99Ms: number | null;
  meanBatch: number | null;
  /** Whether the latency figures are over the window (true) or the whole uptime (false). */
  windowed: boolean;
}

/** A model's traffic between an older snapshot and now. */
export function traffic(now: ModelStats, nowTime: number, before: StatsSnapshot | undefined): Traffic {
  const old = before?.models.find((m) => m.name === now.name && m.version === now.version);
  const seconds = before ? nowTime - before.time : 0;
  const requestsPerSecond =
    before && seconds > 0 ? Math.max(0, totalRequests(now) - (old ? totalRequests(old) : 0)) / seconds : null;
  const window = difference(now.latency_seconds, old?.latency_seconds);
  const windowed = before !== undefined && window.count > 0 && window !== now.latency_seconds;
  const latency = windowed ? window : now.latency_seconds;
  const batches = difference(now.batch_size, old?.batch_size);
  const batchSource = batches.count > 0 ? batches : now.batch_size;
  const p50 = quantile(0.5, latency);
  const p99 = quantile(0.99, latency);
  return {
    requestsPerSecond,
    p50Ms: p50 === null ? null : p50 * 1000,
    p99Ms: p99 === null ? null : p99 * 1000,
    meanBatch: batchSource.count > 0 ? batchSource.sum / batchSource.count : null,
    windowed,
  };
}
