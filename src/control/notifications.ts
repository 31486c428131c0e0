// Notifications in Portmaster's shape (notifications:all/<EventID>): information for the
// dashboard, and prompts that wait for an answer (app/auth access requests). A prompt is
// answered by setting SelectedActionID (WebSocket update, REST or CLI); whoever created it
// awaits the answer. Kept in memory and bounded: the oldest finished ones go first.

export const TYPE_INFO = 0;
export const TYPE_WARNING = 1;
export const TYPE_PROMPT = 2;
export const TYPE_ERROR = 3;
const MAX_NOTIFICATIONS = 500;

export interface Action {
  ID: string;
  Text: string;
  Type: string;
  Payload: unknown;
}

export interface Notification {
  EventID: string;
  GUID: string;
  Type: number;
  Title: string;
  Category: string;
  Message: string;
  ShowOnSystem: boolean;
  EventData: unknown;
  /** Unix seconds; 0 = never. */
  Expires: number;
  State: "active" | "responded" | "executed";
  AvailableActions: Action[];
  SelectedActionID: string;
  Created: number;
  Modified: number;
}

type Listener = (id: string, n: Notification | null) => void;

export class Notifications {
  private readonly all = new Map<string, Notification>();
  private readonly waiting = new Map<string, (action: string | null) => void>();
  private readonly listeners: Listener[] = [];
  private seq = 0;

  onChange(f: Listener): void {
    this.listeners.push(f);
  }

  list(): Notification[] {
    return [...this.all.values()];
  }

  get(id: string): Notification | null {
    return this.all.get(id) ?? null;
  }

  post(n: Omit<Notification, "GUID" | "State" | "SelectedActionID" | "Created" | "Modified">): Notification {
    const now = Math.floor(Date.now() / 1000);
    const full: Notification = { ...n, GUID: `${now.toString(36)}-${(++this.seq).toString(36)}`, State: "active", SelectedActionID: "", Created: now, Modified: now };
    this.all.set(n.EventID, full);
    this.trim();
    this.emit(n.EventID, full);
    return full;
  }

  /**
   * Posts a prompt and waits for the answer: the chosen action id, or null when it expired,
   * was withdrawn, or the signal aborted (the asker went away; the prompt is withdrawn).
   */
  prompt(n: Omit<Notification, "GUID" | "State" | "SelectedActionID" | "Created" | "Modified" | "Type">, timeoutMs: number, signal: AbortSignal): Promise<string | null> {
    const posted = this.post({ ...n, Type: TYPE_PROMPT });
    return new Promise((resolve) => {
      const finish = (action: string | null) => {
        clearTimeout(timer);
        signal.removeEventListener("abort", onAbort);
        this.waiting.delete(posted.EventID);
        resolve(action);
      };
      const timer = setTimeout(() => {
        finish(null);
        this.remove(posted.EventID);
      }, timeoutMs);
      const onAbort = () => {
        finish(null);
        this.remove(posted.EventID);
      };
      signal.addEventListener("abort", onAbort, { once: true });
      this.waiting.set(posted.EventID, finish);
    });
  }

  /** Answers a notification. Errors say why not (unknown, already answered, no such action). */
  respond(id: string, actionId: string): Notification {
    const n = this.all.get(id);
    if (!n) throw new NotificationError("not_found", `no notification "${id}"`);
    if (n.State !== "active") throw new NotificationError("conflict", `notification "${id}" was already answered (${n.SelectedActionID})`);
    if (!n.AvailableActions.some((a) => a.ID === actionId)) {
      throw new NotificationError("bad_request", `"${actionId}" is not an action of this notification (${n.AvailableActions.map((a) => a.ID).join(", ") || "none"})`);
    }
    n.SelectedActionID = actionId;
    n.State = "executed";
    n.Modified = Math.floor(Date.now() / 1000);
    this.emit(id, n);
    this.waiting.get(id)?.(actionId);
    return n;
  }

  remove(id: string): boolean {
    if (!this.all.delete(id)) return false;
    this.waiting.get(id)?.(null);
    this.emit(id, null);
    return true;
  }

  private trim(): void {
    for (const [id, n] of this.all) {
      if (this.all.size <= MAX_NOTIFICATIONS) break;
      if (n.State !== "active" || n.Type !== TYPE_PROMPT) this.remove(id);
    }
  }

  private emit(id: string, n: Notification | null): void {
    for (const f of this.listeners) f(id, n);
  }
}

export class NotificationError extends Error {
  constructor(readonly key: "not_found" | "conflict" | "bad_request", message: string) {
    super(message);
  }
}
