// The plugin's config: its table in gateway.toml, handed over as JSON.

/** Thrown from a plugin's constructor: the gateway refuses the config with this message. */
export class ConfigError extends Error {}

const kind = (v) =>
  Array.isArray(v) ? "a list" : v === null ? "null" : typeof v === "object" ? "a table" : `a ${typeof v}`;

/**
 * `given` checked against the keys a plugin knows: `defaults` (key -> default value, whose kind
 * the given value must have) and `required` keys (no default). Returns an object with every
 * key; unknown keys, missing keys and wrong kinds throw ConfigError naming the key.
 */
export function config(given, defaults, required = []) {
  given = given ?? {};
  if (typeof given !== "object" || Array.isArray(given)) {
    throw new ConfigError("the plugin's config is a table of keys");
  }
  const known = [...Object.keys(defaults), ...required].sort();
  for (const key of Object.keys(given)) {
    if (!known.includes(key)) {
      throw new ConfigError(`unknown key \`${key}\`; this plugin knows: ${known.join(", ") || "none"}`);
    }
  }
  for (const key of required) {
    if (!(key in given)) {
      throw new ConfigError(`\`${key}\` is required; add it to this plugin's \`config\` table`);
    }
  }
  const out = { ...defaults };
  for (const [key, value] of Object.entries(given)) {
    if (key in defaults && kind(defaults[key]) !== kind(value)) {
      throw new ConfigError(
        `\`${key}\`: expected ${kind(defaults[key])}, got ${kind(value)}; fix \`${key}\` in this plugin's \`config\` table`,
      );
    }
    out[key] = value;
  }
  return out;
}
