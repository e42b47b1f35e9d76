import { ConfigError } from './error.js';

/** configFlag is the value of `--config FILE` in a command's args, undefined when absent. */
export function configFlag(args: readonly string[]): string | undefined {
  const i = args.indexOf('--config');
  if (i === -1) return undefined;
  const v = args[i + 1];
  if (v === undefined || v.startsWith('--')) throw new ConfigError('--config needs a value');
  return v;
}
