// Profiles and their rules, as the API sees them. The ruleset file stays the one source of
// truth (an operator may edit it and send SIGHUP); an API write rebuilds the whole file from
// the profiles, checks it by parsing and compiling it, keeps the previous file as .bak, writes
// the new one atomically and hands it to the packet path. Comments in a hand-edited file do
// not survive an API write; the file header says so.

import { readFileSync, renameSync, writeFileSync, copyFileSync, existsSync } from "node:fs";
import { parseRules, parseRuleset } from "../rules/parse.js";
import { RuleSyntaxError, type RuleProblem } from "../core/errors.js";
import type { DefaultAction, Profile, Ruleset } from "../rules/types.js";

export const DEFAULT_PROFILE = "default";
const ACTIONS: DefaultAction[] = ["allow", "block", "drop", "ask"];

export interface ProfileRecord {
  ID: string;
  Source: "local";
  Name: string;
  /** What happens when no rule matches: allow, block, drop or ask (the fallback). */
  Default: DefaultAction;
  /** The devices it covers: IPs, CIDRs, MACs. The default profile covers every other device. */
  Sources: string[];
  /** Portmaster endpoint-list lines, first match wins. */
  Rules: string[];
  /** Only on the default profile: what `ask` resolves to. */
  Fallback?: "allow" | "block" | "drop";
  Created: number;
  Modified: number;
}

export interface ProfileInput {
  Name?: string;
  Default?: DefaultAction;
  Sources?: string[];
  Rules?: string[];
  Fallback?: "allow" | "block" | "drop";
}

export type Change = { id: string; record: ProfileRecord | null };

/** Compiles a ruleset text and puts it in force (the packet path's reload); throws if invalid. */
export type Applier = (text: string) => Promise<{ rules: number }>;

export class ProfileStore {
  private ruleset: Ruleset;
  private readonly times = new Map<string, { created: number; modified: number }>();
  private queue: Promise<unknown> = Promise.resolve();
  private readonly listeners: ((c: Change) => void)[] = [];

  constructor(private readonly path: string, private readonly apply: Applier) {
    this.ruleset = parseRuleset(readFileSync(path, "utf8"), path);
    this.stamp(Math.floor(Date.now() / 1000));
  }

  onChange(f: (c: Change) => void): void {
    this.listeners.push(f);
  }

  /** The ruleset in force (as last written or re-read); callers must not change it. */
  get current(): Ruleset {
    return this.ruleset;
  }

  list(): ProfileRecord[] {
    return this.ruleset.profiles.map((p) => this.record(p));
  }

  get(id: string): ProfileRecord | null {
    const p = this.ruleset.profiles.find((x) => x.name === id);
    return p ? this.record(p) : null;
  }

  /** Re-reads the file after an operator edited it (SIGHUP); announces what changed. */
  reread(): void {
    const before = new Map(this.list().map((r) => [r.ID, JSON.stringify({ ...r, Created: 0, Modified: 0 })]));
    this.ruleset = parseRuleset(readFileSync(this.path, "utf8"), this.path);
    const now = Math.floor(Date.now() / 1000);
    for (const r of this.list()) {
      if (before.get(r.ID) !== JSON.stringify({ ...r, Created: 0, Modified: 0 })) {
        this.times.set(r.ID, { created: this.times.get(r.ID)?.created ?? now, modified: now });
        this.emit({ id: r.ID, record: this.get(r.ID) });
      }
      before.delete(r.ID);
    }
    for (const id of before.keys()) this.emit({ id, record: null });
  }

  /** Checks rule lines without saving anything: every problem, with the line (1-based index). */
  static validateRules(rules: string[], profile = DEFAULT_PROFILE): RuleProblem[] {
    try {
      parseRules(rules.join("\n"), { profile });
      return [];
    } catch (err) {
      if (err instanceof RuleSyntaxError) return err.problems;
      throw err;
    }
  }

  /** Creates (`mustNotExist`) or replaces a profile; resolves once the packet path uses it. */
  put(id: string, input: ProfileInput, mode: "create" | "replace" | "upsert"): Promise<{ record: ProfileRecord; created: boolean }> {
    return this.serial(async () => {
      const existing = this.ruleset.profiles.find((p) => p.name === id);
      if (mode === "create" && existing) throw new ProfileConflict(`profile "${id}" already exists`);
      if (mode === "replace" && !existing) throw new ProfileMissing(`no profile "${id}"`);
      if (input.Name !== undefined && input.Name !== id) throw new ProfileInvalid(`Name must equal the profile ID ("${id}")`, []);
      if (input.Fallback !== undefined && id !== DEFAULT_PROFILE) throw new ProfileInvalid("only the default profile carries Fallback", []);
      if (id === DEFAULT_PROFILE && (input.Sources?.length ?? 0) > 0) {
        throw new ProfileInvalid("the default profile covers every device no other profile claims; it takes no Sources", []);
      }
      const problems = ProfileStore.validateRules(input.Rules ?? [], id);
      if (problems.length > 0) throw new ProfileInvalid(`invalid rules: line ${problems[0]!.line}: ${problems[0]!.message}`, problems);
      const profiles = this.ruleset.profiles.map((p) => ({ ...p }));
      const next = { name: id, defaultAction: input.Default ?? "allow", sourcesText: input.Sources ?? [], rulesText: input.Rules ?? [] };
      const list = profiles.map((p) => (p.name === id ? next : toEditable(p)));
      if (!existing) list.push(next);
      const fallback = id === DEFAULT_PROFILE && input.Fallback ? input.Fallback : this.ruleset.fallback;
      await this.commit(serialize(list, fallback));
      const now = Math.floor(Date.now() / 1000);
      this.times.set(id, { created: existing ? (this.times.get(id)?.created ?? now) : now, modified: now });
      const record = this.get(id)!;
      this.emit({ id, record });
      return { record, created: !existing };
    });
  }

  /** Deletes a profile; false if there was none. The default profile cannot be deleted. */
  delete(id: string): Promise<boolean> {
    return this.serial(async () => {
      if (id === DEFAULT_PROFILE) throw new ProfileConflict("the default profile cannot be deleted (it covers every unclaimed device); replace its rules instead");
      if (!this.ruleset.profiles.some((p) => p.name === id)) return false;
      const list = this.ruleset.profiles.filter((p) => p.name !== id).map(toEditable);
      await this.commit(serialize(list, this.ruleset.fallback));
      this.times.delete(id);
      this.emit({ id, record: null });
      return true;
    });
  }

  private async commit(text: string): Promise<void> {
    let parsed: Ruleset;
    try {
      parsed = parseRuleset(text, "profiles");
    } catch (err) {
      if (err instanceof RuleSyntaxError) throw new ProfileInvalid(err.message, err.problems);
      throw err;
    }
    const tmp = `${this.path}.tmp`;
    writeFileSync(tmp, text);
    if (existsSync(this.path)) copyFileSync(this.path, `${this.path}.bak`);
    // Compile and put in force first: a ruleset the packet path refuses never reaches the file.
    await this.apply(text);
    renameSync(tmp, this.path);
    this.ruleset = parsed;
  }

  private serial<T>(f: () => Promise<T>): Promise<T> {
    const run = this.queue.then(f, f);
    this.queue = run.catch(() => undefined);
    return run;
  }

  private emit(c: Change): void {
    for (const f of this.listeners) f(c);
  }

  private stamp(now: number): void {
    for (const p of this.ruleset.profiles) if (!this.times.has(p.name)) this.times.set(p.name, { created: now, modified: now });
  }

  private record(p: Profile): ProfileRecord {
    const t = this.times.get(p.name) ?? { created: 0, modified: 0 };
    const r: ProfileRecord = {
      ID: p.name,
      Source: "local",
      Name: p.name,
      Default: p.defaultAction,
      Sources: p.sources.map((s) => s.text),
      Rules: p.rules.map((r) => r.text),
      Created: t.created,
      Modified: t.modified,
    };
    if (p.name === DEFAULT_PROFILE) r.Fallback = this.ruleset.fallback;
    return r;
  }
}

interface Editable {
  name: string;
  defaultAction: DefaultAction;
  sourcesText: string[];
  rulesText: string[];
}

function toEditable(p: Profile | Editable): Editable {
  if ("sourcesText" in p) return p;
  return { name: p.name, defaultAction: p.defaultAction, sourcesText: p.sources.map((s) => s.text), rulesText: p.rules.map((r) => r.text) };
}

function serialize(list: Editable[], fallback: string): string {
  const out = [
    `# sluice ruleset, last written through the API at ${new Date().toISOString()}.`,
    "# You may edit it and send SIGHUP; the next API write rewrites it (comments are not kept;",
    "# the previous version is kept as <file>.bak).",
    `fallback ${fallback}`,
  ];
  for (const p of list) {
    out.push("", `[profile ${p.name}]`, `default ${p.defaultAction}`);
    for (const s of p.sourcesText) out.push(`source ${s}`);
    for (const r of p.rulesText) out.push(r);
  }
  return out.join("\n") + "\n";
}

export class ProfileInvalid extends Error {
  constructor(message: string, readonly problems: RuleProblem[]) {
    super(message);
  }
}
export class ProfileConflict extends Error {}
export class ProfileMissing extends Error {}

export function isAction(v: string): v is DefaultAction {
  return (ACTIONS as string[]).includes(v);
}
