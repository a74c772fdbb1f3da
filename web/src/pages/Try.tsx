// Try a model: a form built from its V2 signature, checked before sending; the answer as a
// table (raw JSON on demand) with latency and batch size; sentence similarities for embeddings.
import { useEffect, useMemo, useState } from "preact/hooks";
import { ErrorNote, Scroll } from "../components/common";
import { HeatMap } from "../components/HeatMap";
import { call, describe, enc, get } from "../lib/api";
import { formatMs, formatNumber } from "../lib/format";
import { href } from "../lib/route";
import { cosineMatrix } from "../lib/similarity";
import { parseNumeric, parseTexts, shapeText, tableRows, vectors, type Parsed } from "../lib/tensors";
import type { ModelConfig, ModelInfo, ModelMetadata, TensorSpec, V2Response, V2Tensor } from "../lib/types";

const EXAMPLE_SENTENCES =
  "A cat sat on the mat.\nA kitten rested on the rug.\nStock markets fell sharply today.";
const MAX_COLUMNS = 12;

interface Result {
  response: V2Response;
  latencyMs: number;
  batchSize: string | null;
  texts: string[] | null;
}

function placeholder(spec: TensorSpec): string {
  if (spec.datatype === "BYTES") return "one text per line";
  const width = spec.shape.length === 2 && spec.shape[1]! > 0 ? spec.shape[1]! : 3;
  const row = Array.from(
    { length: Math.min(width, 8) },
    (_, i) => (i + 1) * (spec.datatype.startsWith("FP") ? 0.5 : 1),
  );
  return spec.shape.length <= 2
    ? `e.g. ${row.join(", ")}  (one row per line)`
    : "a JSON array, e.g. [[[1, 2], [3, 4]]]";
}

export function TryPage({ model }: { model: string | null }) {
  const [name, versionArg] = model ? (model.split("/") as [string, string?]) : [null, undefined];
  const [models, setModels] = useState<ModelInfo[] | null>(null);
  const [listError, setListError] = useState<string | null>(null);
  const [version, setVersion] = useState<string>(versionArg ?? "");
  const [meta, setMeta] = useState<ModelMetadata | null>(null);
  const [config, setConfig] = useState<ModelConfig | null>(null);
  const [metaError, setMetaError] = useState<string | null>(null);
  const [values, setValues] = useState<Record<string, string>>({});
  const [checked, setChecked] = useState(false);
  const [sending, setSending] = useState(false);
  const [sendError, setSendError] = useState<string | null>(null);
  const [result, setResult] = useState<Result | null>(null);

  useEffect(() => {
    get<ModelInfo[]>("/api/v1/models")
      .then(setModels)
      .catch((e: unknown) => setListError(describe(e)));
  }, []);
  useEffect(() => setVersion(versionArg ?? ""), [model]);

  const base = name ? `/v2/models/${enc(name)}${version ? `/versions/${enc(version)}` : ""}` : null;
  useEffect(() => {
    setMeta(null);
    setConfig(null);
    setMetaError(null);
    setResult(null);
    setSendError(null);
    setChecked(false);
    if (!base) return;
    Promise.all([get<ModelMetadata>(base), get<ModelConfig>(`${base}/config`)])
      .then(([m, c]) => {
        setMeta(m);
        setConfig(c);
        const embedding = c.task === "embedding";
        setValues(
          Object.fromEntries(
            m.inputs.map((i) => [i.name, embedding && i.datatype === "BYTES" ? EXAMPLE_SENTENCES : ""]),
          ),
        );
      })
      .catch((e: unknown) => setMetaError(describe(e)));
  }, [base]);

  const parsed: Record<string, Parsed> = useMemo(() => {
    const out: Record<string, Parsed> = {};
    for (const spec of meta?.inputs ?? []) {
      const text = values[spec.name] ?? "";
      out[spec.name] = spec.datatype === "BYTES" ? parseTexts(text, spec) : parseNumeric(text, spec);
    }
    return out;
  }, [meta, values]);

  const batchProblem = useMemo(() => {
    if (!config || !meta || config.max_batch_size <= 0) return null;
    for (const spec of meta.inputs) {
      const p = parsed[spec.name];
      if (p?.ok && (p.shape[0] ?? 0) > config.max_batch_size) {
        return `${spec.name} has ${p.shape[0]} rows; this model takes at most ${config.max_batch_size} per request (max_batch_size)`;
      }
    }
    return null;
  }, [parsed, config, meta]);

  const embedding = config?.task === "embedding";
  const send = async (event: Event) => {
    event.preventDefault();
    setChecked(true);
    setSendError(null);
    if (!meta || !base) return;
    const bad = meta.inputs.find((spec) => !parsed[spec.name]?.ok);
    if (bad || batchProblem) {
      document.getElementById(bad ? `input-${bad.name}` : "try-send")?.focus();
      return;
    }
    const inputs = meta.inputs.map((spec) => {
      const p = parsed[spec.name] as Extract<Parsed, { ok: true }>;
      return { name: spec.name, datatype: spec.datatype, shape: p.shape, data: p.data };
    });
    setSending(true);
    try {
      const answer = await call<V2Response>("POST", `${base}/infer`, { body: { inputs } });
      const textInput = meta.inputs.find((s) => s.datatype === "BYTES");
      const texts =
        textInput && parsed[textInput.name]?.ok
          ? ((parsed[textInput.name] as { data: unknown[] }).data as string[])
          : null;
      setResult({
        response: answer.body,
        latencyMs: answer.elapsedMs,
        batchSize: answer.headers.get("x-batch-size"),
        texts,
      });
    } catch (e) {
      setResult(null);
      setSendError(describe(e));
    } finally {
      setSending(false);
    }
  };

  const current = models?.find((m) => m.name === name);
  return (
    <section>
      <h1 tabIndex={-1}>Try it{name ? `: ${name}` : ""}</h1>
      <ErrorNote error={listError} />
      <div class="toolbar">
        <label for="try-model">Model</label>
        <select
          id="try-model"
          value={name ?? ""}
          onChange={(e) => (location.hash = href("try", e.currentTarget.value))}
        >
          <option value="" disabled>
            Choose a model
          </option>
          {(models ?? []).map((m) => (
            <option key={m.name} value={m.name}>
              {m.name}
            </option>
          ))}
        </select>
        <label for="try-version">Version</label>
        <select
          id="try-version"
          value={version}
          onChange={(e) => setVersion(e.currentTarget.value)}
          disabled={!current}
        >
          <option value="">newest</option>
          {Object.keys(current?.aliases ?? {}).map((alias) => (
            <option key={alias} value={alias}>
              {alias} (alias)
            </option>
          ))}
          {(current?.versions ?? []).map((v) => (
            <option key={v.version} value={String(v.version)}>
              {v.version}
            </option>
          ))}
        </select>
      </div>
      <ErrorNote error={metaError} />
      {!name ? <p>Choose a model to see its inputs.</p> : null}
      {meta && config ? (
        <form onSubmit={send} noValidate class="try-form">
          <p class="muted">
            {meta.platform}, version {config.version}
            {config.max_batch_size > 0 ? `, up to ${config.max_batch_size} rows per request` : ""}
            {embedding
              ? ": an embedding model. Each line is a sentence; the answer shows how similar they are."
              : ""}
          </p>
          {meta.inputs.map((spec) => {
            const p = parsed[spec.name];
            const problem = p && !p.ok ? p.error : null;
            const showProblem = problem && (checked || (values[spec.name] ?? "") !== "");
            return (
              <div class="field" key={spec.name}>
                <label for={`input-${spec.name}`}>
                  {embedding && spec.datatype === "BYTES" ? "Sentences, one per line" : spec.name}{" "}
                  <span class="muted">
                    ({spec.datatype}, shape {shapeText(spec.shape)})
                  </span>
                </label>
                <textarea
                  id={`input-${spec.name}`}
                  rows={spec.datatype === "BYTES" ? 5 : 4}
                  value={values[spec.name] ?? ""}
                  placeholder={placeholder(spec)}
                  spellcheck={spec.datatype === "BYTES"}
                  aria-invalid={showProblem ? true : undefined}
                  aria-describedby={`input-${spec.name}-check`}
                  onInput={(e) => setValues({ ...values, [spec.name]: e.currentTarget.value })}
                />
                {showProblem ? (
                  <p
                    class="error"
                    role="alert"
                    id={`input-${spec.name}-check`}
                    data-testid={`check-${spec.name}`}
                  >
                    {spec.name}: {problem}
                  </p>
                ) : (
                  <p class="hint" id={`input-${spec.name}-check`} data-testid={`check-${spec.name}`}>
                    {p?.ok ? `shape ${shapeText(p.shape)}: fits` : " "}
                  </p>
                )}
              </div>
            );
          })}
          {batchProblem && checked ? <ErrorNote error={batchProblem} /> : null}
          <button type="submit" id="try-send" disabled={sending}>
            {sending ? "Running…" : "Run"}
          </button>
          <ErrorNote error={sendError} id="try-error" />
        </form>
      ) : null}
      {result && meta ? <Answer result={result} meta={meta} embedding={embedding} /> : null}
    </section>
  );
}

function Answer({ result, meta, embedding }: { result: Result; meta: ModelMetadata; embedding: boolean }) {
  const [raw, setRaw] = useState(false);
  const { response } = result;
  const embeddingOutput = embedding
    ? response.outputs.find((o) => o.name === meta.outputs[0]?.name)
    : undefined;
  const matrix = useMemo(
    () => (embeddingOutput ? cosineMatrix(vectors(embeddingOutput)) : null),
    [embeddingOutput],
  );
  return (
    <section class="answer" aria-labelledby="answer-heading" data-testid="answer">
      <h2 id="answer-heading">Answer</h2>
      <dl class="facts">
        <dt>Latency</dt>
        <dd data-testid="latency">{formatMs(result.latencyMs)} (round trip from this browser)</dd>
        <dt>Batch</dt>
        <dd data-testid="batch-size">
          {result.batchSize
            ? `ran in a batch of ${result.batchSize} request${result.batchSize === "1" ? "" : "s"}`
            : "not reported"}
        </dd>
        <dt>Served by</dt>
        <dd>
          {response.model_name} version {response.model_version}
        </dd>
      </dl>
      {matrix && result.texts ? <HeatMap labels={result.texts} matrix={matrix} /> : null}
      {response.outputs.map((output) => (
        <OutputTable key={output.name} output={output} />
      ))}
      <button
        type="button"
        class="link"
        aria-expanded={raw}
        aria-controls="raw-json"
        onClick={() => setRaw(!raw)}
      >
        {raw ? "Hide" : "Show"} raw JSON
      </button>
      {raw ? (
        <pre id="raw-json" data-testid="raw-json" tabIndex={0}>
          {JSON.stringify(response, null, 2)}
        </pre>
      ) : null}
    </section>
  );
}

function OutputTable({ output }: { output: V2Tensor }) {
  const rows = tableRows(output);
  const width = rows[0]?.length ?? 0;
  const shown = Math.min(width, MAX_COLUMNS);
  const cell = (value: unknown) => (typeof value === "number" ? formatNumber(value) : String(value));
  return (
    <Scroll label={`Output ${output.name}`}>
      <table class="output" data-output={output.name}>
        <caption>
          {output.name}{" "}
          <span class="muted">
            ({output.datatype}, shape {shapeText(output.shape)})
          </span>
          {width > shown ? (
            <span class="muted">
              {" "}
              — first {shown} of {width} columns; all of them in the raw JSON
            </span>
          ) : null}
        </caption>
        <thead>
          <tr>
            <th scope="col">row</th>
            {output.shape.length >= 2 ? (
              Array.from({ length: shown }, (_, j) => (
                <th scope="col" key={j}>
                  {j}
                </th>
              ))
            ) : (
              <th scope="col">value</th>
            )}
          </tr>
        </thead>
        <tbody>
          {rows.map((row, i) => (
            <tr key={i}>
              <th scope="row">{i + 1}</th>
              {row.slice(0, shown).map((value, j) => (
                <td key={j} data-row={i} data-col={j}>
                  {cell(value)}
                </td>
              ))}
            </tr>
          ))}
        </tbody>
      </table>
    </Scroll>
  );
}
