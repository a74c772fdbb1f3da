// Users and their API keys: create, disable or enable, issue keys (shown once), revoke.
import { Fragment } from "preact";
import { useEffect, useState } from "preact/hooks";
import { CopyButton, ErrorNote, Scroll, TableHead } from "../components/common";
import { del, describe, enc, get, patch, post } from "../lib/api";
import { formatTime } from "../lib/format";
import type { ApiKey, KeyCreated, User } from "../lib/types";

export function UsersPanel({ models }: { models: string[] }) {
  const [users, setUsers] = useState<User[] | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [open, setOpen] = useState<string | null>(null);
  const [name, setName] = useState("");
  const [role, setRole] = useState("user");
  const [createError, setCreateError] = useState<string | null>(null);
  const [rowErrors, setRowErrors] = useState<Record<string, string>>({});

  const refresh = () =>
    get<User[]>("/api/v1/users")
      .then((list) => (setUsers(list), setError(null)))
      .catch((e: unknown) => setError(describe(e)));
  useEffect(() => void refresh(), []);

  const create = async (event: Event) => {
    event.preventDefault();
    setCreateError(null);
    try {
      const user = await post<User>("/api/v1/users", { name: name.trim(), role });
      setName("");
      setOpen(user.name);
      await refresh();
    } catch (e) {
      setCreateError(`The user was not created. ${describe(e)}`);
    }
  };
  const toggle = async (user: User) => {
    setRowErrors({ ...rowErrors, [user.name]: "" });
    try {
      await patch(`/api/v1/users/${enc(user.name)}`, { disabled: !user.disabled });
      await refresh();
    } catch (e) {
      setRowErrors((current) => ({ ...current, [user.name]: describe(e) }));
    }
  };

  return (
    <section aria-labelledby="users-heading">
      <h2 id="users-heading">Users and API keys</h2>
      <form class="inline-form" onSubmit={create} aria-label="Create a user">
        <div class="field-inline">
          <label for="new-user-name">New user's name</label>
          <input
            id="new-user-name"
            value={name}
            autoComplete="off"
            onInput={(e) => setName(e.currentTarget.value)}
            aria-describedby="create-user-error"
          />
        </div>
        <div class="field-inline">
          <label for="new-user-role">Role</label>
          <select id="new-user-role" value={role} onChange={(e) => setRole(e.currentTarget.value)}>
            <option value="user">user</option>
            <option value="admin">admin</option>
          </select>
        </div>
        <button type="submit">Create user</button>
        <ErrorNote error={createError} id="create-user-error" />
      </form>
      <ErrorNote error={error} />
      {users ? (
        <Scroll label="Users">
          <table data-testid="users-table">
            <TableHead columns={["User", "Role", "State", "Created", "Actions"]} />
            <tbody>
              {users.map((user) => (
                <Fragment key={user.name}>
                  <tr data-user={user.name}>
                    <th scope="row">{user.name}</th>
                    <td>{user.role}</td>
                    <td>{user.disabled ? "disabled" : "active"}</td>
                    <td>{formatTime(user.created_at)}</td>
                    <td class="actions">
                      <button
                        type="button"
                        aria-expanded={open === user.name}
                        onClick={() => setOpen(open === user.name ? null : user.name)}
                        aria-label={`Keys of ${user.name}`}
                      >
                        Keys
                      </button>
                      <button
                        type="button"
                        class={user.disabled ? undefined : "danger"}
                        onClick={() => toggle(user)}
                        aria-label={`${user.disabled ? "Enable" : "Disable"} ${user.name}`}
                      >
                        {user.disabled ? "Enable" : "Disable"}
                      </button>
                      <ErrorNote error={rowErrors[user.name]} />
                    </td>
                  </tr>
                  {open === user.name ? (
                    <tr class="subrow">
                      <td colSpan={5}>
                        <KeysPanel user={user.name} models={models} />
                      </td>
                    </tr>
                  ) : null}
                </Fragment>
              ))}
            </tbody>
          </table>
        </Scroll>
      ) : null}
    </section>
  );
}

function keyState(key: ApiKey): string {
  if (key.revoked_at) return `revoked ${formatTime(key.revoked_at)}`;
  if (key.expires_at && new Date(key.expires_at) < new Date()) return "expired";
  return "active";
}

function KeysPanel({ user, models }: { user: string; models: string[] }) {
  const [keys, setKeys] = useState<ApiKey[] | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [created, setCreated] = useState<KeyCreated | null>(null);
  const [keyName, setKeyName] = useState("");
  const [allowed, setAllowed] = useState<string[]>([]);
  const [days, setDays] = useState("");
  const [perMinute, setPerMinute] = useState("");
  const [createError, setCreateError] = useState<string | null>(null);
  const [confirming, setConfirming] = useState<string | null>(null);
  const [rowErrors, setRowErrors] = useState<Record<string, string>>({});
  const base = `/api/v1/users/${enc(user)}/keys`;

  const refresh = () =>
    get<ApiKey[]>(base)
      .then((list) => (setKeys(list), setError(null)))
      .catch((e: unknown) => setError(describe(e)));
  useEffect(() => void refresh(), [user]);

  const create = async (event: Event) => {
    event.preventDefault();
    setCreateError(null);
    const body: Record<string, unknown> = {};
    if (keyName.trim()) body.name = keyName.trim();
    if (allowed.length) body.allowed_models = allowed;
    if (days.trim()) {
      const n = Number(days);
      if (!Number.isFinite(n) || n <= 0) {
        setCreateError("“Expires in days” must be a positive number.");
        return;
      }
      body.expires_at = new Date(Date.now() + n * 86400_000).toISOString();
    }
    if (perMinute.trim()) body.requests_per_minute = Number(perMinute);
    try {
      setCreated(await post<KeyCreated>(base, body));
      setKeyName("");
      setAllowed([]);
      setDays("");
      setPerMinute("");
      await refresh();
    } catch (e) {
      setCreateError(`The key was not created. ${describe(e)}`);
    }
  };
  const revoke = async (keyId: string) => {
    setConfirming(null);
    try {
      await del(`${base}/${enc(keyId)}`);
      await refresh();
    } catch (e) {
      setRowErrors((current) => ({ ...current, [keyId]: `Not revoked. ${describe(e)}` }));
    }
  };

  const id = (suffix: string) => `key-${user}-${suffix}`;
  return (
    <div class="keys" aria-label={`API keys of ${user}`} role="group">
      {created ? (
        <div class="new-key" role="status" data-testid="new-key">
          <p>
            <strong>New key for {user}.</strong> It is shown this once: copy it now.
          </p>
          <p>
            <code data-testid="new-key-value">{created.key}</code>{" "}
            <CopyButton text={created.key} label="Copy key" />
          </p>
          <button type="button" class="quiet" onClick={() => setCreated(null)}>
            I have saved it
          </button>
        </div>
      ) : null}
      <form class="inline-form" onSubmit={create} aria-label={`Create a key for ${user}`}>
        <div class="field-inline">
          <label for={id("name")}>Key name (optional)</label>
          <input id={id("name")} value={keyName} onInput={(e) => setKeyName(e.currentTarget.value)} />
        </div>
        <div class="field-inline">
          <label for={id("models")}>Only these models (none: all)</label>
          <select
            id={id("models")}
            multiple
            size={Math.min(4, Math.max(2, models.length))}
            onChange={(e) => setAllowed([...e.currentTarget.selectedOptions].map((o) => o.value))}
          >
            {models.map((m) => (
              <option key={m} value={m} selected={allowed.includes(m)}>
                {m}
              </option>
            ))}
          </select>
        </div>
        <div class="field-inline">
          <label for={id("days")}>Expires in days (optional)</label>
          <input
            id={id("days")}
            inputMode="decimal"
            value={days}
            onInput={(e) => setDays(e.currentTarget.value)}
            size={6}
          />
        </div>
        <div class="field-inline">
          <label for={id("rpm")}>Requests per minute (optional)</label>
          <input
            id={id("rpm")}
            inputMode="numeric"
            value={perMinute}
            onInput={(e) => setPerMinute(e.currentTarget.value)}
            size={6}
          />
        </div>
        <button type="submit">Create key</button>
        <ErrorNote error={createError} />
      </form>
      <ErrorNote error={error} />
      {keys ? (
        <table class="compact" data-testid={`keys-${user}`}>
          <TableHead columns={["Key id", "Name", "Models", "Expires", "State", "Action"]} />
          <tbody>
            {keys.map((key) => (
              <tr key={key.key_id} data-key={key.key_id}>
                <th scope="row">
                  <code>{key.key_id}</code>
                </th>
                <td>{key.name ?? "—"}</td>
                <td>{key.allowed_models ? key.allowed_models.join(", ") : "all"}</td>
                <td>{key.expires_at ? formatTime(key.expires_at) : "never"}</td>
                <td>{keyState(key)}</td>
                <td>
                  {key.revoked_at ? null : confirming === key.key_id ? (
                    <>
                      <button type="button" class="danger" onClick={() => revoke(key.key_id)}>
                        Yes, revoke {key.key_id}
                      </button>
                      <button type="button" class="quiet" onClick={() => setConfirming(null)}>
                        Cancel
                      </button>
                    </>
                  ) : (
                    <button
                      type="button"
                      class="danger"
                      onClick={() => setConfirming(key.key_id)}
                      aria-label={`Revoke key ${key.key_id}`}
                    >
                      Revoke
                    </button>
                  )}
                  <ErrorNote error={rowErrors[key.key_id]} />
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      ) : null}
      {keys && keys.length === 0 ? <p class="muted">{user} has no keys yet.</p> : null}
    </div>
  );
}
