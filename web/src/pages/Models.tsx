import { useEffect, useState } from "preact/hooks";
import { Busy, ErrorNote, Scroll, StateBadge, TableHead } from "../components/common";
import { describe, get } from "../lib/api";
import { formatAgo, formatBytes } from "../lib/format";
import { href } from "../lib/route";
import type { ModelInfo } from "../lib/types";

export function ModelsPage() {
  const [models, setModels] = useState<ModelInfo[] | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [search, setSearch] = useState("");

  const refresh = () =>
    get<ModelInfo[]>("/api/v1/models")
      .then((list) => {
        setModels(list);
        setError(null);
      })
      .catch((e: unknown) => setError(describe(e)));

  useEffect(() => {
    void refresh();
    const timer = setInterval(refresh, 5000);
    return () => clearInterval(timer);
  }, []);

  useEffect(() => {
    // The moment the list first shows, for the time-to-list figure the tests print.
    if (models !== null && performance.getEntriesByName("models-shown").length === 0) {
      performance.mark("models-shown");
    }
  }, [models]);

  const needle = search.trim().toLowerCase();
  const shown = (models ?? []).filter((m) => m.name.toLowerCase().includes(needle));
  return (
    <section>
      <h1 tabIndex={-1}>Models</h1>
      <div class="toolbar">
        <label for="model-search">Search by name</label>
        <input
          id="model-search"
          type="search"
          value={search}
          onInput={(e) => setSearch(e.currentTarget.value)}
        />
      </div>
      <ErrorNote error={error} />
      {models === null && !error ? <Busy label="Loading models…" /> : null}
      {models !== null ? (
        <Scroll label="Models">
          <table data-testid="models-table">
            <caption class="visually-hidden">Every model version, its state and memory</caption>
            <TableHead
              columns={[
                "Model",
                "Version",
                "State",
                "Aliases",
                "Runtime",
                "Memory (measured)",
                "Last used",
                "",
              ]}
            />
            <tbody>
              {shown.flatMap((model) =>
                model.versions.map((v) => {
                  const aliases = Object.entries(model.aliases)
                    .filter(([, target]) => target === v.version)
                    .map(([alias]) => alias);
                  return (
                    <tr key={`${model.name}/${v.version}`} data-model={model.name} data-version={v.version}>
                      <th scope="row">{model.name}</th>
                      <td>{v.version}</td>
                      <td>
                        <StateBadge state={v.state} reason={v.reason} />
                      </td>
                      <td>{aliases.length ? aliases.join(", ") : "—"}</td>
                      <td>{v.runtime}</td>
                      <td>{v.memory_bytes ? formatBytes(v.memory_bytes) : "not measured yet"}</td>
                      <td>{v.last_used_at ? formatAgo(v.last_used_at) : "not since start"}</td>
                      <td>
                        <a
                          href={href("try", `${model.name}/${v.version}`)}
                          aria-label={`Try it: ${model.name} version ${v.version}`}
                        >
                          Try it
                        </a>
                      </td>
                    </tr>
                  );
                }),
              )}
            </tbody>
          </table>
          {shown.length === 0 ? <p class="muted">No model matches “{search}”.</p> : null}
        </Scroll>
      ) : null}
    </section>
  );
}
