// My usage: the signed-in key's user's requests, paged and filtered, with charts over time.
import { useEffect, useMemo, useState } from "preact/hooks";
import { Busy, ErrorNote, Scroll, TableHead } from "../components/common";
import { TimeChart, type Point } from "../components/TimeChart";
import { describe, get } from "../lib/api";
import { formatBytes, formatMs, formatTime } from "../lib/format";
import type { ModelInfo, UsagePage as Page, UsageRecord } from "../lib/types";

const PAGE_SIZE = 25;
const CHART_LIMIT = 1000;
const STEPS_S = [1, 5, 10, 30, 60, 300, 900, 3600, 6 * 3600, 86400];

interface Filters {
  model: string;
  since: string; // datetime-local values, in the browser's time zone
  until: string;
}

function query(filters: Filters, limit: number, beforeId: number | null): string {
  const params = new URLSearchParams({ limit: String(limit) });
  if (filters.model) params.set("model", filters.model);
  if (filters.since) params.set("since", new Date(filters.since).toISOString());
  if (filters.until) params.set("until", new Date(filters.until).toISOString());
  if (beforeId !== null) params.set("before_id", String(beforeId));
  return `/api/v1/me/usage?${params}`;
}

/** Requests per time bucket and their median latency, over about 30 buckets. */
function series(records: UsageRecord[]): { requests: Point[]; latency: Point[]; step: number } {
  if (records.length === 0) return { requests: [], latency: [], step: 1 };
  const times = records.map((r) => new Date(r.created_at).getTime());
  const span = (Math.max(...times) - Math.min(...times)) / 1000;
  const step = STEPS_S.find((s) => span / s <= 30) ?? 86400;
  const buckets = new Map<number, number[]>();
  records.forEach((r, i) => {
    const bucket = Math.floor(times[i]! / (step * 1000)) * step * 1000;
    buckets.set(bucket, [...(buckets.get(bucket) ?? []), r.latency_ms]);
  });
  const ordered = [...buckets.entries()].sort((a, b) => a[0] - b[0]);
  const median = (values: number[]) => {
    const sorted = [...values].sort((a, b) => a - b);
    return sorted[Math.floor((sorted.length - 1) / 2)]!;
  };
  return {
    requests: ordered.map(([time, values]) => ({ time, value: values.length })),
    latency: ordered.map(([time, values]) => ({ time, value: median(values) })),
    step,
  };
}

function stepWords(seconds: number): string {
  if (seconds < 60) return `${seconds} s`;
  if (seconds < 3600) return `${seconds / 60} min`;
  if (seconds < 86400) return `${seconds / 3600} h`;
  return "day";
}

export function UsagePage() {
  const [models, setModels] = useState<string[]>([]);
  const [draft, setDraft] = useState<Filters>({ model: "", since: "", until: "" });
  const [filters, setFilters] = useState<Filters>(draft);
  const [cursors, setCursors] = useState<(number | null)[]>([null]); // before_id of each page seen
  const [page, setPage] = useState<Page | null>(null);
  const [chartRecords, setChartRecords] = useState<UsageRecord[] | null>(null);
  const [error, setError] = useState<string | null>(null);

  useEffect(() => {
    get<ModelInfo[]>("/api/v1/models")
      .then((list) => setModels(list.map((m) => m.name)))
      .catch(() => setModels([]));
  }, []);

  const cursor = cursors[cursors.length - 1] ?? null;
  useEffect(() => {
    setError(null);
    get<Page>(query(filters, PAGE_SIZE, cursor))
      .then(setPage)
      .catch((e: unknown) => {
        setPage(null);
        setError(describe(e));
      });
  }, [filters, cursor]);
  useEffect(() => {
    get<Page>(query(filters, CHART_LIMIT, null))
      .then((p) => setChartRecords(p.records))
      .catch(() => setChartRecords(null));
  }, [filters]);

  const charts = useMemo(() => series(chartRecords ?? []), [chartRecords]);
  const apply = (event: Event) => {
    event.preventDefault();
    if (draft.since && draft.until && new Date(draft.since) >= new Date(draft.until)) {
      setError("“From” must be before “to”.");
      return;
    }
    setCursors([null]);
    setFilters({ ...draft });
  };

  return (
    <section>
      <h1 tabIndex={-1}>My usage</h1>
      <form class="filters" onSubmit={apply}>
        <div class="field-inline">
          <label for="usage-model">Model</label>
          <select
            id="usage-model"
            value={draft.model}
            onChange={(e) => setDraft({ ...draft, model: e.currentTarget.value })}
          >
            <option value="">all models</option>
            {models.map((m) => (
              <option key={m} value={m}>
                {m}
              </option>
            ))}
          </select>
        </div>
        <div class="field-inline">
          <label for="usage-since">From</label>
          <input
            id="usage-since"
            type="datetime-local"
            step={1}
            value={draft.since}
            onInput={(e) => setDraft({ ...draft, since: e.currentTarget.value })}
          />
        </div>
        <div class="field-inline">
          <label for="usage-until">To</label>
          <input
            id="usage-until"
            type="datetime-local"
            step={1}
            value={draft.until}
            onInput={(e) => setDraft({ ...draft, until: e.currentTarget.value })}
          />
        </div>
        <button type="submit">Apply filters</button>
        <button type="button" class="quiet" onClick={() => (setCursors([null]), setFilters({ ...filters }))}>
          Refresh
        </button>
      </form>
      <ErrorNote error={error} />
      {chartRecords && chartRecords.length > 0 ? (
        <div class="charts">
          <TimeChart
            title={`Requests per ${stepWords(charts.step)}`}
            points={charts.requests}
            unit="requests"
            kind="bars"
            format={(v) => String(Math.round(v))}
          />
          <TimeChart
            title={`Median latency per ${stepWords(charts.step)}`}
            points={charts.latency}
            unit="ms"
            kind="line"
            format={formatMs}
          />
          {chartRecords.length === CHART_LIMIT ? (
            <p class="muted">Charts show your latest {CHART_LIMIT} requests in this range.</p>
          ) : null}
        </div>
      ) : null}
      {page === null && !error ? <Busy label="Loading your requests…" /> : null}
      {page ? (
        <>
          <Scroll label="Your requests">
            <table data-testid="usage-table">
              <caption class="visually-hidden">Your requests, newest first</caption>
              <TableHead columns={["Time", "Model", "Version", "Status", "Latency", "Batch", "In", "Out"]} />
              <tbody>
                {page.records.map((r) => (
                  <tr key={r.id} data-model={r.model}>
                    <td>{formatTime(r.created_at)}</td>
                    <th scope="row">{r.model}</th>
                    <td>{r.version ?? "—"}</td>
                    <td class={r.status >= 400 ? "status-bad" : undefined}>{r.status}</td>
                    <td>{formatMs(r.latency_ms)}</td>
                    <td>{r.batch_size || "—"}</td>
                    <td>{formatBytes(r.bytes_in)}</td>
                    <td>{formatBytes(r.bytes_out)}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </Scroll>
          {page.records.length === 0 ? (
            <p>No requests match. Requests are recorded within a second or so.</p>
          ) : null}
          <nav class="pager" aria-label="Pages of requests">
            <button
              type="button"
              disabled={cursors.length <= 1}
              onClick={() => setCursors(cursors.slice(0, -1))}
            >
              Newer
            </button>
            <span>Page {cursors.length}</span>
            <button
              type="button"
              disabled={page.next_before_id === null}
              onClick={() => setCursors([...cursors, page.next_before_id])}
            >
              Older
            </button>
          </nav>
        </>
      ) : null}
    </section>
  );
}
