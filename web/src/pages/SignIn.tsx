import { useState } from "preact/hooks";
import { ErrorNote } from "../components/common";
import { ApiError, describe } from "../lib/api";

export function SignIn({
  onSignIn,
  reason,
}: {
  onSignIn: (key: string) => Promise<void>;
  reason: string | null;
}) {
  const [key, setKey] = useState("");
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const submit = async (event: Event) => {
    event.preventDefault();
    const trimmed = key.trim();
    if (!trimmed) {
      setError("Enter your API key: it starts with mh_ (ask an admin, or run modelhost users keys create).");
      return;
    }
    setBusy(true);
    setError(null);
    try {
      await onSignIn(trimmed);
    } catch (failure) {
      setError(
        failure instanceof ApiError && failure.status === 401
          ? `That key was not accepted: ${failure.message}. Check that you copied the whole key and that it has not been revoked or expired.`
          : describe(failure),
      );
    } finally {
      setBusy(false);
    }
  };
  return (
    <section class="signin">
      <h1 tabIndex={-1}>Sign in to modelhost</h1>
      <p>
        Paste an API key. It stays in this browser tab only (session storage) and is sent to this server
        alone, in the Authorization header.
      </p>
      <ErrorNote error={reason} />
      <form onSubmit={submit} noValidate>
        <label for="api-key">API key</label>
        <input
          id="api-key"
          name="api-key"
          type="password"
          autoComplete="off"
          autoFocus
          spellcheck={false}
          value={key}
          aria-invalid={error ? true : undefined}
          aria-describedby={error ? "api-key-error" : undefined}
          onInput={(e) => setKey(e.currentTarget.value)}
        />
        <ErrorNote error={error} id="api-key-error" />
        <button type="submit" disabled={busy}>
          {busy ? "Signing in…" : "Sign in"}
        </button>
      </form>
    </section>
  );
}
