// Turning what a person typed into V2 tensors, checked against the model's signature before
// anything is sent, and V2 outputs back into rows for a table.
import type { TensorSpec, V2Tensor } from "./types";

export type Parsed = { ok: true; shape: number[]; data: unknown[] } | { ok: false; error: string };

const INT_RANGES: Record<string, [number, number]> = {
  INT8: [-128, 127],
  INT16: [-32768, 32767],
  INT32: [-2147483648, 2147483647],
  INT64: [Number.MIN_SAFE_INTEGER, Number.MAX_SAFE_INTEGER],
  UINT8: [0, 255],
  UINT16: [0, 65535],
  UINT32: [0, 4294967295],
  UINT64: [0, Number.MAX_SAFE_INTEGER],
};

export function shapeText(shape: number[]): string {
  return `[${shape.map((d) => (d < 0 ? "any" : String(d))).join(", ")}]`;
}

/** Does ``shape`` fit ``spec`` (-1 is any size)? An error in words, or null. */
export function shapeError(shape: number[], spec: number[]): string | null {
  if (shape.length !== spec.length) {
    return `has ${shape.length} dimension${shape.length === 1 ? "" : "s"} ${shapeText(shape)}; the model expects ${spec.length}: ${shapeText(spec)}`;
  }
  for (let i = 0; i < spec.length; i += 1) {
    const want = spec[i]!;
    if (want >= 0 && shape[i] !== want) {
      return `has shape ${shapeText(shape)}; dimension ${i + 1} must be ${want} (the model expects ${shapeText(spec)})`;
    }
  }
  return null;
}

/** A nested JSON array's shape and flat values, or an error if it is ragged. */
function flattenNested(value: unknown): { shape: number[]; flat: unknown[] } | string {
  if (!Array.isArray(value)) return { shape: [], flat: [value] };
  if (value.length === 0) return { shape: [0], flat: [] };
  const parts = value.map(flattenNested);
  const first = parts[0]!;
  if (typeof first === "string") return first;
  for (const [index, part] of parts.entries()) {
    if (typeof part === "string") return part;
    if (part.shape.join(",") !== first.shape.join(",")) {
      return `element ${index + 1} has shape ${shapeText(part.shape)} but element 1 has ${shapeText(first.shape)}: every row must be the same size`;
    }
  }
  return {
    shape: [value.length, ...first.shape],
    flat: parts.flatMap((p) => (typeof p === "string" ? [] : p.flat)),
  };
}

function numberValue(token: unknown, datatype: string, where: string): number | boolean | string {
  if (datatype === "BOOL") {
    if (token === true || token === "true" || token === 1 || token === "1") return true;
    if (token === false || token === "false" || token === 0 || token === "0") return false;
    return `${where}: ${JSON.stringify(token)} is not true or false`;
  }
  const value = typeof token === "number" ? token : Number(String(token));
  if (typeof token === "string" && token.trim() === "") return `${where} is empty`;
  if (!Number.isFinite(value)) return `${where}: ${JSON.stringify(token)} is not a number`;
  const range = INT_RANGES[datatype];
  if (range) {
    if (!Number.isInteger(value)) return `${where}: ${value} is not a whole number (${datatype})`;
    if (value < range[0] || value > range[1]) {
      return `${where}: ${value} is outside ${datatype}'s range ${range[0]}…${range[1]}`;
    }
  }
  return value;
}

/**
 * A numeric tensor typed as rows (one per line, values split by commas or spaces) or as a
 * JSON array, checked against the input's datatype and shape.
 */
export function parseNumeric(text: string, spec: TensorSpec): Parsed {
  const trimmed = text.trim();
  if (!trimmed) return { ok: false, error: "enter some values" };
  let shape: number[];
  let flat: unknown[];
  if (trimmed.startsWith("[")) {
    let doc: unknown;
    try {
      doc = JSON.parse(trimmed);
    } catch {
      return { ok: false, error: "this starts with [ but is not valid JSON" };
    }
    const nested = flattenNested(doc);
    if (typeof nested === "string") return { ok: false, error: nested };
    ({ shape, flat } = nested);
  } else {
    const rows = trimmed.split(/\n+/).map((line) => line.split(/[\s,;]+/).filter(Boolean));
    if (spec.shape.length === 1) {
      flat = rows.flat();
      shape = [flat.length];
    } else if (spec.shape.length === 2) {
      const width = rows[0]!.length;
      const ragged = rows.findIndex((row) => row.length !== width);
      if (ragged >= 0) {
        return {
          ok: false,
          error: `row ${ragged + 1} has ${rows[ragged]!.length} values but row 1 has ${width}: every row must be the same size`,
        };
      }
      flat = rows.flat();
      shape = [rows.length, width];
    } else {
      return { ok: false, error: `this input has ${spec.shape.length} dimensions: type it as a JSON array` };
    }
  }
  const mismatch = shapeError(shape, spec.shape);
  if (mismatch) return { ok: false, error: `the tensor ${mismatch}` };
  const data: unknown[] = [];
  for (const [index, token] of flat.entries()) {
    const value = numberValue(token, spec.datatype, `value ${index + 1}`);
    if (typeof value === "string") return { ok: false, error: value };
    data.push(value);
  }
  return { ok: true, shape, data };
}

/** Texts for a BYTES input, one per line. */
export function parseTexts(text: string, spec: TensorSpec): Parsed {
  const items = text
    .split("\n")
    .map((line) => line.trim())
    .filter(Boolean);
  if (items.length === 0) return { ok: false, error: "enter at least one line of text" };
  const shape = spec.shape.length === 2 && spec.shape[1] === 1 ? [items.length, 1] : [items.length];
  const mismatch = shapeError(shape, spec.shape);
  if (mismatch) return { ok: false, error: `the tensor ${mismatch}` };
  return { ok: true, shape, data: items };
}

export function batchRows(shape: number[]): number {
  return shape[0] ?? 1;
}

/** An output as table rows: a matrix row by row, a vector as one column, more dims flattened. */
export function tableRows(tensor: V2Tensor): unknown[][] {
  const [rows = 1, ...rest] = tensor.shape;
  const width = rest.reduce((a, b) => a * b, 1);
  if (tensor.shape.length === 0) return [tensor.data];
  const out: unknown[][] = [];
  for (let r = 0; r < rows; r += 1) out.push(tensor.data.slice(r * width, (r + 1) * width));
  return out;
}

/** Rows of vectors (an embedding output) as numbers. */
export function vectors(tensor: V2Tensor): number[][] {
  return tableRows(tensor).map((row) => row.map(Number));
}
