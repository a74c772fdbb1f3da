// The console's shell: sign-in gate, navigation, and the page the URL names.
import { useEffect, useRef, useState } from "preact/hooks";
import { ApiError, call, describe, setUnauthorizedHandler } from "./lib/api";
import { href, useRoute } from "./lib/route";
import { forgetKey, storedKey, storeKey } from "./lib/session";
import type { Me } from "./lib/types";
import { ModelsPage } from "./pages/Models";
import { OperationsPage } from "./pages/Operations";
import { SignIn } from "./pages/SignIn";
import { TryPage } from "./pages/Try";
import { UsagePage } from "./pages/Usage";

const PAGES = [
  { page: "models", label: "Models" },
  { page: "try", label: "Try it" },
  { page: "usage", label: "My usage" },
  { page: "operations", label: "Operations", admin: true },
];

export function App() {
  const [me, setMe] = useState<Me | null>(null);
  const [checking, setChecking] = useState(() => storedKey() !== null);
  const [signedOutReason, setSignedOutReason] = useState<string | null>(null);
  const route = useRoute();
  const main = useRef<HTMLElement>(null);

  useEffect(() => {
    setUnauthorizedHandler((error) => {
      setMe(null);
      setSignedOutReason(`You were signed out. ${error.explanation}`);
    });
    const key = storedKey();
    if (key === null) return;
    call<Me>("GET", "/api/v1/me", { key })
      .then((answer) => setMe(answer.body))
      .catch((error: unknown) => {
        if (error instanceof ApiError && error.status === 401) forgetKey();
        setSignedOutReason(describe(error));
      })
      .finally(() => setChecking(false));
  }, []);

  // Move focus to the page's heading when the page changes (not on the first one), for keyboard
  // and screen reader users.
  const firstPage = useRef(true);
  useEffect(() => {
    if (firstPage.current) {
      firstPage.current = false;
      return;
    }
    main.current?.querySelector("h1")?.focus();
  }, [route.page, me === null]);

  const signIn = async (key: string) => {
    const answer = await call<Me>("GET", "/api/v1/me", { key });
    storeKey(key);
    setSignedOutReason(null);
    setMe(answer.body);
  };
  const signOut = () => {
    forgetKey();
    setMe(null);
    setSignedOutReason(null);
  };

  if (checking) {
    return (
      <main id="main" ref={main}>
        <p role="status">Checking your key…</p>
      </main>
    );
  }
  if (me === null) {
    return (
      <main id="main" ref={main}>
        <SignIn onSignIn={signIn} reason={signedOutReason} />
      </main>
    );
  }
  const admin = me.role === "admin";
  const pages = PAGES.filter((p) => admin || !p.admin);
  const current = pages.some((p) => p.page === route.page) ? route.page : "models";
  return (
    <>
      <a class="skip" href="#main" onClick={(e) => (e.preventDefault(), main.current?.focus())}>
        Skip to the page
      </a>
      <header class="top">
        <span class="brand">modelhost</span>
        <nav aria-label="Pages">
          <ul>
            {pages.map((p) => (
              <li key={p.page}>
                <a href={href(p.page)} aria-current={current === p.page ? "page" : undefined}>
                  {p.label}
                </a>
              </li>
            ))}
          </ul>
        </nav>
        <span class="who" data-testid="who">
          {me.name} ({me.role})
        </span>
        <button type="button" class="quiet" onClick={signOut}>
          Sign out
        </button>
      </header>
      <main id="main" ref={main} tabIndex={-1}>
        {current === "models" && <ModelsPage />}
        {current === "try" && <TryPage model={route.arg} />}
        {current === "usage" && <UsagePage />}
        {current === "operations" && admin && <OperationsPage />}
      </main>
    </>
  );
}
