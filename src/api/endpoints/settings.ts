// config/options (Portmaster's option list) plus a REST form of one option, and the profile
// and rule endpoints.

import { z } from "zod";
import type { Deps } from "../deps.js";
import { Reply, created, noContent } from "../http.js";
import { Errors } from "../errors.js";
import { PERMIT_ADMIN, PERMIT_ANYONE, PERMIT_USER } from "../permissions.js";
import { OptionError } from "../../control/options.js";
import { ProfileConflict, ProfileInvalid, ProfileMissing, ProfileStore, type ProfileInput } from "../../control/profiles.js";

const PROFILE_ID = "{id:[A-Za-z0-9_.-]{1,64}}";
const MAX_RULES = 100_000;
const MAX_LINE = 1024;

const OptionBody = z.object({ Value: z.unknown() }).strict();

const line = z.string().max(MAX_LINE);
export const ProfileBody = z
  .object({
    ID: z.string().optional(),
    Source: z.literal("local").optional(),
    Name: z.string().optional(),
    Default: z.enum(["allow", "block", "drop", "ask"]).optional(),
    Sources: z.array(line).max(10_000).optional(),
    Rules: z.array(line).max(MAX_RULES).optional(),
    Fallback: z.enum(["allow", "block", "drop"]).optional(),
    Created: z.number().optional(),
    Modified: z.number().optional(),
  })
  .strict();

const ValidateBody = z.object({ Rules: z.array(line).max(MAX_RULES), Profile: z.string().optional() }).strict();

/** Maps the profile store's refusals onto HTTP. */
export function profileError(err: unknown): unknown {
  if (err instanceof ProfileInvalid) return Errors.badBody(err.message, { problems: err.problems });
  if (err instanceof ProfileConflict) return Errors.conflict(err.message);
  if (err instanceof ProfileMissing) return Errors.notFound(err.message);
  return err;
}

export function toInput(b: z.infer<typeof ProfileBody>, id: string): ProfileInput {
  if (b.ID !== undefined && b.ID !== id) throw Errors.badBody(`ID "${b.ID}" does not match the path ("${id}")`);
  return { Name: b.Name, Default: b.Default, Sources: b.Sources, Rules: b.Rules, Fallback: b.Fallback };
}

export function registerSettings(d: Deps): void {
  const r = d.registry;
  const options = d.control.options;
  const profiles = d.control.profiles;

  r.register({
    name: "Export Configuration Options",
    description: "Returns a list of all registered configuration options and their metadata, without values (read and write values through config/option/{key} or the config: database).",
    path: "config/options",
    read: PERMIT_ANYONE,
    handler: () => options.list(false),
  });

  r.register({
    name: "Configuration Option",
    description: 'One option with its value (if set); PUT {"Value": v} sets it, {"Value": null} resets it to the default.',
    path: "config/option/{key:[a-z]+/[A-Za-z0-9/]+}",
    read: PERMIT_ADMIN,
    write: PERMIT_ADMIN,
    writeMethods: ["PUT"],
    handler: (ctx) => {
      const key = ctx.vars.key!;
      if (!options.has(key)) throw Errors.notFound(`no option "${key}"`, { key });
      if (ctx.method === "GET" || ctx.method === "HEAD") return options.record(key);
      const { Value } = ctx.json(OptionBody);
      try {
        return options.set(key, Value);
      } catch (err) {
        if (err instanceof OptionError) throw Errors.badBody(err.message, err.data);
        throw err;
      }
    },
  });

  r.register({
    name: "Profiles",
    description: "Lists profiles (device groups with their rules); POST creates one (201, Location).",
    path: "profiles",
    read: PERMIT_USER,
    write: PERMIT_ADMIN,
    handler: async (ctx) => {
      if (ctx.method === "GET" || ctx.method === "HEAD") return profiles.list();
      const b = ctx.json(ProfileBody);
      const id = b.ID ?? b.Name;
      if (!id || !/^[A-Za-z0-9_.-]{1,64}$/.test(id)) throw Errors.badBody("ID: 1-64 of A-Z a-z 0-9 _ . -");
      try {
        const { record } = await profiles.put(id, toInput(b, id), "create");
        return created(`/api/v1/profiles/${id}`, record);
      } catch (err) {
        throw profileError(err);
      }
    },
  });

  r.register({
    name: "Profile",
    description: "One profile; PUT creates or replaces it (201 or 200), DELETE removes it (204, or 404). Changes are in force when the reply comes.",
    path: `profiles/${PROFILE_ID}`,
    read: PERMIT_USER,
    write: PERMIT_ADMIN,
    writeMethods: ["PUT", "DELETE"],
    handler: async (ctx) => {
      const id = ctx.vars.id!;
      try {
        if (ctx.method === "GET" || ctx.method === "HEAD") {
          const p = profiles.get(id);
          if (!p) throw Errors.notFound(`no profile "${id}"`, { id });
          return p;
        }
        if (ctx.method === "DELETE") {
          if (!(await profiles.delete(id))) throw Errors.notFound(`no profile "${id}"`, { id });
          return noContent();
        }
        const b = ctx.json(ProfileBody);
        const { record, created: isNew } = await profiles.put(id, toInput(b, id), "upsert");
        return isNew ? created(`/api/v1/profiles/${id}`, record) : new Reply(200, record);
      } catch (err) {
        throw profileError(err);
      }
    },
  });

  r.register({
    name: "Validate Rules",
    description: 'Checks rule lines without saving them: {"Rules": ["+ example.com", ...]} -> {"valid": bool, "problems": [{line, column, message, expected}]}.',
    path: "rules/validate",
    write: PERMIT_USER,
    handler: (ctx) => {
      const b = ctx.json(ValidateBody);
      const problems = ProfileStore.validateRules(b.Rules, b.Profile);
      return { valid: problems.length === 0, problems };
    },
  });
}
