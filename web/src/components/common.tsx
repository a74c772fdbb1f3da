// Small pieces every page uses: an error said in words next to its cause, a copy button,
// a state badge, a busy indicator.
import type { ComponentChildren } from "preact";
import { useState } from "preact/hooks";

/** An API error (or any failure) in words, announced to screen readers where it appears. */
export function ErrorNote({ error, id }: { error: string | null | undefined; id?: string }) {
  if (!error) return null;
  return (
    <p class="error" role="alert" id={id}>
      {error}
    </p>
  );
}

export function Notice({ children }: { children: ComponentChildren }) {
  return (
    <p class="notice" role="status">
      {children}
    </p>
  );
}

const STATE_WORDS: Record<string, string> = {
  READY: "ready",
  LOADING: "loading",
  UNLOADING: "unloading",
  UNAVAILABLE: "unloaded",
};

/** A model version's state; unavailable with a failure shows why. */
export function StateBadge({ state, reason }: { state: string; reason?: string }) {
  const failed =
    state === "UNAVAILABLE" && reason && reason !== "not loaded" && !reason.startsWith("unloaded");
  const word = failed ? "unavailable" : (STATE_WORDS[state] ?? state.toLowerCase());
  return (
    <span class={`badge badge-${failed ? "failed" : word}`} data-state={state} title={reason}>
      {word}
      {failed && reason ? <span class="reason">: {reason}</span> : null}
    </span>
  );
}

/** Copies ``text`` and says so; falls back to selecting it where the clipboard API is absent. */
export function CopyButton({ text, label = "Copy" }: { text: string; label?: string }) {
  const [done, setDone] = useState<string | null>(null);
  const copy = async () => {
    try {
      await navigator.clipboard.writeText(text);
      setDone("Copied");
    } catch {
      setDone("Copy did not work here: select the key and copy it by hand");
    }
  };
  return (
    <>
      <button type="button" onClick={copy}>
        {label}
      </button>
      <span class="copy-status" role="status">
        {done}
      </span>
    </>
  );
}

export function Busy({ label }: { label: string }) {
  return (
    <p class="busy" role="status" aria-live="polite">
      {label}
    </p>
  );
}

/** A table that scrolls sideways on narrow screens instead of widening the page. */
export function Scroll({ children, label }: { children: ComponentChildren; label: string }) {
  return (
    <div class="scroll" role="region" aria-label={label} tabIndex={0}>
      {children}
    </div>
  );
}

/** A table's header row; a column named "" gets a label only screen readers read. */
export function TableHead({ columns, hidden = "Actions" }: { columns: string[]; hidden?: string }) {
  return (
    <thead>
      <tr>
        {columns.map((column) => (
          <th scope="col" key={column}>
            {column || <span class="visually-hidden">{hidden}</span>}
          </th>
        ))}
      </tr>
    </thead>
  );
}
