// Aliases: move one to another version. The server loads the version first and flips the alias
// once it is ready (the same safe swap the CLI's `models alias` uses); refusals show here.
import { useState } from "preact/hooks";
import { ErrorNote, Notice, Scroll, TableHead } from "../components/common";
import { describe, enc, put } from "../lib/api";
import type { ModelInfo } from "../lib/types";

export function AliasesPanel({ models, onChange }: { models: ModelInfo[]; onChange: () => void }) {
  const [model, setModel] = useState("");
  const [alias, setAlias] = useState("");
  const [version, setVersion] = useState("");
  const [error, setError] = useState<string | null>(null);
  const [status, setStatus] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const chosen = models.find((m) => m.name === model);

  const move = async (event: Event) => {
    event.preventDefault();
    setError(null);
    setStatus(null);
    if (!model || !alias.trim() || !version) {
      setError("Choose a model, name the alias and pick the version it should point at.");
      return;
    }
    setBusy(true);
    setStatus(`Loading ${model} version ${version}; the alias moves once it is ready…`);
    try {
      await put(`/api/v1/models/${enc(model)}/aliases/${enc(alias.trim())}`, { version: Number(version) });
      setStatus(`${model}:${alias.trim()} now points at version ${version}.`);
      onChange();
    } catch (e) {
      setStatus(null);
      setError(`The alias did not move. ${describe(e)}`);
    } finally {
      setBusy(false);
    }
  };

  const rows = models.flatMap((m) =>
    Object.entries(m.aliases).map(([a, v]) => ({ model: m.name, alias: a, version: v })),
  );
  return (
    <section aria-labelledby="aliases-heading">
      <h2 id="aliases-heading">Aliases</h2>
      {rows.length ? (
        <Scroll label="Aliases">
          <table class="compact" data-testid="aliases-table">
            <TableHead columns={["Model", "Alias", "Version"]} />
            <tbody>
              {rows.map((r) => (
                <tr key={`${r.model}:${r.alias}`}>
                  <th scope="row">{r.model}</th>
                  <td>{r.alias}</td>
                  <td>{r.version}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </Scroll>
      ) : (
        <p class="muted">No aliases yet.</p>
      )}
      <form class="inline-form" onSubmit={move} aria-label="Move an alias">
        <div class="field-inline">
          <label for="alias-model">Model</label>
          <select
            id="alias-model"
            value={model}
            onChange={(e) => (setModel(e.currentTarget.value), setVersion(""))}
          >
            <option value="">choose…</option>
            {models.map((m) => (
              <option key={m.name} value={m.name}>
                {m.name}
              </option>
            ))}
          </select>
        </div>
        <div class="field-inline">
          <label for="alias-name">Alias</label>
          <input
            id="alias-name"
            list="alias-names"
            value={alias}
            onInput={(e) => setAlias(e.currentTarget.value)}
          />
          <datalist id="alias-names">
            {Object.keys(chosen?.aliases ?? {}).map((a) => (
              <option key={a} value={a} />
            ))}
          </datalist>
        </div>
        <div class="field-inline">
          <label for="alias-version">Version</label>
          <select
            id="alias-version"
            value={version}
            onChange={(e) => setVersion(e.currentTarget.value)}
            disabled={!chosen}
          >
            <option value="">choose…</option>
            {(chosen?.versions ?? []).map((v) => (
              <option key={v.version} value={String(v.version)}>
                {v.version} ({v.state.toLowerCase()})
              </option>
            ))}
          </select>
        </div>
        <button type="submit" disabled={busy}>
          {busy ? "Moving…" : "Move alias"}
        </button>
        {status ? <Notice>{status}</Notice> : null}
        <ErrorNote error={error} />
      </form>
    </section>
  );
}
