// Each model version's state, memory and traffic, with load and unload buttons.
import { useState } from "preact/hooks";
import { ErrorNote, Scroll, StateBadge, TableHead } from "../components/common";
import { describe, enc, post } from "../lib/api";
import { formatBytes, formatMs, formatSeconds } from "../lib/format";
import { errorRequests, totalRequests, traffic } from "../lib/stats";
import type { StatsSnapshot } from "../lib/types";

export function TrafficTable({
  now,
  before,
  onChange,
}: {
  now: StatsSnapshot;
  before: StatsSnapshot | undefined;
  onChange: () => void;
}) {
  const [busy, setBusy] = useState<Record<string, string>>({});
  const [errors, setErrors] = useState<Record<string, string>>({});
  const act = async (name: string, version: string, action: "load" | "unload") => {
    const key = `${name}/${version}`;
    setBusy({ ...busy, [key]: action });
    setErrors({ ...errors, [key]: "" });
    try {
      await post(`/v2/repository/models/${enc(name)}/${action}`, { parameters: { version } });
    } catch (e) {
      setErrors((current) => ({
        ...current,
        [key]: `${action === "load" ? "Load" : "Unload"} failed. ${describe(e)}`,
      }));
    } finally {
      setBusy((current) => ({ ...current, [key]: "" }));
      onChange();
    }
  };
  const windowSeconds = before ? Math.round(now.time - before.time) : 0;
  return (
    <Scroll label="Models in this server">
      <table data-testid="ops-models">
        <caption>
          Per model version{windowSeconds ? `; rates and latency over the last ${windowSeconds} s` : ""}
        </caption>
        <TableHead
          columns={[
            "Model",
            "State",
            "Memory",
            "Requests/s",
            "p50",
            "p99",
            "Queue",
            "Batch (mean)",
            "Requests (5xx)",
            "Last load",
            "Action",
          ]}
        />
        <tbody>
          {now.models.map((m) => {
            const key = `${m.name}/${m.version}`;
            const t = traffic(m, now.time, before);
            const resident = m.state === "READY" || m.state === "LOADING";
            const action = resident ? "unload" : "load";
            return (
              <tr key={key} data-model={m.name} data-version={m.version} data-state={m.state}>
                <th scope="row">
                  {m.name} <span class="muted">v{m.version}</span>
                </th>
                <td>
                  <StateBadge state={m.state} reason={m.reason} />
                  <ErrorNote error={errors[key]} />
                </td>
                <td>{resident ? formatBytes(m.footprint_bytes) : "—"}</td>
                <td>{t.requestsPerSecond === null ? "—" : t.requestsPerSecond.toFixed(1)}</td>
                <td title={t.windowed ? "over the window" : "since start"}>{formatMs(t.p50Ms)}</td>
                <td title={t.windowed ? "over the window" : "since start"}>{formatMs(t.p99Ms)}</td>
                <td>{m.queue ? `${m.queue.depth} / ${m.queue.capacity}` : "—"}</td>
                <td>{t.meanBatch === null ? "—" : t.meanBatch.toFixed(1)}</td>
                <td>
                  {totalRequests(m)} ({errorRequests(m)})
                </td>
                <td>
                  {m.last_load
                    ? formatSeconds(m.last_load.seconds)
                    : m.loads.count
                      ? `${formatSeconds(m.loads.sum / m.loads.count)} mean`
                      : "—"}
                </td>
                <td>
                  <button
                    type="button"
                    class={action === "unload" ? "danger" : undefined}
                    disabled={Boolean(busy[key]) || m.state === "UNLOADING"}
                    onClick={() => act(m.name, m.version, action)}
                    aria-label={`${action === "unload" ? "Unload" : "Load"} ${m.name} version ${m.version}`}
                  >
                    {busy[key]
                      ? busy[key] === "load"
                        ? "Loading…"
                        : "Unloading…"
                      : action === "unload"
                        ? "Unload"
                        : "Load"}
                  </button>
                </td>
              </tr>
            );
          })}
        </tbody>
      </table>
      {now.models.length === 0 ? <p class="muted">No model has been loaded or asked for yet.</p> : null}
    </Scroll>
  );
}
