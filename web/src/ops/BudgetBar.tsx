// The memory budget as one bar: each resident model's share, memory being freed, memory
// reserved for loads under way, and what is free.
import { formatBytes } from "../lib/format";
import type { CacheState } from "../lib/types";

const PALETTE = ["#1d4ed8", "#047857", "#b45309", "#7c3aed", "#be123c", "#0e7490", "#4d7c0f", "#a21caf"];

interface Segment {
  label: string;
  bytes: number;
  kind: "model" | "freeing" | "reserved" | "free";
  colour?: string;
}

export function BudgetBar({ cache }: { cache: CacheState }) {
  const resident = cache.models.filter((m) => m.footprint_bytes > 0 && m.state !== "UNLOADING");
  const segments: Segment[] = resident.map((m, i) => ({
    label: `${m.name} v${m.version}`,
    bytes: m.footprint_bytes,
    kind: "model",
    colour: PALETTE[i % PALETTE.length],
  }));
  if (cache.freeing_bytes > 0)
    segments.push({ label: "being freed", bytes: cache.freeing_bytes, kind: "freeing" });
  if (cache.reserved_bytes > 0)
    segments.push({ label: "reserved for loads", bytes: cache.reserved_bytes, kind: "reserved" });
  const taken = cache.used_bytes + cache.freeing_bytes + cache.reserved_bytes;
  const free = Math.max(0, cache.budget_bytes - taken);
  const scale = Math.max(cache.budget_bytes, taken) || 1;
  const percent = (bytes: number) => (100 * bytes) / scale;
  const summary = `Memory budget ${formatBytes(cache.budget_bytes)}: ${formatBytes(cache.used_bytes)} used by ${resident.length} resident model${resident.length === 1 ? "" : "s"}, ${formatBytes(cache.freeing_bytes)} being freed, ${formatBytes(cache.reserved_bytes)} reserved, ${formatBytes(free)} free`;
  return (
    <figure class="budget">
      <figcaption>
        <strong>{formatBytes(taken)}</strong> of {formatBytes(cache.budget_bytes)} budget in use
        <span class="muted"> · process RSS {formatBytes(cache.process_rss_bytes)}</span>
      </figcaption>
      <div
        class="budget-bar"
        role="img"
        aria-label={summary}
        data-testid="budget-bar"
        data-used-bytes={cache.used_bytes}
        data-budget-bytes={cache.budget_bytes}
      >
        {segments.map((s) => (
          <div
            key={s.label}
            class={`segment segment-${s.kind}`}
            style={{ width: `${percent(s.bytes)}%`, ...(s.colour ? { backgroundColor: s.colour } : {}) }}
            title={`${s.label}: ${formatBytes(s.bytes)}`}
            data-bytes={s.bytes}
          />
        ))}
      </div>
      <ul class="legend">
        {segments.map((s) => (
          <li key={s.label} data-kind={s.kind}>
            <span
              class={`swatch segment-${s.kind}`}
              style={s.colour ? { backgroundColor: s.colour } : undefined}
              aria-hidden="true"
            />
            {s.label}: {formatBytes(s.bytes)} ({percent(s.bytes).toFixed(1)}%)
          </li>
        ))}
        <li data-kind="free">
          <span class="swatch segment-free" aria-hidden="true" />
          free: {formatBytes(free)} ({percent(free).toFixed(1)}%)
        </li>
      </ul>
    </figure>
  );
}
