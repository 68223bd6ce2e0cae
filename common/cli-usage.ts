// What the project's command lines (the S3 client CLI, the admin CLI, node-target) share: a
// caller's mistake is a UsageError, printed as one line with the command's usage (exit 2)
// rather than as a failure of the operation; and the typed flags of a parseArgs option table.

export class UsageError extends Error {}

/**
 * The values node:util's parseArgs returns for an option table. Typed structurally: common/ is
 * compiled for the Workers too, which have no node:util.
 */
export type FlagsOf<O extends Record<string, { type: "string" | "boolean" }>> = { [K in keyof O]?: O[K]["type"] extends "string" ? string : boolean };
