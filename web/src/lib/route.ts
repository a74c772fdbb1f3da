// Pages live in the URL's fragment (#/models, #/try/iris-onnx): bookmarkable, never sent to
// the server, and never holding the key.
import { useEffect, useState } from "preact/hooks";

export interface Route {
  page: string;
  arg: string | null;
}

export function parseRoute(hash: string): Route {
  const [page = "models", ...rest] = hash.replace(/^#\/?/, "").split("/");
  return { page: page || "models", arg: rest.length ? decodeURIComponent(rest.join("/")) : null };
}

export function useRoute(): Route {
  const [route, setRoute] = useState(() => parseRoute(location.hash));
  useEffect(() => {
    const changed = () => setRoute(parseRoute(location.hash));
    addEventListener("hashchange", changed);
    return () => removeEventListener("hashchange", changed);
  }, []);
  return route;
}

export function href(page: string, arg?: string): string {
  return arg ? `#/${page}/${encodeURIComponent(arg)}` : `#/${page}`;
}
