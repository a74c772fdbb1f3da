// Operations (admins): the memory budget, each model's traffic with load/unload, users and
// keys, aliases. The figures refresh every few seconds.
import { useEffect, useRef, useState } from "preact/hooks";
import { Busy, ErrorNote } from "../components/common";
import { describe, get } from "../lib/api";
import type { CacheState, ModelInfo, StatsSnapshot } from "../lib/types";
import { AliasesPanel } from "../ops/Aliases";
import { BudgetBar } from "../ops/BudgetBar";
import { TrafficTable } from "../ops/Traffic";
import { UsersPanel } from "../ops/Users";

const REFRESH_MS = 3000;
const WINDOW_S = 30; // rates and quantiles over about this long

export function OperationsPage() {
  const [cache, setCache] = useState<CacheState | null>(null);
  const [stats, setStats] = useState<StatsSnapshot | null>(null);
  const [models, setModels] = useState<ModelInfo[]>([]);
  const [error, setError] = useState<string | null>(null);
  const [paused, setPaused] = useState(false);
  const history = useRef<StatsSnapshot[]>([]);

  const refresh = async () => {
    try {
      const [c, s, m] = await Promise.all([
        get<CacheState>("/api/v1/cache"),
        get<StatsSnapshot>("/api/v1/stats"),
        get<ModelInfo[]>("/api/v1/models"),
      ]);
      history.current = [...history.current.filter((h) => s.time - h.time <= WINDOW_S), s];
      setCache(c);
      setStats(s);
      setModels(m);
      setError(null);
    } catch (e) {
      setError(describe(e));
    }
  };

  useEffect(() => {
    void refresh();
    if (paused) return;
    const timer = setInterval(refresh, REFRESH_MS);
    return () => clearInterval(timer);
  }, [paused]);

  const before = history.current.length > 1 ? history.current[0] : undefined;
  return (
    <section>
      <h1 tabIndex={-1}>Operations</h1>
      <div class="toolbar">
        <button type="button" class="quiet" onClick={() => setPaused(!paused)} aria-pressed={paused}>
          {paused ? "Resume refreshing" : "Pause refreshing"}
        </button>
        <span class="muted" role="status">
          {paused ? "Paused." : `Refreshes every ${REFRESH_MS / 1000} s.`}
        </span>
      </div>
      <ErrorNote error={error} />
      {cache === null && !error ? <Busy label="Loading the cache…" /> : null}
      <section aria-labelledby="memory-heading">
        <h2 id="memory-heading">Memory</h2>
        {cache ? <BudgetBar cache={cache} /> : null}
      </section>
      <section aria-labelledby="traffic-heading">
        <h2 id="traffic-heading">Models and traffic</h2>
        {stats ? <TrafficTable now={stats} before={before} onChange={refresh} /> : null}
      </section>
      <AliasesPanel models={models} onChange={refresh} />
      <UsersPanel models={models.map((m) => m.name)} />
    </section>
  );
}
